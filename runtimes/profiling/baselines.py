"""Baselines measured in the same run as ONNX Runtime: OpenCV dnn, and any runtime handed in.

Same inputs (the sweep's pre-allocated feeds), same thread count and the same timing harness, so
the speed-up ratios compare runtimes and nothing else. runtimes/ never imports torch: the
PyTorch eager baseline (``edgecv.models.eager``) is built by ``edgecv profile`` and handed in as
a :class:`Baseline`, which this module times without knowing what runs inside.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, ContextManager, Protocol

import numpy as np

from edgecv.errors import ModelError
from edgecv.runtimes.profiling.sweep import Config, ProfileResult, seq_of
from edgecv.runtimes.profiling.timing import ColdStart, first_run_ms, measure


class Baseline(Protocol):
    """A runtime handed to the profiler from outside (e.g. PyTorch eager from a checkpoint)."""

    runtime: str  # the row's runtime column, e.g. "torch"
    label: str  # what was loaded (a checkpoint path)
    load_ms: float  # model load time, reported as the row's cold-start create time
    versions: list[str]  # reported in the row's providers column, e.g. ["torch 2.13.0"]

    def runner(self, feeds: dict[str, np.ndarray], *, threads: int | None) -> ContextManager[Callable[[], Any]]:
        """A context giving a zero-argument callable that runs the model on ``feeds``."""


def profile_baseline(baseline: Baseline, cfg: Config, feeds: dict[str, np.ndarray], *, warmup: int,
                     runs: int | None, duration_s: float | None) -> ProfileResult:
    """Time a handed-in baseline exactly as the ONNX Runtime rows are timed."""
    with baseline.runner(feeds, threads=cfg.threads) as fn:
        first = first_run_ms(fn)
        stats = measure(fn, warmup=warmup, runs=runs, duration_s=duration_s, items_per_run=cfg.batch)
    return ProfileResult(Path(baseline.label).name, baseline.runtime, "cpu", cfg.batch, cfg.threads,
                         seq_of(cfg.model, feeds), stats, ColdStart(baseline.load_ms, first),
                         list(baseline.versions), baseline.label)


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
    return ProfileResult(name, "opencv", "cpu", cfg.batch, cfg.threads, seq_of(cfg.model, feeds), stats,
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
