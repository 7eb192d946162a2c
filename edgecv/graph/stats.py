"""Per-node shapes, parameters and MACs of an ONNX graph (numpy/onnx only, never torch).

The ONNX counterpart of :mod:`edgecv.models.summary`; both fill the same :class:`ModelStats`, so
``edgecv inspect`` prints a PyTorch architecture and an ``.onnx`` file the same way.

Conventions (shared with the torch view, so the two agree):

* MACs are counted for the layers that dominate inference cost: Conv (grouped/depthwise via the
  weight's ``C_in / group``), ConvTranspose, Gemm, MatMul (batched attention matmuls included),
  Einsum, LSTM/GRU/RNN and their quantized forms. Bias adds, activations, pooling and
  normalisation count as 0. FLOPs = 2 x MACs.
* Params are the elements of weight initializers, each counted once even if several nodes share
  it. BatchNormalization's running mean/var are *buffers* (PyTorch does not count them as
  parameters either); shape tensors, quantization scales/zero points and scalar constants are not
  parameters.
* Symbolic or missing dims of the real graph inputs (initializers listed as inputs by old
  exporters are weights, not inputs) are replaced by ``batch``, ``seq_len`` and ``image_size``
  before ONNX shape inference, so every layer gets a concrete output shape.
"""
from __future__ import annotations

import copy
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from edgecv.graph.op_macs import node_macs, prod
from edgecv.onnx_file import graph_inputs, load_onnx

# Ops whose outputs are shape arithmetic rather than data; hidden from the default table.
SHAPE_OPS = {"Constant", "Shape", "Size", "ConstantOfShape", "Range", "NonZero"}
# Float initializers in these input slots are not parameters (buffers, scales, shapes, limits).
NON_PARAM_SLOTS: dict[str, set[int]] = {
    "DequantizeLinear": {1, 2}, "QuantizeLinear": {1, 2}, "DynamicQuantizeLinear": set(),
    "QLinearConv": {1, 2, 4, 5, 6, 7}, "QLinearMatMul": {1, 2, 4, 5, 6, 7},
    "ConvInteger": {2, 3}, "MatMulInteger": {2, 3},
    "Resize": {1, 2, 3}, "Upsample": {1}, "Clip": {1, 2}, "Pad": {1, 2, 3},
    "LSTM": {4, 5, 6}, "GRU": {4, 5}, "RNN": {4, 5},  # sequence_lens and initial states
}
BUFFER_SLOTS: dict[str, set[int]] = {"BatchNormalization": {3, 4}}  # running mean / var
# Integer initializers that are real (quantized) weights.
INT_WEIGHT_SLOTS: dict[str, set[int]] = {
    "DequantizeLinear": {0}, "QLinearConv": {3, 8}, "QLinearMatMul": {0, 3},
    "ConvInteger": {1}, "MatMulInteger": {0, 1},
}
BATCH_NAMES = {"n", "b", "bs", "batch", "batch_size", "batchsize", "unk__0"}
SEQ_NAMES = {"t", "s", "seq", "sequence", "seq_len", "sequence_length", "time", "steps", "length"}
# Ops where even a one-element float initializer is a learned weight (a 1-output bias, a PReLU slope).
SCALAR_WEIGHT_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul", "LSTM", "GRU", "RNN", "PRelu", "Gather",
                     "BatchNormalization", "LayerNormalization", "InstanceNormalization", "GroupNormalization"}


@dataclass
class LayerStats:
    """One row of the per-layer table (an ONNX node or a PyTorch module call)."""

    name: str
    type: str
    output_shape: list[Any] | None
    params: int = 0
    macs: int = 0
    shape_op: bool = False  # shape arithmetic / constants (hidden from the default table)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ModelStats:
    """Per-layer table plus totals; ``to_dict()`` is what ``edgecv inspect --json`` prints."""

    source: str
    kind: str  # "onnx" | "torch"
    layers: list[LayerStats]
    total_params: int
    total_macs: int
    total_buffers: int = 0
    param_bytes: int = 0  # bytes of parameters + buffers as stored
    file_bytes: int | None = None
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)  # opset, producer, architecture, ...
    notes: list[str] = field(default_factory=list)

    @property
    def total_flops(self) -> int:
        return 2 * self.total_macs

    @property
    def gflops(self) -> float:
        return self.total_flops / 1e9

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["total_flops"] = self.total_flops
        data["gflops"] = self.gflops
        data["model_size_bytes"] = self.file_bytes if self.file_bytes is not None else self.param_bytes
        return data


# ----------------------------------------------------------------------------- shapes


def fix_input_dims(model: Any, *, batch: int = 1, seq_len: int = 64,
                   image_size: int = 224) -> list[str]:
    """Replace symbolic/missing dims of the real graph inputs in place; returns what was set.

    Named dims go by their name (``batch``/``N`` -> ``batch``, ``seq``/``T``/``time`` ->
    ``seq_len``); otherwise dim 0 -> ``batch``; rank-4 inputs: dim 1 -> 3 channels, dims 2/3 ->
    ``image_size`` (dims 1/2 for NHWC); any other free dim (sequence axes) -> ``seq_len``.
    """
    notes = []
    for value in graph_inputs(model):
        tensor = value.type.tensor_type
        if not tensor.HasField("shape"):
            continue
        dims = tensor.shape.dim
        nhwc = len(dims) == 4 and dims[3].HasField("dim_value") and dims[3].dim_value in (1, 3)
        for index, dim in enumerate(dims):
            if dim.HasField("dim_value") and dim.dim_value > 0:
                continue
            label_lower = (dim.dim_param or "").lower()
            if label_lower in BATCH_NAMES or "batch" in label_lower:
                size = batch
            elif label_lower in SEQ_NAMES or any(k in label_lower for k in ("seq", "len", "time", "token")):
                size = seq_len
            elif index == 0:
                size = batch
            elif len(dims) == 4 and index == (3 if nhwc else 1):
                size = 3
            elif len(dims) == 4:
                size = image_size
            else:
                size = seq_len
            label = dim.dim_param or "?"
            dim.Clear()
            dim.dim_value = int(size)
            notes.append(f"{value.name}[{index}] {label} = {size}")
    return notes


def infer_shapes(model: Any) -> dict[str, tuple[list[int] | None, int]]:
    """``{tensor name: (shape or None, elem_type)}`` for every tensor ONNX shape inference knows."""
    import onnx

    work = copy.deepcopy(model)
    del work.graph.value_info[:]  # stale symbolic shapes would conflict with the fixed inputs
    for out in work.graph.output:
        out.type.tensor_type.ClearField("shape")
    try:
        work = onnx.shape_inference.infer_shapes(work, strict_mode=False, data_prop=True)
    except Exception:  # noqa: BLE001 - a foreign op can stop inference; keep what we have
        pass
    shapes: dict[str, tuple[list[int] | None, int]] = {}
    for value in list(work.graph.input) + list(work.graph.value_info) + list(work.graph.output):
        shapes[value.name] = (_dims(value.type.tensor_type), value.type.tensor_type.elem_type)
    for init in model.graph.initializer:
        shapes[init.name] = (list(init.dims), init.data_type)
    return shapes


def _dims(tensor_type: Any) -> list[int] | None:
    if not tensor_type.HasField("shape"):
        return None
    dims = []
    for dim in tensor_type.shape.dim:
        if not dim.HasField("dim_value"):
            return None
        dims.append(int(dim.dim_value))
    return dims


def resolve_shapes(model: Any, *, notes: list[str] | None = None) -> dict[str, tuple[list[int] | None, int]]:
    """Shape inference, then one ONNX Runtime run on dummy inputs for the node outputs it could not
    resolve (data-dependent Where/Expand/GatherElements chains, contrib ops). ``model`` must have
    concrete input dims (see :func:`fix_input_dims`)."""
    shapes = infer_shapes(model)
    missing = sorted({o for n in model.graph.node if n.op_type not in SHAPE_OPS
                      for o in n.output if o and shapes.get(o, (None, 0))[0] is None})
    if missing:
        try:
            for name, dims in _shapes_via_ort(model, missing).items():
                shapes[name] = (dims, shapes.get(name, (None, 0))[1])
        except Exception as exc:  # noqa: BLE001 - stats stay useful without those shapes
            if notes is not None:
                notes.append(f"{len(missing)} tensor shape(s) unknown (ONNX Runtime could not run the "
                             f"graph: {type(exc).__name__}); their MACs count as 0")
    return shapes


def _shapes_via_ort(model: Any, names: Iterable[str]) -> dict[str, list[int]]:
    """Fallback for graphs shape inference cannot see through: run once on dummy inputs."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import helper

    work = copy.deepcopy(model)
    del work.graph.value_info[:]  # declared shapes from export time can contradict the fixed inputs
    for out in work.graph.output:
        out.type.tensor_type.ClearField("shape")
    known = {o.name for o in work.graph.output}
    for name in names:
        if name not in known:
            work.graph.output.append(helper.make_empty_tensor_value_info(name))
    feeds = {}
    for value in graph_inputs(work):
        dims = _dims(value.type.tensor_type) or [1]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)
        # token id 1 (unknown word) is valid for any vocabulary; zeros elsewhere
        feeds[value.name] = (np.ones(dims, dtype) if np.issubdtype(dtype, np.integer)
                             else np.zeros(dims, dtype))
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(work.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    wanted = [o.name for o in session.get_outputs()]
    return {n: list(v.shape) for n, v in zip(wanted, session.run(wanted, feeds)) if hasattr(v, "shape")}


# ----------------------------------------------------------------------------- params


def _is_float(data_type: int) -> bool:
    from onnx import TensorProto

    return data_type in (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16)


def _param_kind(node: Any, index: int, init: Any) -> str | None:
    """"param", "buffer" or None for an initializer used as input ``index`` of ``node``."""
    op = node.op_type
    if index in BUFFER_SLOTS.get(op, ()):
        return "buffer"
    if index in NON_PARAM_SLOTS.get(op, ()):
        return None
    if _is_float(init.data_type):
        if prod(init.dims) <= 1 and op not in SCALAR_WEIGHT_OPS:
            return None  # scalar constants: 1/sqrt(d_k), an epsilon, the fill value of torch.zeros
        return "param"
    return "param" if index in INT_WEIGHT_SLOTS.get(op, ()) else None


def _bytes_per_element(data_type: int) -> float:
    from onnx import helper

    try:
        return helper.tensor_dtype_to_np_dtype(data_type).itemsize
    except Exception:  # noqa: BLE001 - 4-bit and other exotic types
        return 0.5


# ----------------------------------------------------------------------------- entry point


def graph_stats(model_or_path: Any, *, batch: int = 1, seq_len: int = 64, image_size: int = 224,
                source: str | None = None) -> ModelStats:
    """Per-node table and totals of an ONNX model (a path, or a loaded ``onnx.ModelProto`` whose
    file is ``source``)."""
    if isinstance(model_or_path, (str, os.PathLike)):
        source = str(model_or_path)
        model = load_onnx(model_or_path)
    else:
        model = model_or_path
    file_bytes = Path(source).stat().st_size if source and Path(source).is_file() else None
    source = source or "model"
    work = copy.deepcopy(model)
    notes = fix_input_dims(work, batch=batch, seq_len=seq_len, image_size=image_size)
    shapes = resolve_shapes(work, notes=notes)
    inits = {init.name: init for init in work.graph.initializer}
    # Exporters route shared (deduplicated) initializers through Identity nodes: see through them.
    for node in work.graph.node:
        if node.op_type == "Identity" and node.input and node.input[0] in inits and node.output:
            inits[node.output[0]] = inits[node.input[0]]
    constant_nodes = {o for n in work.graph.node if n.op_type == "Constant" for o in n.output}

    def shape(name: str) -> list[int] | None:
        return shapes.get(name, (None, 0))[0]

    counted: set[str] = set()  # initializer names already attributed to a layer
    layers: list[LayerStats] = []
    totals = {"param": 0, "buffer": 0, "bytes": 0.0}
    for index, node in enumerate(work.graph.node):
        params = _claim_weights(node, inits, counted, totals)
        node_mac = int(node_macs(node, shape) or 0)
        out = node.output[0] if node.output else ""
        out_shape = shape(out) if out else None
        hidden = not params and not node_mac and _is_shape_op(node, inits, constant_nodes, shapes)
        layers.append(LayerStats(name=node.name or out or f"node_{index}", type=node.op_type,
                                 output_shape=out_shape, params=params, macs=node_mac, shape_op=hidden))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    return ModelStats(
        source=source, kind="onnx", layers=layers, total_params=int(totals["param"]),
        total_macs=sum(layer.macs for layer in layers), total_buffers=int(totals["buffer"]),
        param_bytes=int(totals["bytes"]), file_bytes=file_bytes,
        inputs=[_io(v) for v in graph_inputs(model)],
        outputs=[_io(v) for v in model.graph.output],
        info={"opset": opset, "ir_version": int(model.ir_version),
              "producer": f"{model.producer_name} {model.producer_version}".strip() or None},
        notes=notes,
    )


def _claim_weights(node: Any, inits: dict[str, Any], counted: set[str], totals: dict[str, float]) -> int:
    """Attribute the not-yet-counted weight initializers ``node`` reads to it; returns its params."""
    params = 0
    if node.op_type == "Identity":  # aliases are counted where they are used
        return 0
    for slot, name in enumerate(node.input):
        init = inits.get(name)
        if init is None or init.name in counted:
            continue
        kind = _param_kind(node, slot, init)
        if kind is None:
            continue
        counted.add(init.name)
        count = prod(init.dims)
        totals["bytes"] += count * _bytes_per_element(init.data_type)
        totals[kind] += count
        params += count if kind == "param" else 0
    return params


def _is_shape_op(node: Any, inits: dict[str, Any], constants: set[str],
                 shapes: dict[str, tuple[list[int] | None, int]]) -> bool:
    """Constants, weight aliases and int32/int64 shape arithmetic (hidden from the default table)."""
    if node.op_type in SHAPE_OPS or (node.op_type == "Identity" and node.input and node.input[0] in inits):
        return True
    dims, elem = shapes.get(node.output[0], (None, 0)) if node.output else (None, 0)
    if elem not in (6, 7) or (dims is not None and len(dims) > 1):
        return False

    def shape_like(name: str) -> bool:
        d, e = shapes.get(name, (None, 0))
        return name in inits or name in constants or (e in (6, 7) and d is not None and len(d) <= 1)

    return all(shape_like(i) for i in node.input if i)


def _io(value: Any) -> dict[str, Any]:
    """Declared shape (symbolic names kept) and dtype of a graph input/output."""
    from onnx import helper

    tensor = value.type.tensor_type
    dims: list[Any] = []
    for dim in tensor.shape.dim if tensor.HasField("shape") else []:
        dims.append(int(dim.dim_value) if dim.HasField("dim_value") else (dim.dim_param or "?"))
    try:
        dtype = str(helper.tensor_dtype_to_np_dtype(tensor.elem_type))
    except Exception:  # noqa: BLE001 - undefined / exotic element types
        dtype = str(tensor.elem_type)
    return {"name": value.name, "shape": dims, "dtype": dtype}

