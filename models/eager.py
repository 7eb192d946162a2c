"""The PyTorch eager baseline of ``edgecv profile --torch CHECKPOINT``.

``edgecv profile`` builds a :class:`TorchEagerBaseline` and hands it to the profiler, which
times it with the same harness, inputs and thread count as the ONNX Runtime rows, so the ratio
compares runtimes and nothing else. It lives here, not under ``edgecv.runtimes``, because it
needs torch: the profiler only sees the small interface below (``runtime``, ``label``,
``load_ms``, ``versions`` and ``runner``), never torch itself.
"""
from __future__ import annotations

import contextlib
import functools
import os
import time
from typing import Any, Callable, Iterator

import numpy as np
import torch

from edgecv.errors import ModelError
from edgecv.models.checkpoint import is_edgecv_checkpoint, load_checkpoint
from edgecv.models.registry import create_model
from edgecv.models.weights import load_weights


def load_eager_model(checkpoint: str | os.PathLike[str], *, contract: Any = None) -> torch.nn.Module:
    """Rebuild an edgecv model from a checkpoint (architecture from it or from the ONNX contract)."""
    import edgecv.models  # noqa: F401  (registers the architectures)

    ckpt = load_checkpoint(checkpoint)
    if is_edgecv_checkpoint(ckpt):
        arch, kwargs = ckpt.get("model"), dict(ckpt.get("model_kwargs") or {})
    else:
        arch = getattr(contract, "architecture", None)
        kwargs = dict(getattr(contract, "model_kwargs", None) or {})
    if not arch:
        raise ModelError(f"{checkpoint}: a bare state_dict names no architecture and the ONNX model "
                         f"has no edgecv contract; expected an edgecv checkpoint")
    model = create_model(arch, **kwargs)
    load_weights(model, checkpoint)
    return model.eval()


class TorchEagerBaseline:
    """PyTorch eager under ``torch.inference_mode`` with ``torch.set_num_threads(threads)``."""

    runtime = "torch"

    def __init__(self, checkpoint: str | os.PathLike[str], *, contract: Any = None) -> None:
        t0 = time.perf_counter_ns()  # torch is already imported: import time is not load time
        self.model = load_eager_model(checkpoint, contract=contract)
        self.load_ms = (time.perf_counter_ns() - t0) / 1e6
        self.label = os.fspath(checkpoint)
        self.versions = [f"torch {torch.__version__}"]

    @contextlib.contextmanager
    def runner(self, feeds: dict[str, np.ndarray], *, threads: int | None) -> Iterator[Callable[[], Any]]:
        """A zero-argument callable on ``feeds``; torch's thread count is restored afterwards.

        A RuntimeError from torch (inputs it cannot run) becomes a one-line ModelError."""
        previous = torch.get_num_threads()
        if threads is not None:
            torch.set_num_threads(int(threads))
        tensors = [torch.from_numpy(np.ascontiguousarray(v)) for v in feeds.values()]
        try:
            with torch.inference_mode():
                yield functools.partial(self.model, *tensors)
        except RuntimeError as exc:
            raise ModelError(f"{self.label}: PyTorch cannot run the synthesised inputs "
                             f"({str(exc).splitlines()[0][:200]})") from None
        finally:
            torch.set_num_threads(previous)
