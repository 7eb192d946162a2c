"""Small ONNX classifiers with known answers, and synthetic images/videos, for the infer tests.

Built with ``onnx.helper`` (no torch):
* image model: per-channel mean of the input -> x10 -> logits, so the predicted class is the
  dominant colour channel (labels red, green, blue with an RGB spec);
* text model: Gather (embedding) -> ReduceMean over tokens -> MatMul; "good"/"great" vote
  positive, "bad"/"awful" negative; optionally an "attention" output (N, 1, 1, T, T) computed
  as softmax(E E^T), so a word attends most to words with the same embedding;
* foreign variants: float16 input + Softmax output + no metadata, fixed batch 1,
  [N, C, 1, 1] output, 1-channel input.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgecv.contract import ModelContract, embed_contract
from edgecv.preprocess import PreprocessSpec
from edgecv.tokenizer import WordTokenizer

COLOURS = ("red", "green", "blue")
BGR = {"red": (0, 0, 200), "green": (0, 200, 0), "blue": (200, 0, 0)}
OPSET = 17
TEXT_VOCAB = ["<pad>", "<unk>", "good", "great", "bad", "awful", "the", "movie", "was"]
TEXT_LABELS = ["positive", "negative"]


def _save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _model(nodes, inputs, outputs, inits) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return model


def _rename_out(node: onnx.NodeProto, name: str) -> onnx.NodeProto:
    node.output[0] = name
    return node


def colour_spec(size: int = 16) -> PreprocessSpec:
    return PreprocessSpec(size=(size, size), resize="stretch", mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def image_model(path: Path, *, contract: bool = True, batch: int | str = "N", size: int | str = 16,
                dtype: str = "float32", softmax: bool = False, nc11: bool = False, channels: int = 3,
                labels: Sequence[str] = COLOURS, heavy: int = 0) -> Path:
    """Per-channel mean classifier. ``channels=1``: 2 classes, dark (mean < 0) / bright (> 0).

    ``heavy=K`` adds K 32-channel 3x3 convolutions whose result is multiplied by 1e-6 and added to
    the scores: same answers, but each frame costs real compute (for tests that need a run to
    last long enough to be interrupted)."""
    elem = TensorProto.FLOAT16 if dtype == "float16" else TensorProto.FLOAT
    npdt = np.float16 if dtype == "float16" else np.float32
    n_cls = len(labels) if channels == 3 else 2
    shape = [batch, channels, size, size]
    inits, nodes = [], []
    if channels == 3:
        weight = np.eye(3, n_cls, dtype=npdt) * 10
    else:
        weight = np.array([[-10.0, 10.0]], dtype=npdt)
    if nc11:
        inits.append(numpy_helper.from_array(weight.T.reshape(n_cls, channels, 1, 1).astype(npdt), "w"))
        nodes += [helper.make_node("ReduceMean", ["input"], ["m"], axes=[2, 3], keepdims=1),  # (N, C, 1, 1)
                  helper.make_node("Conv", ["m", "w"], ["scores"])]  # (N, classes, 1, 1)
        out_shape = [batch, n_cls, 1, 1]
    else:
        inits.append(numpy_helper.from_array(weight, "w"))
        nodes += [helper.make_node("ReduceMean", ["input"], ["m"], axes=[2, 3], keepdims=0),  # (N, C)
                  helper.make_node("MatMul", ["m", "w"], ["scores"])]  # (N, classes)
        out_shape = [batch, n_cls]
    if heavy:
        rng = np.random.default_rng(0)
        inits.append(numpy_helper.from_array((rng.standard_normal((32, channels, 3, 3)) * 0.1).astype(npdt), "c0"))
        nodes.append(helper.make_node("Conv", ["input", "c0"], ["h0"], pads=[1, 1, 1, 1]))  # (N, 32, H, W)
        for k in range(1, heavy + 1):
            inits.append(numpy_helper.from_array((rng.standard_normal((32, 32, 3, 3)) * 0.05).astype(npdt), f"c{k}"))
            nodes.append(helper.make_node("Conv", [f"h{k - 1}", f"c{k}"], [f"h{k}"], pads=[1, 1, 1, 1]))
        inits.append(numpy_helper.from_array(np.full((1,), 1e-6, npdt), "zero"))  # not 0: ORT would prune the branch
        nodes += [helper.make_node("ReduceMean", [f"h{heavy}"], ["hm"], axes=[1, 2, 3], keepdims=0),  # (N,)
                  helper.make_node("Unsqueeze", ["hm", "one"], ["hm1"]),  # (N, 1)
                  helper.make_node("Mul", ["hm1", "zero"], ["h0x"]),
                  helper.make_node("Add", ["scores_raw", "h0x"], ["scores"])]
        inits.append(numpy_helper.from_array(np.array([1], np.int64), "one"))
        nodes = [n if n.output[0] != "scores" or n.op_type == "Add" else _rename_out(n, "scores_raw") for n in nodes]
    out_name = "probs" if softmax else "logits"
    nodes.append(helper.make_node("Softmax" if softmax else "Identity", ["scores"], [out_name],
                                  **({"axis": 1} if softmax else {})))
    model = _model(nodes, [helper.make_tensor_value_info("input", elem, shape)],
                   [helper.make_tensor_value_info(out_name, elem, out_shape)], inits)
    if contract:
        spec = colour_spec(size if isinstance(size, int) else 16)
        if channels == 1:
            spec = PreprocessSpec(size=spec.size, resize="stretch", color="gray", mean=(0.5,), std=(0.5,))
        embed_contract(model, ModelContract(
            task="image", labels=list(labels) if channels == 3 else ["dark", "bright"], preprocess=spec,
            io={"input": "input", "output": out_name, "probabilities": softmax, "attention": None}))
    return _save(model, path)


def text_model(path: Path, *, attention: bool = False, contract: bool = True, max_len: int = 16) -> Path:
    """Bag-of-embeddings sentiment model over TEXT_VOCAB (2 dims: positive, negative)."""
    emb = np.zeros((len(TEXT_VOCAB), 2), np.float32)
    emb[1] = (0.01, 0.01)
    for i, word in enumerate(TEXT_VOCAB):
        if word in ("good", "great"):
            emb[i] = (1.0, 0.0)
        elif word in ("bad", "awful"):
            emb[i] = (0.0, 1.0)
        elif i > 1:
            emb[i] = (0.1, 0.1)
    inits = [numpy_helper.from_array(emb, "emb"), numpy_helper.from_array(np.eye(2, dtype=np.float32) * 10, "w")]
    nodes = [helper.make_node("Gather", ["emb", "input_ids"], ["e"], axis=0),  # (N, T, 2)
             helper.make_node("ReduceMean", ["e"], ["pooled"], axes=[1], keepdims=0),  # (N, 2)
             helper.make_node("MatMul", ["pooled", "w"], ["logits"])]  # (N, 2)
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2])]
    if attention:
        inits.append(numpy_helper.from_array(np.array([1, 2], np.int64), "axes12"))
        nodes += [helper.make_node("Transpose", ["e"], ["et"], perm=[0, 2, 1]),  # (N, 2, T)
                  helper.make_node("MatMul", ["e", "et"], ["scores"]),  # (N, T, T)
                  helper.make_node("Softmax", ["scores"], ["sm"], axis=-1),
                  helper.make_node("Unsqueeze", ["sm", "axes12"], ["attention"])]  # (N, 1, 1, T, T)
        outputs.append(helper.make_tensor_value_info("attention", TensorProto.FLOAT, ["N", 1, 1, "T", "T"]))
    model = _model(nodes, [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["N", "T"])], outputs, inits)
    if contract:
        tok = WordTokenizer(TEXT_VOCAB, max_len=max_len)
        embed_contract(model, ModelContract(
            task="text", labels=TEXT_LABELS, tokenizer=tok.to_dict(),
            io={"input": "input_ids", "output": "logits", "probabilities": False,
                "attention": "attention" if attention else None}))
    return _save(model, path)


def position_text_model(path: Path, *, max_len: int = 8, contract: bool = True) -> Path:
    """(N, T) ids -> token + position embeddings (a table of ``max_len`` rows, as an attention
    model has) -> mean over T -> logits (N, 2): a sequence longer than ``max_len`` cannot run.
    The contract's tokenizer says ``max_len`` (``contract=False``: a foreign model)."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((10, 4)).astype(np.float32), "tok"),
             numpy_helper.from_array(rng.standard_normal((max_len, 4)).astype(np.float32), "pos"),
             numpy_helper.from_array(rng.standard_normal((4, 2)).astype(np.float32), "fc"),
             numpy_helper.from_array(np.array(0, np.int64), "zero"),
             numpy_helper.from_array(np.array(1, np.int64), "one")]
    nodes = [helper.make_node("Shape", ["input_ids"], ["t1"], start=1, end=2),
             helper.make_node("Squeeze", ["t1"], ["t"]),
             helper.make_node("Range", ["zero", "t", "one"], ["positions"]),
             helper.make_node("Gather", ["tok", "input_ids"], ["e"]),
             helper.make_node("Gather", ["pos", "positions"], ["p"]),
             helper.make_node("Add", ["e", "p"], ["x"]),
             helper.make_node("ReduceMean", ["x"], ["m"], axes=[1], keepdims=0),
             helper.make_node("MatMul", ["m", "fc"], ["logits"])]
    model = _model(nodes, [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["N", "T"])],
                   [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2])], inits)
    if contract:
        tok = WordTokenizer(["<pad>", "<unk>"] + [f"w{i}" for i in range(8)], max_len=max_len)
        embed_contract(model, ModelContract(task="text", labels=["a", "b"], tokenizer=tok.to_dict()))
    return _save(model, path)


def solid(colour: str, h: int = 24, w: int = 32) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = BGR[colour]
    return img


def write_images(folder: Path, colours: Sequence[str], *, nested: bool = True) -> list[Path]:
    """One PNG per colour; every other one inside a sub-folder (tests recursion)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, colour in enumerate(colours):
        sub = folder / "sub" if nested and i % 2 else folder
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"{i:03d}_{colour}.png"
        cv2.imwrite(str(path), solid(colour))
        paths.append(path)
    return paths


def write_video(path: Path, colours: Sequence[str], *, fps: float = 20.0, size: tuple[int, int] = (64, 48),
                fourcc: str = "mp4v") -> Path:
    """A video whose frame i is solid ``colours[i]`` (frame-accurate ground truth)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    assert writer.isOpened(), "OpenCV cannot write test videos here"
    for colour in colours:
        writer.write(solid(colour, size[1], size[0]))
    writer.release()
    return path


def video_colours(n: int, block: int = 5) -> list[str]:
    """red x block, green x block, blue x block, red, ..."""
    return [COLOURS[(i // block) % 3] for i in range(n)]


def feature_map_model(path: Path, *, channels: int = 8, size: int = 32, dynamic: bool = False) -> Path:
    """Not a classifier: a 1x1 convolution returning a feature map (1, channels, size, size); with
    ``dynamic`` input and output are (N, 3, H, W) -> (N, C, H, W) by name only, so only a run
    shows the shape (the runtime feeds its default 224 x 224)."""
    w = numpy_helper.from_array(np.ones((channels, 3, 1, 1), np.float32), "w")
    in_shape = ["N", 3, "H", "W"] if dynamic else [1, 3, size, size]
    out_shape = ["N", "C", "H", "W"] if dynamic else [1, channels, size, size]
    model = _model([helper.make_node("Conv", ["input", "w"], ["features"])],
                   [helper.make_tensor_value_info("input", TensorProto.FLOAT, in_shape)],
                   [helper.make_tensor_value_info("features", TensorProto.FLOAT, out_shape)], [w])
    return _save(model, path)


def nhwc_scores_model(path: Path) -> Path:
    """A classifier whose scores come out as (N, 1, 1, 3): squeezable, so accepted."""
    inits = [numpy_helper.from_array(np.eye(3, dtype=np.float32) * 10, "w"),
             numpy_helper.from_array(np.array([1, 2], np.int64), "axes")]
    nodes = [helper.make_node("ReduceMean", ["input"], ["m"], axes=[2, 3], keepdims=0),  # (N, 3)
             helper.make_node("MatMul", ["m", "w"], ["s"]),  # (N, 3)
             helper.make_node("Unsqueeze", ["s", "axes"], ["scores"])]  # (N, 1, 1, 3)
    model = _model(nodes, [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 16, 16])],
                   [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 1, 1, 3])], inits)
    return _save(model, path)


def int_image_model(path: Path, *, size: int = 224) -> Path:
    """An image-shaped int64 input (N, 3, size, size) without metadata: neither pixels we can feed
    nor token ids."""
    inits = [numpy_helper.from_array(np.eye(3, dtype=np.float32), "w")]
    nodes = [helper.make_node("Cast", ["input"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("ReduceMean", ["f"], ["m"], axes=[2, 3], keepdims=0),  # (N, 3)
             helper.make_node("MatMul", ["m", "w"], ["logits"])]
    model = _model(nodes, [helper.make_tensor_value_info("input", TensorProto.INT64, ["N", 3, size, size])],
                   [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])], inits)
    return _save(model, path)
