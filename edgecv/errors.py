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


def require(module: str, extra: str) -> object:
    """Import an optional dependency or raise a one-line hint naming the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{module} is not installed; this feature needs it: pip install 'edgecv[{extra}]'"
        ) from exc


def short_message(exc: BaseException | object, *, limit: int = 200) -> str:
    """An exception (or warning message) as one line of at most ``limit`` characters, for the
    "(reason)" part of a one-line error: native libraries put newlines and pages of context in
    their messages."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:limit] + ("..." if len(text) > limit else "")
