"""On-device evaluation: which of these ONNX files should I ship? (``edgecv val``, torch-free).

:func:`evaluate` runs every model over the same labelled data (see :mod:`eval_data`) on any
:class:`~edgecv.runtimes.engines.base.Engine` (ONNX Runtime today, OpenVINO, CUDA ...), and reports per
model: top-1 / top-k accuracy, macro F1, precision/recall/F1 per class, the confusion matrix and
its worst pairs, the file size (external data included), p50/p95 latency of one inference call
at the evaluation batch size, and what really ran (``engine.report()``); then one comparison
against the first model and a recommendation: the fastest file whose top-1 is within
``tolerance`` points of the best.

Decoding and preprocessing run on a :class:`~edgecv.runtimes.streaming.workers.Producer` thread, bounded
two batches ahead, so they overlap inference exactly as in the stream loop; the calling thread
only runs the engine and ranks the scores. Unreadable images are skipped and counted, as in
``infer``. Every model is opened and its classes matched before the first one is evaluated, so a
mismatch fails in a second, not after minutes of work on the first model.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from edgecv.errors import InputError
from edgecv.metrics import (
    ClassMetrics,
    column_names,
    confusion_matrix,
    macro_f1,
    per_class,
    top_k_hits,
    trim_other,
    worst_confusions,
)
from edgecv.postprocess import top_k as rank_top_k
from edgecv.preprocess import load_image
from edgecv.runtimes.classifier import Classifier, load
from edgecv.runtimes.engines.base import EngineOptions
from edgecv.runtimes.evaluation.compare import compare, recommend
from edgecv.runtimes.evaluation.data import EvalData, load_data, match_classes, model_bytes
from edgecv.runtimes.streaming.workers import Producer

Progress = Callable[[str, int], Any]  # (description, total) -> an object with update(n) / close(), or None
Batch = tuple[np.ndarray, np.ndarray]  # sample indices, their input batch


@dataclass
class EvalOptions:
    """How to evaluate; the defaults suit a small CPU device."""

    batch_size: int = 1  # images per inference call (latency is reported per call at this size)
    tolerance: float = 1.0  # accuracy points a faster file may lose and still be recommended
    top_k: int = 5
    labels: Sequence[str] | str | None = None  # class names for foreign models: a list, a file or "imagenet"
    overrides: dict[str, Any] = field(default_factory=dict)  # foreign-model preprocessing (load(**overrides))
    engine: EngineOptions = field(default_factory=EngineOptions)
    text_column: str = "text"
    label_column: str = "label"
    confusions: int = 5  # worst-confused pairs listed per model

    def check(self) -> None:
        """Raise :class:`InputError` for values no evaluation can honour."""
        if self.batch_size < 1:
            raise InputError(f"--batch-size {self.batch_size}: expected 1 or more")
        if self.top_k < 1:
            raise InputError(f"top_k {self.top_k}: expected 1 or more")
        if not 0 <= self.tolerance <= 100:
            raise InputError(f"--tolerance {self.tolerance}: expected accuracy points between 0 and 100")


@dataclass
class Latency:
    """One inference call at the evaluation batch size (warm-up and short last batches excluded)."""

    batch: int
    runs: int
    p50_ms: float
    p95_ms: float

    @property
    def per_image_ms(self) -> float:
        return self.p50_ms / self.batch

    def to_dict(self) -> dict[str, Any]:
        return {"batch": self.batch, "runs": self.runs, "p50_ms": round(self.p50_ms, 4),
                "p95_ms": round(self.p95_ms, 4), "per_image_ms": round(self.per_image_ms, 4)}


@dataclass
class ModelEval:
    """Every figure of one model on the data."""

    path: Path
    file_bytes: int
    engine: dict[str, Any]  # engine.report(): backend, providers, precision, threads
    describe: str
    samples: int
    skipped: list[str]
    top1: float
    topk: float
    k: int
    macro_f1: float
    classes: list[ClassMetrics]
    confusion: np.ndarray  # (classes, classes [+ 1 "(other)"]) counts
    columns: list[str]
    worst: list[dict[str, Any]]
    latency: Latency
    wall_s: float

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def images_per_s(self) -> float:
        return self.samples / self.wall_s if self.wall_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"model": str(self.path), "file_bytes": self.file_bytes, "engine": self.engine,
                "samples": self.samples, "skipped": len(self.skipped), "skipped_files": list(self.skipped),
                "top1": round(self.top1, 6), f"top{self.k}": round(self.topk, 6), "top_k": self.k,
                "macro_f1": round(self.macro_f1, 6), "per_class": [c.to_dict() for c in self.classes],
                "confusion": {"rows": [c.name for c in self.classes], "columns": self.columns,
                              "counts": self.confusion.tolist()},
                "worst_confusions": self.worst, "latency": self.latency.to_dict(),
                "wall_s": round(self.wall_s, 4), "samples_per_s": round(self.images_per_s, 2)}



@dataclass
class EvalReport:
    """All models on one data set, side by side, and which file to ship."""

    data: EvalData
    models: list[ModelEval]
    tolerance: float
    comparison: list[dict[str, Any]]
    recommendation: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"data": self.data.to_dict(), "tolerance_points": self.tolerance,
                "models": [m.to_dict() for m in self.models], "comparison": self.comparison,
                "recommendation": self.recommendation, "warnings": list(self.warnings)}


def evaluate(models: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], data: str | os.PathLike[str] | EvalData,
             options: EvalOptions | None = None, *, progress: Progress | None = None, **kwargs: Any) -> EvalReport:
    """Evaluate one or more ``.onnx`` classifiers on ``data`` and compare them.

    ``options`` (or its fields as keywords) sets batch size, tolerance, labels, preprocessing
    overrides and the engine (provider, threads); ``progress(description, total)`` may return a
    tqdm-like bar per model.

    >>> report = evaluate(["model.onnx", "model.int8.onnx"], "data/")      # doctest: +SKIP
    >>> report.recommendation["text"]                                       # doctest: +SKIP
    """
    opts = options if options is not None else EvalOptions(**kwargs)
    opts.check()
    paths = [models] if isinstance(models, (str, os.PathLike)) else list(models)
    if not paths:
        raise InputError("no model given: expected one or more .onnx files")
    dataset = data if isinstance(data, EvalData) else load_data(data, text_column=opts.text_column,
                                                               label_column=opts.label_column)
    engine = opts.engine if opts.engine.batch_sizes else replace(opts.engine, batch_sizes=(opts.batch_size,))
    classifiers = []
    for path in paths:  # open and match all first: a mismatch fails before any work
        clf = load(path, engine=engine, labels=opts.labels, **opts.overrides)
        classifiers.append((clf, _check_model(clf, dataset)))
    results = [evaluate_model(clf, dataset, index, opts, progress=progress) for clf, index in classifiers]
    warnings = list(dataset.warnings) + [n for clf, _ in classifiers for n in clf.engine.notices]
    return EvalReport(data=dataset, models=results, tolerance=opts.tolerance, comparison=compare(results),
                      recommendation=recommend(results, opts.tolerance), warnings=warnings)


def _check_model(clf: Classifier, data: EvalData) -> np.ndarray:
    """The model fits the data (image model for folders, text model with a tokenizer for a
    table); returns the data classes' indices among the model's classes."""
    name = clf.path.name
    if data.kind == "images" and clf.task != "image":
        raise InputError(f"{name}: is a text model; {data.path} holds images (expected a .csv/.tsv/.jsonl "
                         f"of texts for it, or an image model)")
    if data.kind == "texts":
        if clf.task != "text":
            raise InputError(f"{name}: is an image model; {data.path} is a text table (expected image folders "
                             f"for it, or a text model)")
        if clf.tokenizer is None:
            raise InputError(f"{name}: text model without an edgecv tokenizer in its metadata; "
                             f"export it with edgecv to evaluate it on texts")
    return match_classes(data, clf.labels, model=name)


def evaluate_model(clf: Classifier, data: EvalData, index: np.ndarray, opts: EvalOptions, *,
                   progress: Progress | None = None) -> ModelEval:
    """One model over the whole data set: the timed pass, then the figures."""
    k = min(opts.top_k, len(clf.labels))
    ranked, done, skipped, times_ns, wall_s = _run_pass(clf, data, opts.batch_size, k, progress)
    if not done.any():
        raise InputError(f"{data.path}: none of the {len(data)} samples could be read")
    truth = data.labels[done]
    ranked = ranked[done]
    to_data = np.full(max(len(clf.labels), 1), -1, dtype=np.int64)
    to_data[index] = np.arange(len(index))
    predicted = to_data[ranked[:, 0]]  # -1: a model class that has no folder in the data
    cm = trim_other(confusion_matrix(truth, predicted, len(data.classes)))
    rows = per_class(cm, data.classes)
    return ModelEval(
        path=clf.path, file_bytes=model_bytes(clf.path), engine=clf.engine.report(), describe=clf.describe(),
        samples=int(done.sum()), skipped=list(data.skipped) + skipped,
        top1=float(np.mean(predicted == truth)), topk=float(np.mean(top_k_hits(ranked, index[truth]))), k=k,
        macro_f1=macro_f1(rows), classes=rows, confusion=cm, columns=column_names(cm, data.classes),
        worst=worst_confusions(cm, data.classes, limit=opts.confusions),
        latency=_latency(times_ns, opts.batch_size), wall_s=wall_s)


def _run_pass(clf: Classifier, data: EvalData, batch_size: int, k: int, progress: Progress | None
              ) -> tuple[np.ndarray, np.ndarray, list[str], list[int], float]:
    """Inference over every sample: (ranked (N, k), evaluated mask (N,), skipped files,
    nanoseconds per full-size inference call, wall seconds)."""
    n = len(data)
    ranked = np.zeros((n, k), dtype=np.int64)
    done = np.zeros(n, dtype=bool)
    skipped: list[str] = []
    times: list[int] = []
    _warm_up(clf, data, batch_size)
    produce = _image_batches(clf, data, batch_size, skipped) if data.kind == "images" \
        else _text_batches(clf, data, batch_size)
    producer: Producer[Batch] = Producer(produce, maxsize=2, name="edgecv-val-preprocess")
    bar = progress(clf.path.name, n) if progress is not None else None
    clock = time.perf_counter_ns
    start = clock()
    try:
        for ids, x in producer:
            t0 = clock()
            raw, _ = clf.run(x)
            t1 = clock()
            if len(ids) == batch_size:
                times.append(t1 - t0)
            ranked[ids] = rank_top_k(clf.postprocess(raw), k)[0]
            done[ids] = True
            if bar is not None:
                bar.update(len(ids))
    finally:
        producer.close()
        if bar is not None:
            bar.close()
    return ranked, done, skipped, times, (clock() - start) / 1e9


def _warm_up(clf: Classifier, data: EvalData, batch_size: int, *, calls: int = 1) -> None:
    """Untimed call(s) at the evaluation batch size: the first run pays for memory arenas and
    kernel selection, which is cold start, not latency (the p50 of the timed calls absorbs the
    rest)."""
    if data.kind == "images" and clf.spec is not None:
        x = np.zeros(clf.spec.input_shape(batch_size), dtype=clf.input.dtype)
    elif clf.tokenizer is not None:
        x = clf.tokenizer.encode_batch(["warm up"] * batch_size, length=_text_length(clf)).astype(clf.input.dtype)
    else:
        return
    for _ in range(calls):
        clf.run(x)


def _image_batches(clf: Classifier, data: EvalData, batch_size: int,
                   skipped: list[str]) -> Callable[[Callable[[Batch], bool]], None]:
    """Decode and preprocess full batches of readable images; unreadable ones are recorded in
    ``skipped`` (read by the caller once the producer is done) and their place is filled by the
    next image, so every call but the last has the evaluation batch size."""

    def produce(put: Callable[[Batch], bool]) -> None:
        ids: list[int] = []
        images: list[np.ndarray] = []
        for i, path in enumerate(data.samples):
            try:
                images.append(load_image(path))
            except InputError as exc:
                skipped.append(str(exc))
                continue
            ids.append(i)
            if len(ids) == batch_size:
                if not put((np.asarray(ids), clf.preprocess(images))):
                    return
                ids, images = [], []
        if ids:
            put((np.asarray(ids), clf.preprocess(images)))

    return produce


def _text_length(clf: Classifier) -> int | None:
    return clf.input.shape[1] if len(clf.input.shape) > 1 else None


def _text_batches(clf: Classifier, data: EvalData, batch_size: int) -> Callable[[Callable[[Batch], bool]], None]:
    """Tokenise batches of texts with the model's own tokenizer."""
    tokenizer, length = clf.tokenizer, _text_length(clf)

    def produce(put: Callable[[Batch], bool]) -> None:
        for start in range(0, len(data), batch_size):
            chunk = data.samples[start:start + batch_size]
            ids = tokenizer.encode_batch(chunk, length=length).astype(clf.input.dtype)  # (B, T)
            if not put((np.arange(start, start + len(chunk)), ids)):
                return

    return produce


def _latency(times_ns: list[int], batch: int) -> Latency:
    if not times_ns:  # fewer samples than one batch: no full-size call to time
        return Latency(batch=batch, runs=0, p50_ms=float("nan"), p95_ms=float("nan"))
    p50, p95 = np.percentile(np.asarray(times_ns, dtype=np.float64) / 1e6, [50, 95])
    return Latency(batch=batch, runs=len(times_ns), p50_ms=float(p50), p95_ms=float(p95))
