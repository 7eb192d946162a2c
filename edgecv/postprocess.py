"""Turning model outputs into ranked labels (numpy only; shared by export checks and runtime)."""
from __future__ import annotations

import numpy as np


def squeeze_logits(output: np.ndarray) -> np.ndarray:
    """(N, C, 1, 1) or (N, 1, C) -> (N, C); (C,) -> (1, C)."""
    out = np.asarray(output)
    if out.ndim == 1:
        return out[None, :]
    if out.ndim > 2:
        out = out.reshape(out.shape[0], -1)
    return out


def looks_like_probabilities(scores: np.ndarray, *, atol: float = 1e-3) -> bool:
    """True when every row is non-negative and sums to 1 (a softmax inside the graph)."""
    s = np.asarray(scores, dtype=np.float64)
    return bool(s.size) and bool(np.all(s >= -1e-6)) and bool(np.allclose(s.sum(axis=-1), 1.0, atol=atol))


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    x = np.asarray(logits, dtype=np.float32)
    x = x - x.max(axis=axis, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


def to_probabilities(output: np.ndarray) -> np.ndarray:
    """Model output -> (N, C) probabilities, without applying softmax twice."""
    scores = squeeze_logits(output).astype(np.float32)
    return scores if looks_like_probabilities(scores) else softmax(scores)


FULL_SORT_MAX = 2048  # classes up to which one stable sort of the row beats argpartition


def top_k(probs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the ``k`` largest entries per row, best first: ((N, k), (N, k)).

    The one ranking used by the runtime (every stream frame goes through it) and its callers.
    Ties rank the lower class index first, as ``argmax`` does, so top-1 always matches argmax.
    Up to :data:`FULL_SORT_MAX` classes one stable sort of each row does it in three numpy calls:
    right after an inference, with cold caches, that costs half of argpartition's dozen calls
    (mobilenet_v2's 1000 classes: ~50 vs ~105 us a frame). Beyond, ``argpartition`` keeps it
    O(C) per row; only a row where equal values straddle the k-th place (argpartition would pick
    among them arbitrarily) pays for a full stable sort.
    """
    p = np.asarray(probs)
    c = p.shape[-1]
    k = max(1, min(k, c))
    if c <= FULL_SORT_MAX:
        idx = np.argsort(-p, axis=-1, kind="stable")[..., :k]  # stable: equal values keep class order
        return idx, np.take_along_axis(p, idx, axis=-1)
    idx = np.argpartition(-p, k - 1, axis=-1)[..., :k]
    kth = np.take_along_axis(p, idx, axis=-1).min(axis=-1, keepdims=True)
    straddle = (p >= kth).sum(axis=-1) > k
    if straddle.any():
        idx[straddle] = np.argsort(-p[straddle], axis=-1, kind="stable")[..., :k]
    idx = np.sort(idx, axis=-1)  # ascending class index, so the stable sort below breaks ties by it
    vals = np.take_along_axis(p, idx, axis=-1)
    order = np.argsort(-vals, axis=-1, kind="stable")
    return np.take_along_axis(idx, order, axis=-1), np.take_along_axis(vals, order, axis=-1)
