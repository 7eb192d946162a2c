"""Multiply-accumulate counts per ONNX node (numpy/onnx only); used by :mod:`edgecv.graph.stats`.

Only the ops that dominate inference cost count: Conv (grouped/depthwise through the weight's
``C_in / group``), ConvTranspose, Gemm, MatMul (batched attention matmuls included), Einsum,
LSTM/GRU/RNN and their quantized forms. Bias adds, activations, pooling and normalisation are 0,
as in the PyTorch view (:mod:`edgecv.models.summary`). FLOPs = 2 x MACs.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable


def prod(values: Iterable[int]) -> int:
    """Product of ints (1 for none): element counts from dims."""
    total = 1
    for v in values:
        total *= int(v)
    return total


def _attr(node: Any, name: str, default: Any = None) -> Any:
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def node_macs(node: Any, shape: Callable[[str], list[int] | None]) -> int | None:
    """MACs of one node; 0 for ops without multiply-accumulates, None if a needed shape is unknown.

    ``shape(name)`` returns a tensor's dims or None.
    """
    op, ins, outs = node.op_type, list(node.input), list(node.output)

    def need(*shapes: list[int] | None) -> bool:
        return all(s is not None for s in shapes)

    if op in ("Conv", "ConvInteger", "QLinearConv"):
        w = shape(ins[3] if op == "QLinearConv" else ins[1])
        y = shape(outs[0])
        # (N, C_out, *out_spatial) x (C_in / group) x prod(kernel): W is (C_out, C_in/group, *k)
        return prod(y) * prod(w[1:]) if need(w, y) else None
    if op == "ConvTranspose":
        x, w = shape(ins[0]), shape(ins[1])
        # every input element is scattered through (C_out / group) x prod(kernel) weights
        return prod(x) * prod(w[1:]) if need(x, w) else None
    if op == "Gemm":
        a, y = shape(ins[0]), shape(outs[0])
        if not need(a, y):
            return None
        k = a[0] if _attr(node, "transA", 0) else a[-1]
        return prod(y) * k
    if op in ("MatMul", "MatMulInteger", "QLinearMatMul"):
        a, y = shape(ins[0]), shape(outs[0])
        if not need(a, y):
            return None
        # (..., M, K) @ (..., K, N) -> (..., M, N): one MAC per output element per K
        return prod(y) * (a[-1] if a else 1)
    if op in ("LSTM", "GRU", "RNN"):
        x, w, r = shape(ins[0]), shape(ins[1]), shape(ins[2])
        if not need(x, w, r):
            return None
        steps_times_batch = x[0] * x[1]  # (T, B, I) or (B, T, I) with layout=1
        # W is (dirs, gates*H, I), R is (dirs, gates*H, H): input + recurrent projections per step
        return steps_times_batch * (prod(w) + prod(r))
    if op == "Einsum":
        return _einsum_macs(node, [shape(i) for i in ins])
    return 0


def _einsum_macs(node: Any, shapes: list[list[int] | None]) -> int | None:
    equation = _attr(node, "equation", b"")
    equation = equation.decode() if isinstance(equation, bytes) else str(equation)
    lhs = equation.replace(" ", "").split("->")[0].split(",")
    if len(lhs) != len(shapes) or any(s is None for s in shapes) or "." in equation:
        return None if any(s is None for s in shapes) else 0
    sizes: dict[str, int] = {}
    for term, dims in zip(lhs, shapes):
        for letter, size in zip(term, dims):
            sizes[letter] = max(sizes.get(letter, 1), size)
    # a contraction visits every combination of all indices once
    return prod(sizes.values()) if len(lhs) > 1 else 0
