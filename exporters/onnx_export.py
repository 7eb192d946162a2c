"""torch -> ONNX with dynamic batch (and sequence) axes, written atomically.

Exporter choice. torch 2.9+ defaults ``torch.onnx.export`` to the ``torch.export``-based
("dynamo") exporter and marks the TorchScript-based one deprecated (a ``DeprecationWarning`` on
every call; it is frozen, not removed, in torch 2.13). edgecv uses the TorchScript path by
default, deliberately:

* it exports every registry model 10-20x faster (0.1-0.3 s vs 1-4 s here), which matters for a
  test suite that exports each architecture several times;
* it emits the requested opset directly; the dynamo exporter only implements opset >= 18 and
  down-converts older requests through the ONNX version converter (a second, lossy step);
* its node names and graphs are stable across torch releases, so simplifier and quantizer
  behaviour does not shift underneath us.

The dynamo path is kept one keyword away (``exporter="dynamo"``, ``edgecv export --exporter
dynamo``) and is tested, so the switch is cheap when the legacy path is finally removed. Either
way the graph is never trusted: :mod:`edgecv.exporters.verify` runs it at batch 1 and 3 (and at
two sequence lengths for text), because the legacy path has baked sequence lengths into attention
graphs (pytorch#111800) and specialised traced batch sizes of 1 (pytorch#133653). That is also why
the deprecation and tracer warnings are silenced for users: the checks that follow are what
decide whether the graph generalises, and a wall of torch warnings is noise next to them.

Large models: protobuf cannot hold more than 2 GB, so graphs whose weights exceed
``EXTERNAL_DATA_THRESHOLD`` are saved with the weights in ``<name>.<hash12>.data`` beside the
model (a content-named file, so a crash mid-save never pairs a model with another save's weights;
see :func:`save_onnx`).
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterator, Sequence

from edgecv.errors import InputError, ModelError, short_message
from edgecv.io import fsync_dir

EXPORTERS = ("torchscript", "dynamo")
# Opsets each exporter writes directly (13: per-channel QuantizeLinear axis; 20: torchscript max).
OPSETS = {"torchscript": range(13, 21), "dynamo": range(18, 24)}
DEFAULT_OPSET = 17
# Protobuf's hard limit is 2 GiB; leave room for the graph itself.
EXTERNAL_DATA_THRESHOLD = 2 * 1024**3 - 64 * 1024**2


def make_sample_input(model: Any, *, task: str, batch: int = 2, input_shape: Sequence[int] | None = None,
                 seq_len: int = 8, vocab_size: int | None = None) -> Any:
    """A tracing input: (B, C, H, W) float32 for image models, (B, T) int64 ids for text models.

    Batch 2 (not 1) and a sequence length other than the verification lengths keep the exporter
    from specialising on sizes that look like constants.
    """
    import torch

    gen = torch.Generator().manual_seed(0)
    if task == "text":
        vocab = int(vocab_size or _vocab_size(model) or 100)
        # Ids >= 2: no padding and no unknown token in the trace input.
        return torch.randint(2, max(3, vocab), (batch, seq_len), generator=gen, dtype=torch.int64)
    if input_shape is None:
        raise InputError("image export: the input shape (C, H, W) is needed to build a sample input")
    return torch.randn((batch, *[int(d) for d in input_shape]), generator=gen)


def export_onnx(model: Any, path: str | os.PathLike[str], *, opset: int = DEFAULT_OPSET,
                dynamic_batch: bool = True, dynamic_seq: bool | None = None, sample_input: Any = None,
                task: str = "image", input_shape: Sequence[int] | None = None,
                return_attention: bool = False, exporter: str = "torchscript") -> Path:
    """Export ``model`` (eval mode) to ``path`` and return the path.

    Inputs/outputs follow the edgecv convention: ``input`` (N, C, H, W) float32 or ``input_ids``
    (N, T) int64 -> ``logits`` (N, classes) [+ ``attention`` (N, layers, heads, T, T) when
    ``return_attention``]. ``dynamic_seq`` defaults to True for text models. The file appears only
    once it is complete (temp file + rename).
    """
    import torch

    if exporter not in EXPORTERS:
        raise InputError(f"exporter {exporter!r}: expected one of {', '.join(EXPORTERS)}")
    check_opset(opset, exporter=exporter)
    if exporter == "dynamo":
        from edgecv.errors import require

        require("onnxscript", "train")  # the torch.export-based exporter is built on it
    if task not in ("image", "text"):
        raise InputError(f"task {task!r}: expected 'image' or 'text'")
    dest = Path(path)
    if dest.is_dir():
        raise InputError(f"{dest}: is a directory, expected an .onnx file path")
    dynamic_seq = (task == "text") if dynamic_seq is None else dynamic_seq
    x = sample_input if sample_input is not None else make_sample_input(
        model, task=task, input_shape=input_shape)
    input_name = "input_ids" if task == "text" else "input"
    output_names = ["logits", "attention"] if return_attention else ["logits"]
    net = _attention_wrapper(model) if return_attention else model
    was_training = model.training
    model.eval()

    in_axes: dict[int, str] = {}
    if dynamic_batch:
        in_axes[0] = "batch"
    if dynamic_seq and task == "text":
        in_axes[1] = "sequence"
    try:
        with scratch_dir(dest) as scratch, torch.no_grad(), quiet_torch_export():
            raw = scratch / "model.onnx"
            if exporter == "torchscript":
                axes = {input_name: in_axes, "logits": {0: "batch"} if dynamic_batch else {}}
                if return_attention:
                    att = {0: "batch"} if dynamic_batch else {}
                    if 1 in in_axes:
                        att.update({3: "sequence", 4: "sequence"})
                    axes["attention"] = att
                torch.onnx.export(net, (x,), str(raw), dynamo=False, opset_version=opset,
                                  input_names=[input_name], output_names=output_names,
                                  dynamic_axes={k: v for k, v in axes.items() if v},
                                  do_constant_folding=True)
            else:
                dims = {i: torch.export.Dim(label) for i, label in in_axes.items()}
                torch.onnx.export(net, (x,), str(raw), dynamo=True, opset_version=opset,
                                  input_names=[input_name], output_names=output_names,
                                  dynamic_shapes=(dims,) if dims else None,
                                  optimize=True, verbose=False)
            import onnx

            proto = onnx.load(str(raw), load_external_data=True)
            save_onnx(proto, dest)
    except (InputError, ModelError):
        raise
    except Exception as exc:  # exporter errors come in many types; all mean "cannot export"
        name = getattr(model, "edgecv_name", type(model).__name__)
        raise ModelError(f"{name}: ONNX export failed ({short_message(exc)})") from None
    finally:
        model.train(was_training)
    return dest


def check_opset(opset: int, *, exporter: str = "torchscript") -> int:
    """Raise :class:`InputError` for an opset the chosen exporter cannot write."""
    valid = OPSETS.get(exporter, OPSETS["torchscript"])
    if int(opset) not in valid:
        raise InputError(f"--opset {opset}: unsupported by the {exporter} exporter "
                         f"(expected {valid.start}..{valid.stop - 1})")
    return int(opset)


def save_onnx(model: Any, path: str | os.PathLike[str], *,
              threshold: int | None = None) -> Path:
    """Write an ``onnx.ModelProto`` atomically; weights go to an external data file beyond the
    threshold.

    The data file is named after its content, ``<model>.<sha256[:12]>.data``, and the model
    refers to it by that name. Write order: the new data file appears beside the old one (the
    old model still reads its own file), then the model is renamed into place, and only then are
    this model's other data files removed. A crash at any point therefore leaves a model whose
    data file is the one it was saved with: the old pair, or the new pair (plus, at worst, an
    unreferenced leftover that the next save removes).
    """
    dest = Path(path)
    limit = EXTERNAL_DATA_THRESHOLD if threshold is None else threshold
    with scratch_dir(dest) as scratch:
        tmp_model = scratch / dest.name
        keep: str | None = None
        if weights_nbytes(model) > limit:
            keep = _write_external(model, tmp_model)
            _fsync(scratch / keep)
            os.replace(scratch / keep, dest.parent / keep)  # new name: the old pair is untouched
        else:
            tmp_model.write_bytes(model.SerializeToString())
        _fsync(tmp_model)
        fsync_dir(dest.parent)
        os.replace(tmp_model, dest)  # the switch from the old pair to the new one
        fsync_dir(dest.parent)
    for stale in _data_files(dest):
        if stale.name != keep:
            stale.unlink(missing_ok=True)
    return dest


def _write_external(model: Any, tmp_model: Path) -> str:
    """Save ``model`` to ``tmp_model`` with its weights in one data file beside it, named after
    the weights' content; returns that file name."""
    import hashlib

    import onnx
    from onnx import external_data_helper as ext

    staging = f"{tmp_model.name}.weights.data"
    ext.convert_model_to_external_data(model, all_tensors_to_one_file=True, location=staging,
                                       size_threshold=1024)
    onnx.save_model(model, str(tmp_model))  # also writes tmp_model.parent/<staging>
    digest = hashlib.sha256()
    with open(tmp_model.parent / staging, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    name = f"{tmp_model.name}.{digest.hexdigest()[:12]}.data"
    os.replace(tmp_model.parent / staging, tmp_model.parent / name)
    for tensor in _external_tensors(model):
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = name
    tmp_model.write_bytes(model.SerializeToString())  # the weights now live only in the data file
    return name


def _data_files(dest: Path) -> list[Path]:
    """Every external data file a save of ``dest`` may have written: ``<name>.<hash12>.data``
    and the older fixed name ``<name>.data``."""
    pattern = re.compile(re.escape(dest.name) + r"(\.[0-9a-f]{12})?\.data")
    if not dest.parent.is_dir():
        return []
    return sorted(p for p in dest.parent.iterdir() if pattern.fullmatch(p.name))


def _external_tensors(model: Any) -> Iterator[Any]:
    """Initializers and tensor attributes stored as external data, subgraphs included."""
    from onnx import external_data_helper as ext

    def graph_tensors(graph: Any) -> Iterator[Any]:
        yield from graph.initializer
        for node in graph.node:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t
                yield from attr.tensors
                for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                    yield from graph_tensors(sub)

    return (t for t in graph_tensors(model.graph) if ext.uses_external_data(t))


def weights_nbytes(model: Any) -> int:
    """Bytes held by the graph's initializers (what decides external data)."""
    total = 0
    for init in model.graph.initializer:
        if init.HasField("raw_data"):
            total += len(init.raw_data)
        else:
            total += sum(len(getattr(init, f)) for f in ("float_data", "int64_data", "int32_data",
                                                        "double_data", "uint64_data")) * 4
    return total


def model_files(path: str | os.PathLike[str]) -> list[Path]:
    """The model file plus the external data files it refers to (for sizes and clean-up). The
    names are read from the model itself (weights not loaded), so a leftover data file of an
    earlier save is never counted as this model's."""
    p = Path(path)
    files = [p]
    if not p.is_file():
        return files
    import onnx

    try:
        model = onnx.load(str(p), load_external_data=False)
    except Exception:  # not a readable model: only the file itself
        return files
    for tensor in _external_tensors(model):
        location = next((e.value for e in tensor.external_data if e.key == "location"), None)
        data = p.parent / location if location else None
        if data is not None and data.exists() and data not in files:
            files.append(data)
    return files


def file_size(path: str | os.PathLike[str]) -> int:
    """Bytes on disk of a model and its external data."""
    return sum(f.stat().st_size for f in model_files(path) if f.exists())


def count_nodes(model: Any) -> int:
    """Nodes in the main graph (what the report's "nodes" column shows)."""
    return len(model.graph.node)


@contextlib.contextmanager
def quiet_torch_export() -> Iterator[None]:
    """Silence the exporter's deprecation, tracer and logging chatter (see module docstring)."""
    import logging

    import torch

    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo",
                                              "torch.fx.experimental.symbolic_shapes", "onnxscript")]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            with contextlib.redirect_stdout(_NullWriter()):
                yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


class _NullWriter:
    def write(self, _text: str) -> int:
        return 0

    def flush(self) -> None:
        pass


def _attention_wrapper(model: Any) -> Any:
    """A module calling ``forward(input_ids, return_attention=True)`` so the graph has two outputs."""
    import torch

    class AttentionOutputs(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.model = inner

        def forward(self, input_ids: Any) -> Any:
            return self.model(input_ids, return_attention=True)  # (logits, attention)

    return AttentionOutputs(model).eval()


def supports_attention(model: Any) -> bool:
    """True for models whose forward accepts ``return_attention`` (attention text models)."""
    import inspect

    try:
        return "return_attention" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


@contextlib.contextmanager
def scratch_dir(dest: Path) -> Iterator[Path]:
    """A hidden temp folder beside ``dest`` (same filesystem -> atomic renames); always removed."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _fsync(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def _vocab_size(model: Any) -> int | None:
    kwargs = getattr(model, "edgecv_kwargs", {}) or {}
    if kwargs.get("vocab_size"):
        return int(kwargs["vocab_size"])
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.Embedding):
            return int(module.num_embeddings)
    return None
