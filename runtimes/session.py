"""ONNX Runtime sessions with honest provider selection (never imports torch).

``get_available_providers()`` lists CUDA even when its libraries are missing; only
``session.get_providers()`` tells what a session really got. ``provider="auto"`` therefore tries
CUDA and keeps it only if the session reports it, else falls back to CPU with a one-line notice.
An explicit provider that cannot be honoured raises :class:`ProviderError` unless fallback is allowed.
"""
from __future__ import annotations

import contextlib
import io
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecv.errors import InputError, ModelError, ProviderError
from edgecv.onnx_file import check_model_path

PROVIDER_NAMES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}
PROVIDER_CHOICES = ("auto", *PROVIDER_NAMES)


@dataclass
class SessionInfo:
    """A session plus what it really runs on and how long it took to create."""

    session: Any
    requested: str
    providers: list[str]  # what session.get_providers() reports, best first
    threads: int | None
    create_ms: float
    notices: list[str] = field(default_factory=list)

    @property
    def provider(self) -> str:
        """Short name of the provider actually used first: "cpu", "cuda" or "tensorrt"."""
        first = self.providers[0] if self.providers else "CPUExecutionProvider"
        return next((k for k, v in PROVIDER_NAMES.items() if v == first), first)


def quiet_ort(verbose: bool = False) -> None:
    """Silence ONNX Runtime's own log noise unless ``verbose``."""
    import onnxruntime as ort

    # 4 = FATAL: a failed CUDA provider load is logged at ERROR by ORT's provider bridge even when
    # the fallback to CPU is intended; the fallback itself is reported as a one-line notice.
    ort.set_default_logger_severity(0 if verbose else 4)


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
) -> SessionInfo:
    """Create an ``InferenceSession`` on the requested provider, reporting what it really got."""
    import onnxruntime as ort

    if provider not in PROVIDER_CHOICES:
        raise InputError(f"provider {provider!r}: expected one of {', '.join(PROVIDER_CHOICES)}")
    model_path = check_model_path(path)
    quiet_ort(verbose)
    opts = session_options(threads=threads, verbose=verbose, spinning=spinning,
                           profile_prefix=profile_prefix, optimization=optimization)
    wanted = _provider_list(provider)
    if wanted[0] != "CPUExecutionProvider" and hasattr(ort, "preload_dlls"):
        try:  # load the CUDA/cuDNN runtime wheels (edgecv[cuda]) before the session needs them
            if verbose:
                ort.preload_dlls()
            else:  # preload_dlls() print()s every library it cannot find
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                    ort.preload_dlls()
        except Exception:  # noqa: BLE001 - a failed preload just means CUDA will not be granted
            pass
    notices: list[str] = []
    start = time.perf_counter_ns()
    session = _new_session(model_path, opts, wanted)
    create_ms = (time.perf_counter_ns() - start) / 1e6
    got = list(session.get_providers())
    if wanted[0] != "CPUExecutionProvider" and got[0] != wanted[0]:
        short = provider if provider != "auto" else "cuda"
        if provider != "auto" and not allow_fallback:
            raise ProviderError(
                f"{model_path.name}: provider {short!r} is not usable here (ONNX Runtime gave "
                f"{', '.join(got)}); install edgecv[cuda] / check the CUDA and cuDNN libraries, "
                f"or use --provider cpu"
            )
        notices.append(f"notice: {short.upper()} is not usable here; running on CPU")
    return SessionInfo(session, provider, got, threads, create_ms, notices)


def _provider_list(provider: str) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if provider == "cpu":
        return ["CPUExecutionProvider"]
    if provider == "auto":
        return (["CUDAExecutionProvider", "CPUExecutionProvider"]
                if "CUDAExecutionProvider" in available else ["CPUExecutionProvider"])
    name = PROVIDER_NAMES[provider]
    if name not in available:
        raise ProviderError(
            f"provider {provider!r} is not in this ONNX Runtime build (available: {', '.join(available)})"
        )
    chain = [name]
    if provider == "tensorrt":
        chain.append("CUDAExecutionProvider")
    return chain + ["CPUExecutionProvider"]


def _new_session(path: Path, opts: Any, providers: list[str]) -> Any:
    import onnxruntime as ort

    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as exc:  # ORT raises its own Fail/InvalidGraph/InvalidProtobuf types
        text = " ".join(str(exc).split())
        if "Protobuf parsing failed" in text or "INVALID_PROTOBUF" in text:
            raise ModelError(f"{path}: not a valid ONNX model (protobuf parsing failed)") from None
        raise ModelError(f"{path}: ONNX Runtime cannot load the model ({text[:200]})") from None
