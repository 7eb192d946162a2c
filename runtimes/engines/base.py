"""The engine interface: one small surface over every inference backend.

The classifier, the stream loop, the profiler and evaluation use only :class:`Engine` -- the
model's inputs and outputs, ``run``, a zero-argument ``runner`` for the timing harness, and what
really ran (backend, device/provider, precision, threads, cold-start time, notices) -- so a new
backend is one new subclass and one entry in :data:`BACKENDS`, never an if/else chain above this
module. :func:`open_engine` is the single place that picks a backend from the provider string.
"""
from __future__ import annotations

import functools
import importlib
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from edgecv.errors import InputError
from edgecv.hardware import usable_cores
from edgecv.runtimes.inputs import InputInfo

# provider family -> "module:function" that opens an engine for it (imported only when used, so
# an install without OpenVINO never imports it)
BACKENDS: dict[str, str] = {
    "auto": "edgecv.runtimes.engines.ort_engine:open_ort_engine",
    "cpu": "edgecv.runtimes.engines.ort_engine:open_ort_engine",
    "cuda": "edgecv.runtimes.engines.ort_engine:open_ort_engine",
    "tensorrt": "edgecv.runtimes.engines.ort_engine:open_ort_engine",
    "openvino": "edgecv.runtimes.engines.openvino_engine:open_openvino_engine",
}
# families that take a device after a colon ("openvino:GPU")
DEVICE_FAMILIES = frozenset({"openvino"})
# families whose engine chooses (and can be told) its inference precision (--precision)
PRECISION_FAMILIES = frozenset({"openvino"})


@dataclass(frozen=True)
class OutputInfo:
    """One graph output: ints for fixed dims, names (str) or None for dynamic ones."""

    name: str
    shape: tuple[Any, ...] | None


@dataclass
class EngineOptions:
    """How to open an engine; every field has a default that suits a small CPU device."""

    provider: str = "auto"  # auto | cpu | cuda | tensorrt (ONNX Runtime) | openvino[:DEVICE]
    threads: int | None = None  # intra-op threads; None = the backend's default
    allow_fallback: bool = False  # an explicit provider may land elsewhere (with a notice)
    spinning: bool = False  # ORT's busy-waiting threads: off, they starve capture on small CPUs
    verbose: bool = False  # the backend's own log output
    precision: str = "auto"  # auto | f32 | bf16 | f16: for backends that choose their own precision
    provider_options: dict[str, str] = field(default_factory=dict)  # passed to the provider as given
    device_id: int | None = None  # GPU index for CUDA / TensorRT
    fp16: bool = False  # TensorRT: allow fp16 kernels (automatic for an fp16 export)
    fast_start: bool = False  # CUDA: heuristic cuDNN algorithm search instead of exhaustive
    cache_dir: str | None = None  # TensorRT engine/timing caches (default: the per-user cache)
    batch_sizes: tuple[int, ...] = ()  # batch sizes the command will run (TensorRT profiles)
    seq_lens: tuple[int, ...] = ()  # sequence lengths the command will run (text models)
    io_binding: bool = True  # CUDA / TensorRT: device-resident inputs and outputs


class Engine(ABC):
    """A loaded model on one backend. Subclasses fill the attributes in ``__init__``."""

    backend: str  # "onnxruntime" | ...
    path: Path
    inputs: list[InputInfo]
    outputs: list[OutputInfo]
    metadata: dict[str, str]  # the model's metadata_props (the edgecv contract lives here)
    requested: str  # the provider the user asked for
    device: str  # short name of what really runs first: "cpu", "cuda", "tensorrt", ...
    providers: list[str]  # everything that runs the graph, best first
    precision: str  # arithmetic that really runs: "fp32", "fp16", "bf16", "int8"
    threads: int | None
    create_ms: float  # engine creation (model load + compile), reported as cold start
    notices: list[str]

    @abstractmethod
    def run(self, names: Sequence[str] | None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Outputs ``names`` (all when None) for ``feeds``, as numpy arrays."""

    def runner(self, feeds: dict[str, np.ndarray], *, quiet: bool = False) -> Callable[[], Any]:
        """A zero-argument call on pre-allocated ``feeds`` for the timing harness: as little as
        possible between the clock and the backend. ``quiet``: the backend logs nothing of its
        own when the call fails (the caller reports the failure in one line)."""
        return functools.partial(self.run, None, feeds)

    def device_runners(self, feeds: dict[str, np.ndarray]) -> tuple[Callable[[], Any], Callable[[], Any]] | None:
        """(host-to-device copy, compute on device-resident inputs) for engines that keep inputs in
        device memory, so the profiler can report the copy apart from the compute; None elsewhere."""
        return None

    def describe(self) -> str:
        """One line for reports: backend, what ran, precision, threads."""
        threads = self.threads if self.threads is not None else "default"
        return (f"{self.backend} {', '.join(self.providers)}; precision {self.precision}; "
                f"threads {threads}")

    @property
    def host_cores(self) -> int:
        """CPU cores busy while the engine runs: its threads on a CPU device (all usable cores
        when the backend picks), one on an accelerator (the thread waiting for it). The stream
        loops plan their decoding and preprocessing threads around it."""
        if self.device == "cpu" or str(self.device).upper().endswith(":CPU"):
            return self.threads or usable_cores()
        return 1

    def report(self) -> dict[str, Any]:
        """What really ran, for JSON reports."""
        return {"backend": self.backend, "requested": self.requested, "device": self.device,
                "providers": list(self.providers), "precision": self.precision, "threads": self.threads,
                "create_ms": round(self.create_ms, 3)}


def provider_family(provider: str) -> str:
    """``"openvino:GPU"`` -> ``"openvino"``; ``"CUDA"`` -> ``"cuda"``."""
    return provider.strip().lower().split(":", 1)[0]


def provider_choices() -> tuple[str, ...]:
    """The provider families this install knows (for option help and validation)."""
    return tuple(BACKENDS)


def normalize_provider(text: str) -> str:
    """``"CUDA"`` -> ``"cuda"``, ``"openvino:gpu"`` -> ``"openvino:GPU"``; raises ``ValueError``
    for an unknown family or a device suffix on a family that takes none."""
    family, sep, device = text.strip().partition(":")
    family = family.lower()
    if family not in BACKENDS or (sep and (family not in DEVICE_FAMILIES or not device.strip())):
        raise ValueError(f"provider {text!r}: expected one of {', '.join(BACKENDS)} "
                         f"(openvino:CPU, openvino:GPU, openvino:NPU or openvino:AUTO for a device)")
    return f"{family}:{device.strip().upper()}" if sep else family


def open_engine(path: str | os.PathLike[str], options: EngineOptions | None = None, **kwargs: Any) -> Engine:
    """Open ``path`` on the backend that ``options.provider`` names (keywords build the options)."""
    opts = options or EngineOptions(**kwargs)
    try:
        provider = normalize_provider(opts.provider)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    target = BACKENDS[provider_family(provider)]
    module, _, function = target.partition(":")
    opener = getattr(importlib.import_module(module), function)
    return opener(Path(path), opts)
