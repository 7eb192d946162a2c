"""ONNX Runtime sessions with honest provider selection (never imports torch).

``get_available_providers()`` lists CUDA even when its libraries are missing; only
``session.get_providers()`` tells what a session really got. ``provider="auto"`` therefore tries
CUDA and keeps it only if the session reports it, else runs on CPU: quietly on a machine without
an NVIDIA GPU (the report line already names the provider), with a one-line notice on one that has
a GPU it could not use. An explicit provider that cannot be honoured raises :class:`ProviderError`
unless fallback is allowed; the notice then names the provider really got (TensorRT may land on
CUDA, not CPU).

GPU providers are created with their options (``provider_options.py``: CUDA's device and cuDNN
search, TensorRT's caches, fp16 and profiles, and ``--provider-option`` merged over them); what
they did (cache hit or build, search mode, the options really passed) is in ``SessionInfo.details``.
A CPU-only chain is created exactly as before, without provider options.
"""
from __future__ import annotations

import contextlib
import functools
import io
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecv.errors import EdgecvError, InputError, ModelError, ProviderError
from edgecv.onnx_file import check_model_path, load_onnx
from edgecv.runtimes.engines.provider_options import plan_providers

PROVIDER_NAMES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}
PROVIDER_CHOICES = ("auto", *PROVIDER_NAMES)
TENSORRT = PROVIDER_NAMES["tensorrt"]


@dataclass
class SessionInfo:
    """A session plus what it really runs on and how long it took to create."""

    session: Any
    requested: str
    providers: list[str]  # what session.get_providers() reports, best first
    threads: int | None
    create_ms: float
    notices: list[str] = field(default_factory=list)
    # GPU facts for reports: provider_options, device_id, cudnn_conv_algo_search, tensorrt_cache, ...
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def provider(self) -> str:
        """Short name of the provider actually used first: "cpu", "cuda" or "tensorrt"."""
        return _short(self.providers[0] if self.providers else "CPUExecutionProvider")


_ort_log_severity: int | None = None  # the process-wide level last given to ONNX Runtime


def quiet_ort(verbose: bool = False) -> None:
    """Silence ONNX Runtime's own log noise unless ``verbose``.

    The default logger is process-wide, so it is set once per process (again only if ``verbose``
    changes), not on every session a sweep or a stream creates.
    """
    global _ort_log_severity
    # 4 = FATAL: a failed CUDA provider load is logged at ERROR by ORT's provider bridge even when
    # the fallback to CPU is intended; the fallback itself is reported as a one-line notice.
    level = 0 if verbose else 4
    if _ort_log_severity == level:
        return
    import onnxruntime as ort

    ort.set_default_logger_severity(level)
    _ort_log_severity = level


@functools.lru_cache(maxsize=None)
def nvidia_gpu_present() -> bool:
    """True where this machine has an NVIDIA driver and GPU (a device node, a driver entry or the
    driver's tool). ``onnxruntime-gpu`` lists CUDA on every machine, so only this tells a box that
    could have run on its GPU (worth a notice) from one that never could (CPU is no news)."""
    if sys.platform.startswith("linux"):
        dev = Path("/dev")
        return (any(dev.glob("nvidia[0-9]*")) or (dev / "nvhost-ctrl-gpu").exists()  # Jetson: nvhost
                or any(Path("/proc/driver/nvidia/gpus").glob("*")))
    if sys.platform == "win32":
        return shutil.which("nvidia-smi") is not None
    return False  # macOS and others: no CUDA


def session_options(*, threads: int | None = None, verbose: bool = False, spinning: bool = False,
                    profile_prefix: str | None = None, optimization: str = "all") -> Any:
    """SessionOptions with explicit threads and no busy-spinning by default (it starves capture
    and preprocessing threads on small CPUs)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 0 if verbose else 3
    if threads is not None:
        if threads < 1:
            raise InputError(f"threads={threads}: expected a positive integer")
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    levels = {
        "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    opts.graph_optimization_level = levels[optimization]
    if profile_prefix:
        opts.enable_profiling = True
        opts.profile_file_prefix = profile_prefix
    return opts


def create_session(
    path: str | os.PathLike[str],
    *,
    provider: str = "auto",
    threads: int | None = None,
    verbose: bool = False,
    allow_fallback: bool = False,
    spinning: bool = False,
    profile_prefix: str | None = None,
    optimization: str = "all",
    engine: Any = None,
) -> SessionInfo:
    """Create an ``InferenceSession`` on the requested provider, reporting what it really got.

    ``engine``: an ``EngineOptions`` with the GPU settings (device, fp16, fast start, cache folder,
    the batch sizes and sequence lengths to build TensorRT profiles for, ``--provider-option``);
    None uses their defaults."""
    import onnxruntime as ort

    if provider not in PROVIDER_CHOICES:
        raise InputError(f"provider {provider!r}: expected one of {', '.join(PROVIDER_CHOICES)}")
    model_path = check_model_path(path)
    quiet_ort(verbose)
    opts = session_options(threads=threads, verbose=verbose, spinning=spinning,
                           profile_prefix=profile_prefix, optimization=optimization)
    wanted, chain = _provider_list(provider, allow_fallback=allow_fallback)
    plan = plan_providers(model_path, chain, engine)
    if chain[0] != "CPUExecutionProvider":
        _preload(ort, verbose=verbose)
    plan.prepare()  # TensorRT: look for a cached engine, announce a build
    start = time.perf_counter_ns()
    session = _new_session(model_path, opts, chain, plan.provider_options(), quiet=not verbose)
    got = list(session.get_providers())
    if chain[0] == TENSORRT and got[0] == PROVIDER_NAMES["cuda"]:
        # ONNX Runtime's own retry without TensorRT drops every provider option (the CUDA device,
        # cuDNN search, --provider-option): ask again for CUDA, with them
        plan = plan.without(TENSORRT)
        session = _new_session(model_path, opts, plan.chain, plan.provider_options(), quiet=not verbose)
        got = list(session.get_providers())
    create_ms = (time.perf_counter_ns() - start) / 1e6
    notices = _provider_notices(model_path, provider, wanted, got, allow_fallback=allow_fallback)
    more, details = plan.outcome(got, create_ms)
    return SessionInfo(session, provider, got, threads, create_ms, notices + more, details)


def _preload(ort: Any, *, verbose: bool) -> None:
    """Load the CUDA/cuDNN runtime wheels (edgecv[cuda]) before a GPU session needs them."""
    if not hasattr(ort, "preload_dlls"):
        return
    try:
        if verbose:
            ort.preload_dlls()
        else:  # preload_dlls() print()s every library it cannot find
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                ort.preload_dlls()
    except Exception:  # noqa: BLE001 - a failed preload just means CUDA will not be granted
        pass


def _short(provider_name: str) -> str:
    """"CUDAExecutionProvider" -> "cuda" (unknown names are kept as they are)."""
    return next((k for k, v in PROVIDER_NAMES.items() if v == provider_name), provider_name)


def _provider_notices(model_path: Path, provider: str, wanted: str, got: list[str], *,
                      allow_fallback: bool) -> list[str]:
    """What to tell the user about the provider the session really got, or the error to raise.

    An explicit provider not honoured is an error without ``allow_fallback``, else a notice naming
    what ran instead. ``auto`` that ends on CPU is news only on a machine with an NVIDIA GPU.
    """
    first = got[0] if got else "CPUExecutionProvider"
    if wanted == first:
        if provider == "auto" and first == "CPUExecutionProvider" and nvidia_gpu_present():
            return ["notice: this machine has an NVIDIA GPU but this ONNX Runtime build has no CUDA "
                    "provider; running on CPU (install edgecv[cuda] for onnxruntime-gpu)"]
        return []
    if provider != "auto" and not allow_fallback:
        raise ProviderError(
            f"{model_path.name}: provider {provider!r} is not usable here (ONNX Runtime gave "
            f"{', '.join(got)}); install edgecv[cuda] / check the CUDA and cuDNN libraries, "
            f"or use --provider cpu"
        )
    if provider == "auto":
        if not nvidia_gpu_present():
            return []
        return [f"notice: CUDA is not usable here (check the CUDA and cuDNN libraries, or install "
                f"edgecv[cuda]); running on {_short(first).upper()}"]
    return [f"notice: {provider.upper()} is not usable here; running on {_short(first).upper()}"]


def _provider_list(provider: str, *, allow_fallback: bool = False) -> tuple[str, list[str]]:
    """(the provider wanted first, the chain to ask ONNX Runtime for). With ``allow_fallback`` a
    provider this build lacks is left out of the chain (ONNX Runtime would only warn about it) and
    the notice names what ran instead; without it, that is an error."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if provider == "cpu":
        return "CPUExecutionProvider", ["CPUExecutionProvider"]
    if provider == "auto":
        chain = (["CUDAExecutionProvider", "CPUExecutionProvider"]
                 if "CUDAExecutionProvider" in available else ["CPUExecutionProvider"])
        return chain[0], chain
    name = PROVIDER_NAMES[provider]
    if name not in available and not allow_fallback:
        raise ProviderError(
            f"provider {provider!r} is not in this ONNX Runtime build (available: {', '.join(available)})"
        )
    chain = [name, "CUDAExecutionProvider"] if provider == "tensorrt" else [name]
    return name, [p for p in chain if p in available] + ["CPUExecutionProvider"]


def _new_session(path: Path, opts: Any, providers: list[str], provider_options: list[dict[str, str]] | None,
                 *, quiet: bool = True) -> Any:
    import onnxruntime as ort

    extra = {} if provider_options is None else {"provider_options": provider_options}
    # without its libraries, TensorRT makes ONNX Runtime print() an "EP Error" banner (to stdout,
    # where --json - goes) before it retries without it; the notice says what ran instead
    hush = quiet and TENSORRT in providers
    try:
        with contextlib.redirect_stdout(io.StringIO()) if hush else contextlib.nullcontext():
            return ort.InferenceSession(str(path), sess_options=opts, providers=providers, **extra)
    except Exception as exc:  # ORT raises its own Fail/InvalidGraph/InvalidProtobuf types
        text = " ".join(str(exc).split())
    # Let the one file check used by inspect and profile name what the file is (a Git LFS pointer,
    # truncated, not ONNX) in the same words; it reads the file only on this failure path.
    try:
        load_onnx(path, load_external_data=False)
    except EdgecvError:
        raise
    except Exception:  # noqa: BLE001 - the diagnosis failed too: report ONNX Runtime's own reason
        pass
    raise ModelError(f"{path}: ONNX Runtime cannot load the model ({text[:200]})")
