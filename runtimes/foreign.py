"""Preprocessing for models without an edgecv contract (foreign ONNX classifiers).

An edgecv-exported model carries its :class:`~edgecv.preprocess.PreprocessSpec`; a foreign one
only has an input shape. The spec is then built from the graph input (layout, channels, fixed
H/W, float16) plus the user's flags, with torchvision-style defaults (short side 256 -> centre
crop 224, RGB, x/255, ImageNet mean/std). Flags also override a contract, for experiments.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from edgecv.errors import InputError
from edgecv.preprocess import IMAGENET_MEAN, IMAGENET_STD, PreprocessSpec


@dataclass(frozen=True)
class PreprocessOverrides:
    """User overrides (CLI flags / ``load(**overrides)``); None means "keep the model's value"."""

    size: tuple[int, int] | None = None  # --size H,W
    resize: int | None = None  # --resize SHORT_SIDE (then centre crop to size)
    crop: int | None = None  # --crop N: centre crop N x N (sets size)
    stretch: bool = False  # --stretch: resize the whole frame to size, no crop
    scale: float | None = None  # --scale S, applied to 0-255 pixels
    mean: tuple[float, ...] | None = None  # --mean R,G,B (after scaling)
    std: tuple[float, ...] | None = None  # --std R,G,B (after scaling)
    bgr: bool = False  # --bgr: feed BGR instead of RGB

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> PreprocessOverrides:
        """Pick override keys out of ``load(**kwargs)``, parsing "H,W"/"R,G,B" strings."""
        unknown = set(kwargs) - set(cls.__dataclass_fields__)
        if unknown:
            raise InputError(f"unknown option(s) {', '.join(sorted(unknown))}: expected any of "
                             f"labels, {', '.join(cls.__dataclass_fields__)}")
        data = dict(kwargs)
        if isinstance(data.get("size"), (str, int)):
            data["size"] = parse_size(data["size"])
        for key in ("mean", "std"):
            if isinstance(data.get(key), str):
                data[key] = parse_floats(data[key], name=key)
            elif data.get(key) is not None:
                data[key] = tuple(float(v) for v in data[key])
        return cls(**data)

    @property
    def empty(self) -> bool:
        return self == PreprocessOverrides()


def parse_size(text: str | int | Sequence[int]) -> tuple[int, int]:
    """``"224"`` -> (224, 224); ``"192,256"`` -> (192, 256) as (H, W)."""
    if isinstance(text, int):
        values = [text]
    elif isinstance(text, str):
        try:
            values = [int(v) for v in text.replace("x", ",").split(",") if v.strip()]
        except ValueError:
            values = []
    else:
        values = [int(v) for v in text]
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 1:
        raise InputError(f"size {text!r}: expected H,W (e.g. 224,224) or one positive integer")
    return values[0], values[1]


def parse_floats(text: str, *, name: str = "value") -> tuple[float, ...]:
    """``"0.485,0.456,0.406"`` -> a tuple of 1 or 3 floats."""
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        values = ()
    if len(values) not in (1, 3):
        raise InputError(f"{name} {text!r}: expected 1 or 3 comma-separated numbers (e.g. 0.5,0.5,0.5)")
    return values


def layout_of(shape: Sequence[Any]) -> tuple[str, int]:
    """(layout, channels) of a rank-4 image input shape: NCHW unless only the last dim is 1/3."""
    if len(shape) != 4:
        raise InputError(f"image input shape {list(shape)}: expected rank 4 (N, C, H, W) or (N, H, W, C)")
    c_first, c_last = shape[1], shape[3]
    if c_first in (1, 3):
        return "nchw", int(c_first)
    if c_last in (1, 3):
        return "nhwc", int(c_last)
    return "nchw", 3  # dynamic channels: assume the common NCHW RGB case


def build_spec(
    *, input_shape: Sequence[Any], input_dtype: str, base: PreprocessSpec | None,
    overrides: PreprocessOverrides | None = None,
) -> PreprocessSpec:
    """The spec to use: the contract's (``base``) or one derived from the graph input, then flags.

    ``input_shape`` holds ints for fixed dims and None/str for dynamic ones; ``input_dtype`` is
    "float32" or "float16" (the graph's, which always wins: a model cannot be fed another dtype).
    """
    ov = overrides or PreprocessOverrides()
    layout, channels = layout_of(input_shape)
    if base is None:
        h_dim, w_dim = (input_shape[2], input_shape[3]) if layout == "nchw" else (input_shape[1], input_shape[2])
        fixed = isinstance(h_dim, int) and isinstance(w_dim, int) and h_dim > 0 and w_dim > 0
        size = (h_dim, w_dim) if fixed else (224, 224)
        gray = channels == 1
        base = PreprocessSpec(
            size=size, color="gray" if gray else "rgb",
            mean=(0.5,) if gray else IMAGENET_MEAN, std=(0.5,) if gray else IMAGENET_STD, layout=layout,
        )
    changes: dict[str, Any] = {"dtype": input_dtype}
    size = ov.size or ((ov.crop, ov.crop) if ov.crop else None)
    if size:
        changes["size"] = size
    if ov.resize:
        changes["resize"], changes["resize_short"] = "short_side", ov.resize
    if ov.stretch:
        changes["resize"] = "stretch"
    if ov.scale is not None:
        if ov.scale <= 0:
            raise InputError(f"scale {ov.scale}: expected a positive number (e.g. 0.00392 = 1/255)")
        changes["scale"] = ov.scale
    if ov.mean is not None:
        changes["mean"] = ov.mean
    if ov.std is not None:
        changes["std"] = ov.std
    mean, std = changes.get("mean", base.mean), changes.get("std", base.std)
    if len(mean) != len(std) and 1 in (len(mean), len(std)):  # --mean 0,0,0 --std 1: broadcast
        n = max(len(mean), len(std))
        changes["mean"] = tuple(mean) * (n // len(mean))
        changes["std"] = tuple(std) * (n // len(std))
    if ov.bgr and base.color != "gray":
        changes["color"] = "bgr"
    spec = base.replace(**changes)
    if len(spec.mean) not in (1, spec.channels):
        raise InputError(f"mean/std {list(spec.mean)}/{list(spec.std)}: the model has {spec.channels} "
                         f"input channel(s); give 1 or {spec.channels} values")
    if spec.resize == "short_side" and spec.short_side < min(spec.size):
        raise InputError(f"resize {spec.short_side}: the short side must be >= the crop size {min(spec.size)}")
    return spec
