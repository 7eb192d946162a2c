"""Which arithmetic a graph asks for: int8 (quantized), fp16 or fp32 (torch-free).

Reports must say the precision that really ran. For ONNX Runtime that is the graph's own
precision (it runs what the file says); an engine that may lower precision on its own (OpenVINO's
bf16 on CPUs with bf16 units, TensorRT's fp16 mode) reports its own choice instead.
"""
from __future__ import annotations

from typing import Any

# Operators that carry int8 arithmetic (QDQ and QOperator formats, dynamic quantization).
QUANT_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv",
                       "QLinearMatMul", "MatMulInteger", "ConvInteger", "DynamicQuantizeMatMul",
                       "MatMulIntegerToFloat", "QLinearAdd", "QLinearMul", "QGemm"})
_FLOAT16 = 10  # onnx.TensorProto.FLOAT16


def is_quantized(model: Any) -> bool:
    """True when the graph holds int8 arithmetic."""
    return any(node.op_type in QUANT_OPS for node in model.graph.node)


def model_precision(model: Any) -> str:
    """"int8", "fp16" or "fp32" for an ``onnx.ModelProto`` (external weights need not be loaded)."""
    if is_quantized(model):
        return "int8"
    graph = model.graph
    floats = [t.data_type for t in graph.initializer if t.data_type in (1, _FLOAT16)]
    inputs = [i.type.tensor_type.elem_type for i in graph.input]
    if _FLOAT16 in inputs or (floats and floats.count(_FLOAT16) * 2 > len(floats)):
        return "fp16"
    return "fp32"
