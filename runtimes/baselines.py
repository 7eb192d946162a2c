"""Baselines measured in the same run as ONNX Runtime: PyTorch eager and OpenCV's dnn module.

Same inputs (the sweep's pre-allocated feeds), same thread count and the same timing harness, so
the speed-up ratios compare runtimes and nothing else. torch is imported only inside
:func:`profile_torch`; this module stays importable on a torch-free edge device.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgecv.errors import MissingDependencyError, ModelError
from edgecv.runtimes.profiler import ColdStart, first_run_ms, measure
from edgecv.runtimes.sweep import Config, ProfileResult, _seq_of


def profile_opencv(cfg: Config, feeds: dict[str, np.ndarray], *, warmup: int, runs: int | None,
                   duration_s: float | None) -> ProfileResult:
    """cv2.dnn on the same ONNX file with ``cv2.setNumThreads(threads)``."""
    import cv2

    name = cfg.model.name
    previous = cv2.getNumThreads()
    _quiet_cv2(cv2)
    if cfg.threads is not None:
        cv2.setNumThreads(int(cfg.threads))
    try:
        t0 = time.perf_counter_ns()
        try:
            net = cv2.dnn.readNetFromONNX(str(cfg.model.path))
        except cv2.error as exc:
            raise ModelError(f"{name}: OpenCV dnn cannot load this model ({_first_line(exc)}); "
                             f"drop --opencv for it") from None
        create_ms = (time.perf_counter_ns() - t0) / 1e6
        if net.empty():
            raise ModelError(f"{name}: OpenCV dnn loaded an empty network; drop --opencv for it")
        net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)  # plain CPU backend, as a device has
        for key, value in feeds.items():
            net.setInput(value, key) if len(feeds) > 1 else net.setInput(value)
        fn = net.forward
        try:
            first = first_run_ms(fn)
        except cv2.error as exc:
            raise ModelError(f"{name}: OpenCV dnn cannot run this model at batch {cfg.batch} "
                             f"({_first_line(exc)}); drop --opencv for it") from None
        stats = measure(fn, warmup=warmup, runs=runs, duration_s=duration_s, items_per_run=cfg.batch)
    finally:
        cv2.setNumThreads(previous)
    return ProfileResult(name, "opencv", "cpu", cfg.batch, cfg.threads, _seq_of(cfg.model, feeds), stats,
                         ColdStart(create_ms, first), ["cv2.dnn"], str(cfg.model.path))


def _quiet_cv2(cv2: Any) -> None:
    """OpenCV's dnn prints warnings (e.g. about its graph engine) that are not errors."""
    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    except AttributeError:
        pass


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = next((ln for ln in lines if "error:" in ln), lines[-1] if lines else type(exc).__name__)
    return text[:200]


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
    from edgecv.checkpoint import extract_state_dict, is_edgecv_checkpoint, load_checkpoint
    from edgecv.models import create_model

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
    try:
        from edgecv.models.weights import load_weights
    except ImportError:
        load_weights = None
    if load_weights is not None:
        load_weights(model, checkpoint)
    else:
        try:
            model.load_state_dict(extract_state_dict(ckpt, source=str(checkpoint)))
        except RuntimeError as exc:
            raise ModelError(f"{checkpoint}: weights do not fit {arch} ({str(exc).splitlines()[0]})") from None
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
