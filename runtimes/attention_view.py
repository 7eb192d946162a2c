"""``--show-attention``: which tokens each token attends to, from a model's "attention" output.

The exported weights are (layers, heads, T, T) per text (row = the attending token, columns =
attended tokens, rows sum to 1). The view averages the heads of one layer (the last by default,
closest to the classifier) and lists, per real token, the tokens it attends to most -- the
classic "it -> cat" picture of self-attention. Padding positions are cut off.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from edgecv.errors import InputError


def attention_matrix(attention: np.ndarray, n_tokens: int, *, layer: int = -1) -> np.ndarray:
    """(layers, heads, T, T) -> (n, n) head-averaged weights of ``layer`` over the real tokens,
    rows renormalised to sum to 1 after dropping padding columns."""
    a = np.asarray(attention, dtype=np.float64)
    if a.ndim == 3:  # (heads, T, T): a single layer
        a = a[None]
    if a.ndim != 4 or a.shape[-1] != a.shape[-2]:
        raise InputError(f"attention weights {a.shape}: expected (layers, heads, T, T)")
    if not -a.shape[0] <= layer < a.shape[0]:
        raise InputError(f"attention layer {layer}: the model has {a.shape[0]} layer(s)")
    n = max(1, min(n_tokens, a.shape[-1]))
    m = a[layer].mean(axis=0)[:n, :n]  # (n, n)
    sums = m.sum(axis=1, keepdims=True)
    return m / np.where(sums > 0, sums, 1.0)


def attention_rows(tokens: Sequence[str], attention: np.ndarray, *, layer: int = -1,
                   top: int = 3) -> list[dict[str, Any]]:
    """Per token: the ``top`` attended tokens with their weights, strongest first."""
    m = attention_matrix(attention, len(tokens), layer=layer)
    rows = []
    for i, tok in enumerate(tokens[: m.shape[0]]):
        order = np.argsort(-m[i], kind="stable")[:top]
        rows.append({"token": tok, "position": i,
                     "attends_to": [{"token": tokens[j], "position": int(j), "weight": round(float(m[i, j]), 4)}
                                    for j in order]})
    return rows


def format_attention(tokens: Sequence[str], attention: np.ndarray, *, layer: int = -1, top: int = 3) -> str:
    """Human text: one line per token, e.g. ``it        -> cat 0.61, the 0.20, it 0.11``,
    followed by the full head-averaged matrix for short texts."""
    rows = attention_rows(tokens, attention, layer=layer, top=top)
    width = max((len(r["token"]) for r in rows), default=4) + 2
    n_layers = np.asarray(attention).shape[0] if np.asarray(attention).ndim == 4 else 1
    layer_no = layer % n_layers + 1
    lines = [f"attention (layer {layer_no} of {n_layers}, averaged over heads): token -> most attended tokens"]
    for r in rows:
        targets = ", ".join(f"{t['token']} {t['weight']:.2f}" for t in r["attends_to"])
        lines.append(f"  {r['token']:<{width}}-> {targets}")
    if 1 < len(rows) <= 12:
        m = attention_matrix(attention, len(tokens), layer=layer)
        cw = max(6, max(len(t) for t in tokens[: m.shape[0]]) + 1)
        lines.append("  " + " " * width + "".join(f"{t[:cw - 1]:>{cw}}" for t in tokens[: m.shape[0]]))
        for i, t in enumerate(tokens[: m.shape[0]]):
            lines.append(f"  {t:<{width}}" + "".join(f"{v:>{cw}.2f}" for v in m[i]))
    return "\n".join(lines)
