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
``EXTERNAL_DATA_THRESHOLD`` are saved with the weights in ``<name>.data`` beside the model.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterator, Sequence

from edgecv.errors import InputError, ModelError, short_message

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
    """Write an ``onnx.ModelProto`` atomically; weights go to ``<name>.data`` beyond the threshold.

    Both files are first written to a scratch folder beside ``path`` and renamed into place (data
    file first), so a reader never sees a model whose external data is missing or stale.
    """
    import onnx
    from onnx import external_data_helper as ext

    dest = Path(path)
    limit = EXTERNAL_DATA_THRESHOLD if threshold is None else threshold
    data_name = dest.name + ".data"
    with scratch_dir(dest) as scratch:
        tmp_model = scratch / dest.name
        if weights_nbytes(model) > limit:
            ext.convert_model_to_external_data(model, all_tensors_to_one_file=True,
                                               location=data_name, size_threshold=1024)
            onnx.save_model(model, str(tmp_model))  # also writes scratch/<data_name>
            _fsync(scratch / data_name)
            os.replace(scratch / data_name, dest.parent / data_name)
        else:
            tmp_model.write_bytes(model.SerializeToString())
            stale = dest.parent / data_name
            if stale.exists() and not _any_external(model):
                stale.unlink()
        _fsync(tmp_model)
        os.replace(tmp_model, dest)
    return dest


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
    """The model file plus its external-data file, if any (for sizes and clean-up)."""
    p = Path(path)
    data = p.with_name(p.name + ".data")
    return [p, data] if data.exists() else [p]


def file_size(path: str | os.PathLike[str]) -> int:
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


def _any_external(model: Any) -> bool:
    from onnx import external_data_helper as ext

    return any(ext.uses_external_data(t) for t in model.graph.initializer)


def _vocab_size(model: Any) -> int | None:
    kwargs = getattr(model, "edgecv_kwargs", {}) or {}
    if kwargs.get("vocab_size"):
        return int(kwargs["vocab_size"])
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.Embedding):
            return int(module.num_embeddings)
    return None
