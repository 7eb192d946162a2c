"""Staged parity: the PyTorch model vs each ONNX file, on the same inputs, in ONNX Runtime (CPU).

Every stage (fp32, simplified, fp16, int8) is compared with the fp32 PyTorch outputs:
max absolute and relative difference, top-1 agreement, top-5 overlap, and accuracy against the
labels of ``--data`` when it has them. Inputs are run at batch 1, then 3, then in larger chunks
(and, for text, at alternating sequence lengths), so a graph that only runs at its traced shape
fails here instead of on the device (pytorch#111800, #133653).

Tolerances: fp32 passes when ``|onnx - torch| <= atol + rtol * |torch|`` for every element
(atol = rtol = 1e-4, numpy's ``allclose`` rule) and top-1 agreement is 100 %. Reduced precisions
are judged on agreement only (fp16 >= 99 %; int8 below 98 % is a warning).
``max_rel`` is the largest absolute difference divided by the largest reference magnitude: a
scale-aware figure that does not explode on logits that happen to be near zero.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from edgecv.errors import ModelError
from edgecv.exporters.samples import SampleSet, batch_arrays
from edgecv.postprocess import top_k
from edgecv.preprocess import PreprocessSpec
from edgecv.tokenizer import WordTokenizer

BATCH_SIZES = (1, 3, 16)  # 1 and 3 prove the batch axis is dynamic; 16 just speeds up the rest
FP32_ATOL = 1e-4
FP32_RTOL = 1e-4
FP16_MIN_TOP1 = 0.99
INT8_WARN_TOP1 = 0.98


@dataclass
class Reference:
    """The fp32 PyTorch outputs that every ONNX stage is compared with."""

    samples: SampleSet
    batches: list[np.ndarray]  # model inputs, one array per run
    labels: np.ndarray  # (N,) int64, -1 = unknown
    logits: np.ndarray  # (N, classes) float32
    attention: list[np.ndarray] | None = None  # per batch (B, layers, heads, T, T)

    @property
    def batch_sizes(self) -> list[int]:
        return sorted({int(b.shape[0]) for b in self.batches})

    @property
    def sequence_lengths(self) -> list[int]:
        if self.samples.task != "text":
            return []
        return sorted({int(b.shape[1]) for b in self.batches})


@dataclass
class ParityResult:
    """How one ONNX file compares with the fp32 PyTorch model."""

    stage: str
    data: str  # "real" | "random"
    source: str
    samples: int
    batch_sizes: list[int]
    sequence_lengths: list[int]
    passed: bool
    max_abs: float | None = None
    max_rel: float | None = None
    mean_abs: float | None = None
    top1_agreement: float | None = None
    top5_overlap: float | None = None
    accuracy: float | None = None  # vs --data labels (None without labels)
    reference_accuracy: float | None = None  # the PyTorch model's accuracy on the same samples
    attention_max_abs: float | None = None
    criteria: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # why it failed (e.g. "does not run at batch 3: ...")
    warning: str | None = None
    reference: str = "torch fp32"  # what every stage is compared with

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        return {k: (round(v, 8) if isinstance(v, float) else v) for k, v in out.items()}


def torch_reference(model: Any, samples: SampleSet, *, spec: PreprocessSpec | None = None,
                    tokenizer: WordTokenizer | None = None, max_len: int | None = None,
                    return_attention: bool = False,
                    sizes: Sequence[int] = BATCH_SIZES) -> Reference:
    """Run the PyTorch model (eval, no grad) over ``samples`` in batches of ``sizes``."""
    import torch

    model.eval()
    batches, labels, logits, attention = [], [], [], []
    with torch.no_grad():
        for batch, batch_labels in batch_arrays(samples, sizes=sizes, spec=spec, tokenizer=tokenizer,
                                                max_len=max_len):
            x = torch.from_numpy(np.ascontiguousarray(batch))
            if return_attention:
                out, att = model(x, return_attention=True)
                attention.append(att.float().numpy())
            else:
                out = model(x)
            batches.append(batch)
            labels.extend(batch_labels)
            logits.append(out.float().reshape(out.shape[0], -1).numpy())
    return Reference(samples=samples, batches=batches, labels=np.asarray(labels, dtype=np.int64),
                     logits=np.concatenate(logits), attention=attention if return_attention else None)


def run_onnx(path: str | os.PathLike[str], batches: Sequence[np.ndarray], *,
             threads: int | None = None) -> tuple[np.ndarray, list[np.ndarray] | None]:
    """Run every batch through ONNX Runtime on CPU; returns (logits (N, C), attention per batch).

    Raises :class:`ModelError` naming the batch shape at which the graph stops running.
    """
    from edgecv.runtimes.engines.session import create_session

    info = create_session(path, provider="cpu", threads=threads)
    session = info.session
    name = session.get_inputs()[0].name
    out_names = [o.name for o in session.get_outputs()]
    want_att = "attention" in out_names
    logits, attention = [], []
    for batch in batches:
        try:
            outs = session.run(None, {name: batch})
        except Exception as exc:  # ORT raises Fail/InvalidArgument/RuntimeException
            shape = "x".join(str(d) for d in batch.shape)
            msg = " ".join(str(exc).split())[:200]
            raise ModelError(f"{os.fspath(path)}: graph does not run on input {shape} "
                             f"(a dynamic axis was specialised during export?): {msg}") from None
        result = dict(zip(out_names, outs))
        out = np.asarray(result.get("logits", outs[0]), dtype=np.float32)
        logits.append(out.reshape(out.shape[0], -1))
        if want_att:
            attention.append(np.asarray(result["attention"], dtype=np.float32))
    return np.concatenate(logits), (attention if want_att else None)


def compare(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    """Difference and ranking agreement of two (N, C) logit arrays."""
    if reference.shape != candidate.shape:
        raise ModelError(f"output shape {candidate.shape} differs from the reference {reference.shape}")
    diff = np.abs(candidate.astype(np.float64) - reference.astype(np.float64))
    scale = max(float(np.max(np.abs(reference), initial=0.0)), 1e-12)
    k = min(5, reference.shape[1])
    # the runtime's own ranking: int8 logits can tie exactly, and top-1 must then be the class
    # that argmax (accuracy, the runtime) picks, the lowest index
    top_ref, _ = top_k(reference, k)
    top_cand, _ = top_k(candidate, k)
    overlap = [len(set(a) & set(b)) / k for a, b in zip(top_ref, top_cand)]
    return {
        "max_abs": float(diff.max(initial=0.0)),
        "max_rel": float(diff.max(initial=0.0) / scale),
        "mean_abs": float(diff.mean()) if diff.size else 0.0,
        "top1_agreement": float(np.mean(top_ref[:, 0] == top_cand[:, 0])) if len(diff) else 1.0,
        "top5_overlap": float(np.mean(overlap)) if overlap else 1.0,
    }


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float | None:
    """Top-1 accuracy over samples with a known label (None when none are labelled)."""
    known = labels >= 0
    if not known.any():
        return None
    return float(np.mean(np.argmax(logits[known], axis=1) == labels[known]))


def verify_onnx(path: str | os.PathLike[str], reference: Reference, *, stage: str,
                atol: float | None = FP32_ATOL, rtol: float = FP32_RTOL,
                min_top1: float | None = 1.0, warn_top1: float | None = None,
                threads: int | None = None) -> ParityResult:
    """Compare ``path`` with the PyTorch reference; never raises for a mismatch (see ``passed``).

    ``atol=None`` skips the element-wise check (reduced precisions); ``min_top1`` is the top-1
    agreement needed to pass; ``warn_top1`` only adds a warning below it.
    """
    samples = reference.samples
    result = ParityResult(stage=stage, data="real" if samples.real else "random", source=samples.source,
                          samples=len(reference.logits), batch_sizes=reference.batch_sizes,
                          sequence_lengths=reference.sequence_lengths, passed=False,
                          criteria={"atol": atol, "rtol": rtol if atol is not None else None,
                                    "min_top1": min_top1, "warn_top1": warn_top1})
    result.reference_accuracy = accuracy(reference.logits, reference.labels)
    try:
        logits, attention = run_onnx(path, reference.batches, threads=threads)
        metrics = compare(reference.logits, logits)
    except ModelError as exc:
        result.error = str(exc)
        return result
    for key, value in metrics.items():
        setattr(result, key, value)
    result.accuracy = accuracy(logits, reference.labels)
    problems = []
    if atol is not None:
        bound = atol + rtol * np.abs(reference.logits)
        if not np.all(np.abs(logits - reference.logits) <= bound):
            problems.append(f"max |diff| {metrics['max_abs']:.3g} exceeds atol {atol:g} + rtol {rtol:g}")
        if reference.attention is not None and attention is not None:
            att_diff = max(float(np.max(np.abs(a - b))) for a, b in zip(attention, reference.attention))
            result.attention_max_abs = att_diff
            if att_diff > atol:
                problems.append(f"attention max |diff| {att_diff:.3g} exceeds atol {atol:g}")
    if min_top1 is not None and metrics["top1_agreement"] < min_top1:
        problems.append(f"top-1 agreement {metrics['top1_agreement']:.1%} below {min_top1:.0%}")
    if warn_top1 is not None and metrics["top1_agreement"] < warn_top1:
        result.warning = (f"top-1 agreement with fp32 is {metrics['top1_agreement']:.1%} "
                          f"(below {warn_top1:.0%}); check accuracy before deploying")
    result.passed = not problems
    result.error = "; ".join(problems) or None
    return result
