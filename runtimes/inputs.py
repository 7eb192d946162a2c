"""A model's real graph inputs, read either from an ONNX Runtime session or from the onnx graph.

The classifier reads its input from the session it runs (``session.get_inputs()``); the profiler
reads it from the file without creating a session (and adds the embedding size a token-id input
indexes, to synthesise valid ids). Both describe the same thing, so there is one
:class:`InputInfo` with a constructor per origin, and one :func:`check_input` that turns a
mismatch into an error naming expected vs got. :func:`check_output_shape` is the matching check
on the other end: a classifier's scores are ``(N, C)`` (or squeezable to it, like ``(N, C, 1, 1)``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from edgecv.errors import InputError, ModelError

# ONNX Runtime type strings -> numpy dtypes for the inputs a classifier can have.
ORT_DTYPES: dict[str, Any] = {
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(uint8)": np.uint8,
}
# onnx.TensorProto element type -> numpy dtype (the profiler also feeds int8 and bool inputs)
ONNX_DTYPES: dict[int, Any] = {1: np.float32, 2: np.uint8, 3: np.int8, 6: np.int32, 7: np.int64, 9: np.bool_,
                               10: np.float16, 11: np.float64}


@dataclass(frozen=True)
class InputInfo:
    """One real graph input: fixed dims are ints, dynamic dims are None (``symbols`` keeps names).

    ``vocab_size``: rows of the embedding table an integer input indexes, when the graph shows
    it (only :meth:`from_onnx` can see initializers).
    """

    name: str
    shape: tuple[int | None, ...]
    dtype: Any  # numpy dtype class
    symbols: tuple[str, ...] = ()
    vocab_size: int | None = None

    @classmethod
    def from_ort(cls, arg: Any) -> InputInfo:
        """From an ONNX Runtime ``NodeArg`` (``session.get_inputs()[i]``)."""
        if arg.type not in ORT_DTYPES:
            raise ModelError(f"input {arg.name!r} has type {arg.type}: expected a float, float16 or int tensor")
        dims = tuple(d if isinstance(d, int) and d > 0 else None for d in arg.shape)
        symbols = tuple(str(d) if isinstance(d, int) and d > 0 else (d if isinstance(d, str) else "?")
                        for d in arg.shape)
        return cls(arg.name, dims, ORT_DTYPES[arg.type], symbols)

    @classmethod
    def from_onnx(cls, value_info: Any, *, vocab_size: int | None = None, source: str = "model") -> InputInfo:
        """From an onnx ``ValueInfoProto`` of the graph (no session needed); ``source`` names the
        file in errors."""
        tensor = value_info.type.tensor_type
        dtype = ONNX_DTYPES.get(tensor.elem_type)
        if dtype is None:
            raise InputError(f"{source}: input {value_info.name!r} has element type {tensor.elem_type}; "
                             f"expected a float, float16, integer or bool tensor")
        dims = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in tensor.shape.dim)
        symbols = tuple(str(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0 else (d.dim_param or "?")
                        for d in tensor.shape.dim)
        return cls(value_info.name, dims, dtype, symbols, vocab_size)

    def describe(self) -> str:
        return f"({', '.join(self.symbols)}) {np.dtype(self.dtype).name}"

    @property
    def fixed_batch(self) -> int | None:
        return self.shape[0] if self.shape else None


def check_input(x: np.ndarray, info: InputInfo, *, source: str = "model") -> None:
    """Raise :class:`InputError` naming expected vs got unless ``x`` fits ``info`` (batch may be
    any size for a fixed-batch model: :meth:`Classifier.run` splits it)."""
    if x.ndim == len(info.shape) and x.dtype == np.dtype(info.dtype) and all(
            axis == 0 or want is None or want == have
            for axis, (want, have) in enumerate(zip(info.shape, x.shape))):
        return  # the per-frame fast path: no message formatting
    got = f"({', '.join(str(d) for d in x.shape)}) {x.dtype.name}"
    if x.ndim != len(info.shape):
        raise InputError(f"{source}: input {info.name!r} expects rank {len(info.shape)} {info.describe()}, got {got}")
    if x.dtype != np.dtype(info.dtype):
        raise InputError(f"{source}: input {info.name!r} expects dtype {np.dtype(info.dtype).name} "
                         f"{info.describe()}, got {got}")
    for axis, (want, have) in enumerate(zip(info.shape, x.shape)):
        if axis > 0 and want is not None and want != have:
            raise InputError(f"{source}: input {info.name!r} expects {info.describe()} (dim {axis} fixed "
                             f"at {want}), got {got}")


CLASSIFIER_OUTPUT = "a classifier output (N, C) or (N, C, 1, 1), one score per class"


def format_dims(dims: Sequence[Any]) -> str:
    """``[1, "N", None, 8]`` -> ``"(1, N, ?, 8)"``: fixed dims, symbolic names, unknown dims."""
    return "(" + ", ".join(str(d) if isinstance(d, (int, str)) and d != "" else "?" for d in dims) + ")"


def check_output_shape(dims: Sequence[Any] | None, *, name: str, source: str = "model",
                       observed: bool = False) -> bool:
    """Raise :class:`ModelError` unless ``dims`` can be a classifier's scores: rank 2 to 4 with at
    most one dim after the batch that is not 1 -- ``(N, C)``, ``(N, C, 1, 1)``, ``(N, 1, 1, C)``.
    Anything else (a feature map ``(1, 8, 32, 32)``, a detector's boxes) would be flattened into
    thousands of "classes" by the squeeze. ``dims`` holds ints for fixed dims and None/str for
    dynamic ones; returns True when dynamic dims leave the answer open, so the caller checks the
    real output again (``observed=True``: ``dims`` is that output's shape)."""
    if not dims:
        return True  # rank unknown to the graph: decided by the first real output
    rest = list(dims[1:])
    fixed = [d for d in rest if isinstance(d, int) and d > 0]
    wide = [d for d in fixed if d > 1]
    if 2 <= len(dims) <= 4 and len(wide) <= 1:
        return len(wide) + len(rest) - len(fixed) > 1
    how = ("came out with shape" if observed else "has shape") + f" {format_dims(dims)}"
    raise ModelError(f"{source}: output {name!r} {how}, not a classifier's scores; expected {CLASSIFIER_OUTPUT}")
