"""torch -> ONNX export, simplification, parity verification and quantization; installed as
``edgecv.exporters`` (imports torch).

One plain function per step, each returning what it wrote; :func:`run_export` chains them the way
``edgecv export`` does.
"""
from __future__ import annotations

from edgecv.exporters.onnx_export import export_onnx, make_sample_input, save_onnx
from edgecv.exporters.pipeline import (
    ExportOptions,
    ExportReport,
    StageReport,
    output_paths,
    run_export,
)
from edgecv.exporters.quantize import (
    quantize_fp16,
    quantize_int8_dynamic,
    quantize_int8_static,
)
from edgecv.exporters.simplify import SimplifyResult, simplify
from edgecv.exporters.source import ExportSource, load_source
from edgecv.exporters.verify import (
    ParityResult,
    Reference,
    compare,
    torch_reference,
    verify_onnx,
)

__all__ = [
    "ExportOptions", "ExportReport", "ExportSource", "ParityResult", "Reference", "SimplifyResult",
    "StageReport", "compare", "export_onnx", "load_source", "make_sample_input", "output_paths",
    "quantize_fp16", "quantize_int8_dynamic", "quantize_int8_static", "run_export", "save_onnx",
    "simplify", "torch_reference", "verify_onnx",
]
