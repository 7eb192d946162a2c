"""Reduced-precision copies of an fp32 ONNX model: float16, static int8 (images), dynamic int8 (text).

* ``quantize_fp16``: ONNX Runtime's own converter (``onnxruntime.transformers.float16``, shipped
  inside onnxruntime, no onnxconverter-common needed) with ``keep_io_types=True``: weights and
  compute in float16, inputs and outputs stay float32 so callers feed the same arrays. Ops without
  a float16 kernel stay float32 behind Cast nodes (its default block list), so the file runs on
  the CPU provider as well as on GPUs; the pipeline proves that by running it.
* ``quantize_int8_static``: QDQ format (QOperator is slow on x86), per-channel weight scales
  (per-tensor scales ruin depthwise convolutions: MobileNetV2 ~72 % -> ~57 % top-1 in PyTorch's
  own tutorial), activations calibrated with MinMax on real images prepared by the model's own
  preprocessing. ``reduce_range`` (7-bit weights) on x86 CPUs without VNNI, where 8-bit
  multiply-accumulate can saturate.
* ``quantize_int8_dynamic``: weights int8, activations quantized at run time; the usual choice for
  LSTM/attention text models whose activation ranges vary with the input.
* ``float_only_nodes``: the nodes to leave in float when int8 turns out slower than fp32 (see
  :data:`ORT_CPU_INT8_OPS`): every Quantize/Dequantize pair around an operator without an int8
  kernel costs two passes over its tensor, which is how MobileNetV3's HardSwish, HardSigmoid and
  squeeze-excite multiply make int8 slower than fp32.

Every function writes atomically and returns a small info dict; parity is checked by the caller.
"""
from __future__ import annotations

import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from edgecv.errors import InputError, ModelError, short_message
from edgecv.exporters.onnx_export import save_onnx, scratch_dir
from edgecv.exporters.samples import SampleSet, batch_arrays
from edgecv.hardware import has_vnni, is_x86, read_cpuinfo
from edgecv.preprocess import PreprocessSpec

CALIB_BATCH = 16

# Operator types that ONNX Runtime's CPU provider runs on int8 data inside a QDQ graph: its QDQ
# selectors fuse them with the surrounding DequantizeLinear/QuantizeLinear into int8 kernels
# (QLinearConv, QGemm/MatMulInteger, QLinearAdd, QLinearMul, QLinearGlobalAveragePool,
# QLinearAveragePool, QLinearConcat, QLinearSigmoid, QLinearLeakyRelu, QLinearSoftmax,
# QLinearWhere, QLinearReduceMean), or they only move or clamp uint8 data (Reshape, Transpose,
# MaxPool, Resize, Relu/Clip folded into the quantization range). Anything else (HardSigmoid,
# HardSwish, Erf, Div, LayerNormalization, ...) runs in float between a Dequantize and a Quantize.
ORT_CPU_INT8_OPS = frozenset({
    "Conv", "MatMul", "Gemm", "Add", "Mul", "Concat", "GlobalAveragePool", "AveragePool", "MaxPool",
    "Sigmoid", "LeakyRelu", "Softmax", "Where", "ReduceMean", "Resize", "Transpose", "Reshape", "Squeeze",
    "Unsqueeze", "Flatten", "Gather", "Relu", "Clip", "Split", "Pad", "Slice", "ArgMax", "Identity",
    "Dropout", "DepthToSpace", "SpaceToDepth",
})
# Nodes that compute shapes or constants, not activations: never worth a mention.
SHAPE_OPS = frozenset({"Shape", "Size", "Constant", "ConstantOfShape", "Cast", "Range"})
# Ops that are left in float when an input comes from a float-only node: quantizing them would
# quantize that float result only to multiply by it (HardSwish's x * HardSigmoid(x) once ORT's
# pre-processing has decomposed it, and the squeeze-excite gate), and ORT's int8 Mul with a
# broadcast (N, C, 1, 1) gate is slower than the float one.
FED_BY_FLOAT = frozenset({"Mul"})


def cpu_has_vnni(cpuinfo: str | os.PathLike[str] = "/proc/cpuinfo") -> bool | None:
    """True/False from the CPU flags (avx512_vnni / avx_vnni / amx); None where they cannot be read."""
    return has_vnni(read_cpuinfo(cpuinfo)[1] or frozenset())


def default_reduce_range() -> bool:
    """7-bit weights only on x86 without VNNI; unknown x86 CPUs get the safe choice."""
    if not is_x86():
        return False
    vnni = cpu_has_vnni()
    return True if vnni is None else not vnni


def quantize_fp16(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> dict[str, Any]:
    """float16 weights/compute with float32 inputs and outputs; returns ``{"path", "seconds", "notes"}``."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    start = time.perf_counter()
    model = onnx.load(os.fspath(src))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            converted = convert_float_to_float16(model, keep_io_types=True)
        except Exception as exc:  # converter errors are unexpected model structures
            raise ModelError(f"{src}: float16 conversion failed ({short_message(exc)})") from None
    path = save_onnx(converted, dst)
    notes = sorted({short_message(w.message) for w in caught})
    return {"path": str(path), "seconds": time.perf_counter() - start, "notes": notes}


class ImageCalibrationReader:
    """Feeds preprocessed calibration batches to ONNX Runtime's calibrator (one pass)."""

    def __init__(self, samples: SampleSet, *, spec: PreprocessSpec, input_name: str = "input",
                 batch_size: int = CALIB_BATCH) -> None:
        self.samples = samples
        self.spec = spec
        self.input_name = input_name
        self.batch_size = batch_size
        self._it: Iterator[tuple[np.ndarray, list[int]]] | None = None

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._it is None:
            self._it = batch_arrays(self.samples, sizes=(self.batch_size,), spec=self.spec)
        batch = next(self._it, None)
        return None if batch is None else {self.input_name: batch[0].astype(np.float32)}

    def rewind(self) -> None:
        self._it = None

    # onnxruntime.quantization.CalibrationDataReader's iterator protocol
    def __iter__(self) -> Any:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        item = self.get_next()
        if item is None:
            raise StopIteration
        return item


def _calibration_reader(samples: SampleSet, spec: PreprocessSpec) -> Any:
    """An ``ImageCalibrationReader`` that is also a ``CalibrationDataReader`` subclass."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(ImageCalibrationReader, CalibrationDataReader):
        pass

    return Reader(samples, spec=spec)


def name_nodes(model: Any) -> int:
    """Give every unnamed (or duplicate-named) node a unique name, as ``nodes_to_exclude`` needs:
    ORT's pre-processing leaves the nodes it creates (a decomposed HardSwish) nameless."""
    seen: set[str] = set()
    renamed = 0
    for i, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.name or node.op_type}_edgecv{i}"
            renamed += 1
        seen.add(node.name)
    return renamed


def float_only_nodes(model: Any, *, int8_ops: frozenset[str] = ORT_CPU_INT8_OPS) -> list[tuple[str, str]]:
    """(name, op_type) of the nodes to leave in float: operators without an int8 kernel in the
    target runtime (found by op type from the graph, whatever the architecture), and the Mul
    nodes that one of them feeds."""
    nodes = list(model.graph.node)
    float_only = {n.name for n in nodes if n.op_type not in int8_ops and n.op_type not in SHAPE_OPS}
    producer = {out: n for n in nodes for out in n.output}
    fed = {n.name for n in nodes if n.op_type in FED_BY_FLOAT
           and any(producer.get(i) is not None and producer[i].name in float_only for i in n.input)}
    return [(n.name, n.op_type) for n in nodes if n.name in float_only | fed]


def summarize_exclusions(excluded: list[tuple[str, str]]) -> dict[str, Any]:
    """For the report: how many nodes of which op type stay float, and their names."""
    counts: dict[str, int] = {}
    for _, op in excluded:
        counts[op] = counts.get(op, 0) + 1
    return {"nodes": len(excluded), "op_types": dict(sorted(counts.items(), key=lambda kv: -kv[1])),
            "names": [name for name, _ in excluded]}


def quantize_int8_static(src: str | os.PathLike[str], dst: str | os.PathLike[str], *,
                         samples: SampleSet, spec: PreprocessSpec, per_channel: bool = True,
                         reduce_range: bool | None = None, exclude_float_ops: bool = False) -> dict[str, Any]:
    """Static QDQ int8 with per-channel weights, calibrated on ``samples`` (real images).

    ``exclude_float_ops``: leave :func:`float_only_nodes` in float (``nodes_to_exclude``), found
    on the pre-processed graph that is quantized; the info dict then lists them under ``excluded``."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    if not samples.real or not samples.images:
        raise InputError("int8 calibration needs real images: pass --data DIR (an image folder)")
    reduce = default_reduce_range() if reduce_range is None else reduce_range
    start = time.perf_counter()
    excluded: list[tuple[str, str]] = []

    def run(prepared: Path, out: Path) -> None:
        extra: dict[str, Any] = {}
        if exclude_float_ops:
            import onnx

            model = onnx.load(str(prepared))
            name_nodes(model)
            prepared = out.with_name("named.onnx")  # never rewrite the source (pre-processing may have failed)
            onnx.save(model, str(prepared))
            excluded.extend(float_only_nodes(model))
            extra["nodes_to_exclude"] = [name for name, _ in excluded]
        quantize_static(str(prepared), str(out), _calibration_reader(samples, spec),
                        quant_format=QuantFormat.QDQ, per_channel=per_channel,
                        reduce_range=reduce, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax, **extra)

    dest, notes = _quantize_with(src, dst, run, kind="static")
    info = {"path": str(dest), "seconds": time.perf_counter() - start, "method": "static",
            "format": "QDQ", "per_channel": per_channel, "reduce_range": reduce,
            "activations": "uint8", "weights": "int8", "calibration": "minmax",
            "calibration_samples": len(samples), "calibration_source": samples.source,
            "vnni": cpu_has_vnni(), "warnings": notes}
    if exclude_float_ops:
        info["excluded"] = summarize_exclusions(excluded)
    return info


def quantize_int8_dynamic(src: str | os.PathLike[str], dst: str | os.PathLike[str], *,
                          per_channel: bool = False, reduce_range: bool | None = None) -> dict[str, Any]:
    """Dynamic int8 (weights int8, activations quantized per run) for text models."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    reduce = default_reduce_range() if reduce_range is None else reduce_range
    start = time.perf_counter()

    def run(prepared: Path, out: Path) -> None:
        quantize_dynamic(str(prepared), str(out), per_channel=per_channel, reduce_range=reduce,
                         weight_type=QuantType.QInt8)

    dest, notes = _quantize_with(src, dst, run, kind="dynamic")
    return {"path": str(dest), "seconds": time.perf_counter() - start, "method": "dynamic",
            "per_channel": per_channel, "reduce_range": reduce, "weights": "int8",
            "vnni": cpu_has_vnni(), "warnings": notes}


def _quantize_with(src: str | os.PathLike[str], dst: str | os.PathLike[str],
                   run: Callable[[Path, Path], None], *, kind: str) -> tuple[Path, list[str]]:
    """Shared scaffold of both int8 modes: pre-process into a scratch folder, quantize there with
    ``run(prepared, out)``, then copy the result into place (never half-written). Returns the
    written path and warnings (a failed pre-processing step)."""
    dest = Path(dst)
    notes: list[str] = []
    with scratch_dir(dest) as scratch, _quiet_quantization():
        prepared = _pre_process(src, scratch / "prepared.onnx", notes)
        out = scratch / "int8.onnx"
        try:
            run(prepared, out)
        except InputError:
            raise
        except Exception as exc:
            raise ModelError(f"{src}: {kind} int8 quantization failed ({short_message(exc)})") from None
        _save_copy(out, dest)
    return dest, notes


def _pre_process(src: str | os.PathLike[str], out: Path, notes: list[str]) -> Path:
    """ORT's recommended pre-processing (shape inference + graph optimisation) before quantizing.

    Its symbolic shape inference rejects some graphs (the attention model's reshapes); then the
    rest of the pre-processing is tried without it, and if that fails too the graph is quantized
    as exported (the quantizer re-checks it). Either way ``notes`` gets a warning: the int8 file
    may then be slower or less accurate than usual, which is worth knowing."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(os.fspath(src), str(out), skip_symbolic_shape=False)
        return out
    except Exception as exc:  # any failure here means "do without it", not "give up"
        symbolic = _reason(exc)
    try:
        quant_pre_process(os.fspath(src), str(out), skip_symbolic_shape=True)
    except Exception as exc:
        notes.append(f"ONNX Runtime's quantization pre-processing (quant_pre_process) failed, so the graph "
                     f"was quantized without it ({symbolic}; without symbolic shapes: {_reason(exc)})")
        return Path(src)
    notes.append(f"ONNX Runtime's quantization pre-processing (quant_pre_process) could not infer symbolic "
                 f"shapes ({symbolic}); the graph was pre-processed without them")
    return out


def _reason(exc: BaseException) -> str:
    """A one-line reason; a bare ``AssertionError`` also names the function that raised it."""
    import traceback

    text = short_message(exc, limit=120)
    if text == type(exc).__name__ and exc.__traceback__ is not None:
        frames = traceback.extract_tb(exc.__traceback__)
        if frames:
            text += f" in {frames[-1].name}"
    return text


def _save_copy(src: Path, dest: Path) -> None:
    import onnx

    save_onnx(onnx.load(str(src)), dest)


class _quiet_quantization:
    """Silence ORT quantization's logging/warnings (it logs every skipped node)."""

    def __enter__(self) -> None:
        self._logger = logging.getLogger()
        self._level = self._logger.level
        self._logger.setLevel(logging.ERROR)
        self._warn = warnings.catch_warnings()
        self._warn.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc: Any) -> None:
        self._warn.__exit__(*exc)
        self._logger.setLevel(self._level)
