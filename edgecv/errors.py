"""Exceptions raised by edgecv library code.

Library code raises these; only the CLI turns them into one-line messages and exit codes.
Every message names the input and what was expected, e.g.
``"model.onnx: not an ONNX model (looks like a Git LFS pointer)"``.
"""
from __future__ import annotations


class EdgecvError(Exception):
    """Base class for all expected, user-facing failures (CLI exit code 1)."""


class InputError(EdgecvError):
    """A user-supplied file, folder, option value or data set is unusable."""


class ModelError(EdgecvError):
    """A model (architecture name, checkpoint, ONNX file) is unknown, corrupt or incompatible."""


class CheckpointError(ModelError):
    """A checkpoint or state dict cannot be read or does not fit the architecture."""


class ProviderError(EdgecvError):
    """An ONNX Runtime execution provider was requested but cannot be honoured."""


class MissingDependencyError(EdgecvError):
    """An optional dependency (torch, onnxsim, matplotlib) is needed for this feature."""


TESTED_TORCH = "2.13.0"  # the torch release the test suite and docs/benchmarks.md ran on
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"  # PyTorch's own CPU-only wheel index


def install_hint(module: str, extra: str) -> str:
    """What to run to get ``module``, as one line (the CLI's errors are one line on stderr).

    For torch, ``pip install 'edgecv[train]'`` alone resolves the newest torch from PyPI, which
    on Linux carries the whole CUDA stack (gigabytes), even on a CPU-only box or a small edge
    device. So the hint installs the tested release from PyTorch's CPU-only index first; the
    extra then finds torch satisfied and adds only the rest. A CUDA machine skips that step."""
    if module.split(".")[0] == "torch":
        return (f"pip install torch=={TESTED_TORCH} --index-url {TORCH_CPU_INDEX} (the CPU-only build; "
                f"skip this on a CUDA machine), then pip install 'edgecv[{extra}]'")
    return f"pip install 'edgecv[{extra}]'"


def require(module: str, extra: str) -> object:
    """Import an optional dependency or raise a one-line hint naming what to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{module} is not installed; this feature needs it: {install_hint(module, extra)}"
        ) from exc


def short_message(exc: BaseException | object, *, limit: int = 200) -> str:
    """An exception (or warning message) as one line of at most ``limit`` characters, for the
    "(reason)" part of a one-line error: native libraries put newlines and pages of context in
    their messages."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:limit] + ("..." if len(text) > limit else "")
