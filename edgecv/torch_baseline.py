"""The PyTorch eager baseline of ``edgecv profile --torch CHECKPOINT``.

Same inputs (the sweep's pre-allocated feeds), same thread count and the same timing harness as
the ONNX Runtime rows, so the ratio compares runtimes and nothing else. It lives outside
``edgecv.runtimes`` because it needs torch; torch is imported inside the functions, so profiling
without ``--torch`` works on a torch-free device.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from edgecv.errors import MissingDependencyError, ModelError
from edgecv.runtimes.profiler import ColdStart, first_run_ms, measure
from edgecv.runtimes.sweep import Config, ProfileResult, _seq_of


def ensure_torch() -> Any:
    """Import torch and the model registry (seconds on a cold start, so callers do it before
    timing a model load), or raise a one-line hint naming the extra to install."""
    try:
        import torch
    except ImportError:
        raise MissingDependencyError(
            "torch is not installed; --torch needs it: pip install 'edgecv[train]'") from None
    import edgecv.models  # noqa: F401  (registers the architectures)

    return torch


def load_torch_model(checkpoint: str | os.PathLike[str], *, contract: Any = None) -> Any:
    """Rebuild an edgecv model from a checkpoint (architecture from it or from the ONNX contract)."""
    ensure_torch()
    from edgecv.checkpoint import is_edgecv_checkpoint, load_checkpoint
    from edgecv.models import create_model, load_weights

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


def profile_torch(model: Any, cfg: Config, feeds: dict[str, np.ndarray], *, warmup: int,
                  runs: int | None, duration_s: float | None, label: str,
                  create_ms: float = 0.0) -> ProfileResult:
    """PyTorch eager under ``torch.inference_mode`` with ``torch.set_num_threads(threads)``."""
    import functools

    import torch

    previous = torch.get_num_threads()
    if cfg.threads is not None:
        torch.set_num_threads(int(cfg.threads))
    tensors = [torch.from_numpy(np.ascontiguousarray(v)) for v in feeds.values()]
    try:
        with torch.inference_mode():
            fn = functools.partial(model, *tensors)
            first = first_run_ms(fn)
            stats = measure(fn, warmup=warmup, runs=runs, duration_s=duration_s, items_per_run=cfg.batch)
    except RuntimeError as exc:
        raise ModelError(f"{label}: PyTorch cannot run the synthesised inputs "
                         f"({str(exc).splitlines()[0][:200]})") from None
    finally:
        torch.set_num_threads(previous)
    return ProfileResult(Path(label).name, "torch", "cpu", cfg.batch, cfg.threads, _seq_of(cfg.model, feeds),
                         stats, ColdStart(create_ms, first), [f"torch {torch.__version__}"], str(label))
