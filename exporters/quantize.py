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
from edgecv.exporters.onnx_export import save_onnx, scratch_dir
from edgecv.exporters.samples import SampleSet, batch_arrays

from edgecv.errors import InputError, ModelError, short_message
from edgecv.hardware import has_vnni, is_x86, read_cpuinfo
from edgecv.preprocess import PreprocessSpec

CALIB_BATCH = 16


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


def quantize_int8_static(src: str | os.PathLike[str], dst: str | os.PathLike[str], *,
                         samples: SampleSet, spec: PreprocessSpec, per_channel: bool = True,
                         reduce_range: bool | None = None) -> dict[str, Any]:
    """Static QDQ int8 with per-channel weights, calibrated on ``samples`` (real images)."""
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

    def run(prepared: Path, out: Path) -> None:
        quantize_static(str(prepared), str(out), _calibration_reader(samples, spec),
                        quant_format=QuantFormat.QDQ, per_channel=per_channel,
                        reduce_range=reduce, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)

    dest, notes = _quantize_with(src, dst, run, kind="static")
    return {"path": str(dest), "seconds": time.perf_counter() - start, "method": "static",
            "format": "QDQ", "per_channel": per_channel, "reduce_range": reduce,
            "activations": "uint8", "weights": "int8", "calibration": "minmax",
            "calibration_samples": len(samples), "calibration_source": samples.source,
            "vnni": cpu_has_vnni(), "warnings": notes}


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
