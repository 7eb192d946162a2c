"""Feature maps of an ONNX model: list its intermediate tensors, run one image and draw a montage
of a layer's channels (numpy/onnx/onnxruntime/OpenCV only, never torch).

Engines only return graph outputs, so the chosen tensor is added as an extra output of a copy of
the model (the file the user gave is untouched). The copy runs on ONNX Runtime's CPU provider by
default, or on whatever engine the caller's ``open_runner`` opens (``edgecv inspect --provider
openvino`` hands in an Engine factory: this layer sits below ``edgecv.runtimes`` and cannot
import it, so the backend is injected, never chosen here by an if/else). The image goes through the model's
own contract preprocessing when it has one, so the maps are what the deployed model really sees;
a foreign model's caller hands in a finished ``PreprocessSpec`` (``edgecv inspect`` builds it
from the same flags as ``edgecv infer``: this layer knows no flags and imports only the core).
"""
from __future__ import annotations

import copy
import difflib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import cv2
import numpy as np

from edgecv.contract import contract_from_model
from edgecv.errors import EdgecvError, InputError, ModelError, short_message
from edgecv.graph.stats import SHAPE_OPS, fix_input_dims, resolve_shapes
from edgecv.io import write_bytes_atomic
from edgecv.onnx_file import graph_inputs, load_onnx
from edgecv.preprocess import PreprocessSpec, default_spec, load_image, preprocess_image


@dataclass
class TensorInfo:
    """An intermediate tensor: the node output a montage can be drawn from."""

    name: str
    op: str  # op type of the node that produces it
    shape: list[int] | None  # at batch 1 (symbolic dims substituted)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "op": self.op, "shape": self.shape}


def list_tensors(model: Any) -> list[TensorInfo]:
    """Data tensors produced by the graph's nodes, in execution order (shape arithmetic left out)."""
    work = copy.deepcopy(model)
    fix_input_dims(work, batch=1)
    shapes = resolve_shapes(work)
    found = []
    constant = {i.name for i in work.graph.initializer}
    for node in work.graph.node:
        if node.op_type in SHAPE_OPS or all(i in constant for i in node.input if i):
            constant.update(node.output)  # weights passed through Identity etc. are not activations
            continue
        for out in node.output:
            if not out:
                continue
            dims, elem = shapes.get(out, (None, 0))
            if elem in (6, 7, 9) and (dims is None or len(dims) <= 1):
                continue  # int32/int64/bool scalars and 1-D vectors: shape arithmetic, masks
            found.append(TensorInfo(out, node.op_type, dims))
    return found


def _image_spec(model: Any, contract: Any, spec: PreprocessSpec | None = None, *,
                source: str = "model") -> PreprocessSpec:
    """``spec`` when given (the caller's, e.g. built from ``edgecv inspect``'s preprocessing
    flags), else the contract's, else ImageNet defaults fitted to the input's declared shape;
    always checked against the model (an image input) and given the graph's input dtype."""
    inputs = graph_inputs(model)
    if not inputs:
        raise ModelError(f"{source}: has no inputs to feed an image to")
    tensor = inputs[0].type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
    if contract is not None and contract.task != "image":
        raise InputError(f"{source}: is a {contract.task} model; activation montages need an image model")
    if len(dims) != 4:
        raise InputError(f"{source}: input {inputs[0].name!r} has rank {len(dims)}; activation montages need "
                         "an image model with an (N, C, H, W) or (N, H, W, C) input")
    dtype = "float16" if tensor.elem_type == 10 else "float32"
    if spec is not None:
        return spec.replace(dtype=dtype)
    if contract is not None and contract.preprocess is not None:
        return contract.preprocess.replace(dtype=dtype)
    nhwc = dims[3] in (1, 3) and dims[1] not in (1, 3)
    channels = (dims[3] if nhwc else dims[1]) or 3
    h, w = (dims[1], dims[2]) if nhwc else (dims[2], dims[3])
    spec = default_spec(size=(h or 224, w or 224), channels=1 if channels == 1 else 3)
    return spec.replace(layout="nhwc" if nhwc else "nchw", dtype=dtype)


class TensorRunner(Protocol):
    """What feature maps need from an inference engine: ``run(names, feeds)`` -> arrays. An
    ``edgecv.runtimes`` Engine is one; this layer cannot import it (graph sits below runtimes), so
    the caller hands in a factory that opens one."""

    def run(self, names: Sequence[str] | None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Outputs ``names`` for ``feeds``."""


OpenRunner = Callable[[Path], TensorRunner]  # opens an .onnx file on some backend


class _OrtCpu:
    """The default runner: ONNX Runtime on CPU, its log silenced (a failure becomes one line)."""

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 4
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def run(self, names: Sequence[str] | None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(None if names is None else list(names), feeds)

    def describe(self) -> str:
        return "onnxruntime CPUExecutionProvider"


def compute_activation(model_path: str | os.PathLike[str], image_path: str | os.PathLike[str],
                       layer: str, *, spec: PreprocessSpec | None = None,
                       open_runner: OpenRunner | None = None) -> np.ndarray:
    """Run one image through the model and return ``layer``'s tensor (batch axis included).

    ``open_runner`` opens the model (with ``layer`` added as an output, written to a temporary
    file) on the backend of the caller's choice -- ``edgecv inspect --provider openvino`` hands in
    an engine factory; ONNX Runtime on CPU when None."""
    value, _ = _activation(model_path, image_path, layer, spec=spec, open_runner=open_runner)
    return value


def _activation(model_path: str | os.PathLike[str], image_path: str | os.PathLike[str], layer: str, *,
                spec: PreprocessSpec | None, open_runner: OpenRunner | None) -> tuple[np.ndarray, str]:
    """(``layer``'s tensor, a description of what ran it)."""
    import tempfile

    from onnx import helper

    model = load_onnx(model_path)
    name = Path(model_path).name
    names = {t.name: t for t in list_tensors(model)}
    names.update({o.name: None for o in model.graph.output})
    if layer not in names:
        raise InputError(f"{name}: no tensor named {layer!r}; {_suggest(layer, list(names))} (list them with --layers)")
    contract = contract_from_model(model, source=str(model_path))
    spec = _image_spec(model, contract, spec, source=name)
    x = preprocess_image(load_image(image_path), spec)[None]  # (1, C, H, W) or (1, H, W, C)
    if layer not in {o.name for o in model.graph.output}:
        model.graph.output.append(helper.make_empty_tensor_value_info(layer))  # the file is untouched
    with tempfile.TemporaryDirectory(prefix="edgecv-activations-") as tmp:
        work = Path(tmp) / name
        work.write_bytes(model.SerializeToString())
        try:
            runner = (open_runner or _OrtCpu)(work)
            describe = getattr(runner, "describe", None)
            ran = describe() if callable(describe) else type(runner).__name__
            (value,) = runner.run([layer], {graph_inputs(model)[0].name: x})
        except EdgecvError:  # the backend's own one-line error (an absent device, a missing extra)
            raise
        except Exception as exc:  # noqa: BLE001 - each backend raises its own exception types
            raise ModelError(f"{name}: cannot run the model on {Path(image_path).name} "
                             f"({short_message(exc)})") from None
    return np.asarray(value), ran


def _suggest(name: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(name, valid, n=5, cutoff=0.4)
    shown = close or valid[:8]
    more = "" if close or len(valid) <= 8 else f", ... ({len(valid)} in all)"
    return ("close matches: " if close else "valid names include: ") + ", ".join(shown) + more


def _feature_maps(activation: np.ndarray, *, layer: str, max_channels: int) -> np.ndarray:
    """The first sample's first ``max_channels`` maps as float32 (C, H, W)."""
    x = np.asarray(activation, dtype=np.float32)
    if x.ndim == 4:
        x = x[0]  # first sample: (C, H, W)
    if x.ndim != 3 or x.shape[1] < 1 or x.shape[2] < 1:
        raise InputError(f"layer {layer!r} has shape {list(activation.shape)}: a montage needs a "
                         "feature map (N, C, H, W); pick a convolution or pooling output")
    return x[:max_channels]


def _tile_canvas(x: np.ndarray, *, tile: int, gap: int) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int, int, int]]]:
    """(gray canvas, background mask, (top, left, h, w) of each tile): a near-square grid, each map
    min-max normalised to 0-255 and enlarged by nearest neighbour so a pixel stays a visible block."""
    channels, h, w = x.shape
    cols = math.ceil(math.sqrt(channels))
    rows = math.ceil(channels / cols)
    scale = max(1, tile // max(h, w))
    th, tw = h * scale, w * scale
    canvas = np.full((rows * (th + gap) + gap, cols * (tw + gap) + gap), 255, np.uint8)
    background = np.ones(canvas.shape, bool)  # gaps and unused cells stay white
    boxes = []
    for index, fmap in enumerate(x):
        low, high = float(np.nanmin(fmap)), float(np.nanmax(fmap))
        norm = (fmap - low) / (high - low) if high > low else np.zeros_like(fmap)
        img = cv2.resize((norm * 255).astype(np.uint8), (tw, th), interpolation=cv2.INTER_NEAREST)
        r, c = divmod(index, cols)
        top, left = gap + r * (th + gap), gap + c * (tw + gap)
        canvas[top:top + th, left:left + tw] = img
        background[top:top + th, left:left + tw] = False
        boxes.append((top, left, th, tw))
    return canvas, background, boxes


def _colour(gray: np.ndarray, background: np.ndarray, colormap: int | None) -> np.ndarray:
    if colormap is None:
        return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    colored = cv2.applyColorMap(gray, colormap)
    colored[background] = 255
    return colored


def montage(activation: np.ndarray, *, max_channels: int = 64, tile: int = 96, gap: int = 2,
            colormap: int | None = cv2.COLORMAP_VIRIDIS, layer: str = "tensor") -> np.ndarray:
    """A grid of per-channel maps of one sample, each min-max normalised to 0-255 -> BGR uint8
    (the bare tiles; :func:`montage_figure` adds the title, channel numbers and colour bar).

    ``activation`` is (1, C, H, W) or (C, H, W); small maps are enlarged with nearest
    neighbour so each pixel stays a visible block.
    """
    gray, background, _ = _tile_canvas(_feature_maps(activation, layer=layer, max_channels=max_channels),
                                       tile=tile, gap=gap)
    return _colour(gray, background, colormap)


FONT = cv2.FONT_HERSHEY_SIMPLEX
MARGIN = 8  # px around the tiles, title and colour bar
LINE_H = 20  # px per title line at FONT scale 0.5


def _text(img: np.ndarray, text: str, org: tuple[int, int], *, scale: float = 0.5,
          color: tuple[int, int, int] = (30, 30, 30)) -> None:
    cv2.putText(img, text, org, FONT, scale, color, 1, cv2.LINE_AA)


def _text_width(text: str, scale: float = 0.5) -> int:
    return cv2.getTextSize(text, FONT, scale, 1)[0][0]


def _number_tiles(grid: np.ndarray, boxes: Sequence[tuple[int, int, int, int]]) -> None:
    """The channel index in each tile's top-left corner, white on a dark box (tiles under 20 px
    get none: the number would cover the map)."""
    for index, (top, left, th, tw) in enumerate(boxes):
        if min(th, tw) < 20:
            return
        (w, h), _ = cv2.getTextSize(str(index), FONT, 0.35, 1)
        cv2.rectangle(grid, (left, top), (left + w + 3, top + h + 4), (0, 0, 0), -1)
        _text(grid, str(index), (left + 2, top + h + 2), scale=0.35, color=(255, 255, 255))


def _colour_bar(width: int, colormap: int | None) -> np.ndarray:
    """A horizontal bar, low (left) to high (right), labelled: each tile has its own scale."""
    bar_w = max(120, min(width - 2 * MARGIN, 320))
    ramp = np.tile(np.linspace(0, 255, bar_w).astype(np.uint8), (12, 1))
    ramp = cv2.cvtColor(ramp, cv2.COLOR_GRAY2BGR) if colormap is None else cv2.applyColorMap(ramp, colormap)
    strip = np.full((12 + 2 * LINE_H, width, 3), 255, np.uint8)
    strip[4:16, MARGIN:MARGIN + bar_w] = ramp
    _text(strip, "channel min", (MARGIN, 16 + LINE_H - 4), scale=0.4)
    _text(strip, "channel max", (MARGIN + bar_w - _text_width("channel max", 0.4), 16 + LINE_H - 4), scale=0.4)
    _text(strip, "colour: each tile scaled to its own channel's min..max", (MARGIN, 16 + 2 * LINE_H - 6), scale=0.4)
    return strip


def montage_figure(activation: np.ndarray, *, model: str, layer: str, max_channels: int = 64, tile: int = 96,
                   colormap: int | None = cv2.COLORMAP_VIRIDIS) -> tuple[np.ndarray, dict[str, Any]]:
    """The picture ``edgecv inspect --activations`` writes: a title (model, layer, tensor shape,
    value range), the tiles numbered by channel, and a colour bar, drawn with OpenCV (no torch,
    no matplotlib). Returns (BGR image, ``{"grid_box": [top, left, h, w], "title": [...]}``)."""
    value = np.asarray(activation)
    x = _feature_maps(value, layer=layer, max_channels=max_channels)
    gray, background, boxes = _tile_canvas(x, tile=tile, gap=2)
    grid = _colour(gray, background, colormap)
    _number_tiles(grid, boxes)
    total = value.shape[1] if value.ndim == 4 else value.shape[0]
    shown = f"channels 0-{len(x) - 1}" if len(x) > 1 else "channel 0"
    title = [f"{model} - layer {layer}", f"tensor {'x'.join(map(str, value.shape))}: {shown} of {total} shown",
             f"values min {float(value.min()):.4g}, max {float(value.max()):.4g}, mean {float(value.mean()):.4g}"]
    width = max(grid.shape[1] + 2 * MARGIN, max(_text_width(t) for t in title) + 2 * MARGIN,
                _text_width("colour: each tile scaled to its own channel's min..max", 0.4) + 2 * MARGIN)
    header = np.full((MARGIN + LINE_H * len(title), width, 3), 255, np.uint8)
    for i, line in enumerate(title):
        _text(header, line, (MARGIN, MARGIN + LINE_H * (i + 1) - 6), scale=0.5 if i else 0.55)
    body = np.full((grid.shape[0], width, 3), 255, np.uint8)
    body[:, MARGIN:MARGIN + grid.shape[1]] = grid
    picture = np.vstack([header, body, _colour_bar(width, colormap)])
    return picture, {"grid_box": [header.shape[0], MARGIN, grid.shape[0], grid.shape[1]], "title": title}


def write_montage(model_path: str | os.PathLike[str], image_path: str | os.PathLike[str], layer: str,
                  out_path: str | os.PathLike[str], *, max_channels: int = 64,
                  spec: PreprocessSpec | None = None, open_runner: OpenRunner | None = None) -> dict[str, Any]:
    """Compute ``layer`` for one image and write its channel montage PNG; returns a summary.

    ``spec`` overrides the model's own preprocessing (a foreign model has none to offer);
    ``open_runner`` picks the backend (see :func:`compute_activation`)."""
    out = Path(out_path)
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg", ".bmp"):
        raise InputError(f"{out}: expected a .png (or .jpg/.bmp) output path")
    value, ran = _activation(model_path, image_path, layer, spec=spec, open_runner=open_runner)
    picture, drawn = montage_figure(value, model=Path(model_path).name, layer=layer, max_channels=max_channels)
    ok, encoded = cv2.imencode(out.suffix.lower(), picture)
    if not ok:
        raise InputError(f"{out}: OpenCV could not encode the montage")
    write_bytes_atomic(out, encoded.tobytes())
    shown = min(max_channels, value.shape[1] if value.ndim == 4 else 1)
    return {"layer": layer, "shape": list(value.shape), "channels_shown": int(shown),
            "output": str(out), "min": float(value.min()), "max": float(value.max()),
            "mean": float(value.mean()), "engine": ran, "image_size": [int(picture.shape[0]), int(picture.shape[1])],
            "grid_box": drawn["grid_box"], "title": drawn["title"]}
