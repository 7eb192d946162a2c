"""edgecv: train, export, verify, run and profile classifiers as ONNX on edge devices.

Importing ``edgecv`` never imports torch: an edge device installs edgecv without PyTorch.
Heavy entry points are resolved lazily (PEP 562 ``__getattr__``).
"""
from __future__ import annotations

from typing import Any

from edgecv._version import __version__
from edgecv.errors import EdgecvError

__all__ = ["__version__", "EdgecvError", "load", "train"]


def load(path: str, provider: str = "auto", threads: int | None = None, **kwargs: Any) -> Any:
    """Load an ``.onnx`` classifier for inference (torch-free); see ``edgecv.runtimes.load``."""
    from edgecv.runtimes import load as _load

    return _load(path, provider=provider, threads=threads, **kwargs)


def train(*args: Any, **kwargs: Any) -> Any:
    """Train a classifier (needs the ``[train]`` extra); see ``edgecv.training.trainer.train``."""
    from edgecv.training.trainer import train as _train

    return _train(*args, **kwargs)
