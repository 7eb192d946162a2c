"""``edgecv inspect MODEL``: per-layer output shapes, params and MACs; feature-map montages.

MODEL is a registry name, a checkpoint (.pt/.pth) or an .onnx file. The ONNX view, ``--layers``
and ``--activations`` never import torch, so they work on an edge device.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from edgecv.commands.options import (
    PREPROCESS_FLAGS,
    PREPROCESS_KEYS,
    ProviderType,
    preprocess_options,
    preprocess_overrides,
    take,
)

ONNX_SUFFIXES = (".onnx",)
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".tar")


def resolve_kind(ref: str) -> str:
    """"onnx", "checkpoint" or "name" for what the user passed; file errors are raised here."""
    from edgecv.onnx_file import check_model_path

    p = Path(ref)
    suffix = p.suffix.lower()
    looks_like_path = p.exists() or suffix in ONNX_SUFFIXES + CHECKPOINT_SUFFIXES or "/" in ref or os.sep in ref
    if not looks_like_path:
        return "name"
    check_model_path(p)  # missing, directory, empty
    if suffix in ONNX_SUFFIXES:
        return "onnx"
    if suffix in CHECKPOINT_SUFFIXES:
        return "checkpoint"
    with open(p, "rb") as handle:
        head = handle.read(4)
    # torch.save writes a zip archive; anything else is tried as ONNX (protobuf has no magic)
    return "checkpoint" if head.startswith(b"PK") else "onnx"


def _shape_text(shape: Any) -> str:
    return "-" if shape is None else "x".join(str(v) for v in shape) or "scalar"


def _mb(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.2f} MB"


def render(stats: Any, *, show_all: bool = False) -> str:
    """Human table plus totals for a :class:`~edgecv.graph.stats.ModelStats`."""
    from edgecv.table import format_table

    layers = [layer for layer in stats.layers if show_all or not layer.shape_op]
    rows = [{"#": i, "name": layer.name, "type": layer.type, "output": _shape_text(layer.output_shape),
             "params": layer.params, "macs": layer.macs} for i, layer in enumerate(layers)]
    lines = []
    io = ", ".join(f"{v['name']} {_shape_text(v['shape'])}" + (f" {v['dtype']}" if v.get("dtype") else "")
                   for v in stats.inputs)
    head = stats.source
    if stats.kind == "onnx":
        info = stats.info
        head += f" (ONNX, opset {info.get('opset')}, IR {info.get('ir_version')}"
        head += f", from {info['producer']})" if info.get("producer") else ")"
    else:
        head += f" (PyTorch {stats.info.get('architecture') or ''} {json.dumps(stats.info.get('model_kwargs') or {})})"
    lines += [head, f"inputs: {io}", ""]
    lines.append(format_table(rows, [("#", "#"), ("name", "name"), ("type", "type"), ("output", "output shape"),
                                     ("params", "params"), ("macs", "MACs")]))
    hidden = len(stats.layers) - len(layers)
    lines.append("")
    lines.append(f"total params:  {stats.total_params:,}" +
                 (f"  (+ {stats.total_buffers:,} buffer elements, e.g. BatchNorm running stats)"
                  if stats.total_buffers else ""))
    lines.append(f"total MACs:    {stats.total_macs:,}  ({stats.total_macs / 1e6:,.1f} M)")
    lines.append(f"GFLOPs:        {stats.gflops:.3f}  (FLOPs = 2 x MACs, batch {_batch(stats)})")
    if stats.file_bytes is not None:
        lines.append(f"model size:    {_mb(stats.file_bytes)} file, {_mb(stats.param_bytes)} weights")
    else:
        lines.append(f"model size:    {_mb(stats.param_bytes)} (parameters + buffers as stored)")
    if hidden:
        lines.append(f"({hidden} shape-arithmetic/constant nodes hidden; --all shows them)")
    for note in stats.notes:
        lines.append(f"note: {note}")
    return "\n".join(lines)


def _batch(stats: Any) -> Any:
    for value in stats.inputs:
        shape = value.get("shape") or []
        if shape and isinstance(shape[0], int):
            return shape[0]
    return 1


@dataclass
class InspectOptions:
    """Every ``edgecv inspect`` flag, one field each (click passes them by these names)."""

    model_ref: str
    arch: str | None = None
    num_classes: int | None = None
    input_size: str | None = None
    seq_len: int | None = None
    vocab_size: int | None = None
    batch: int = 1
    show_all: bool = False
    as_json: bool = False
    list_layers: bool = False
    image: str | None = None
    layer: str | None = None
    output: str | None = None
    max_channels: int = 64
    # --activations backend: None = ONNX Runtime on CPU (the graph layer's own default)
    provider: str | None = None
    precision: str = "auto"
    allow_fallback: bool = False
    # --activations preprocessing for foreign models: the same flags as ``edgecv infer``
    preprocess: dict[str, Any] = field(default_factory=dict)  # PREPROCESS_KEYS: flags given, by name

    def open_runner(self) -> Any:
        """The engine factory handed to the graph layer for ``--provider`` (None: its default,
        ONNX Runtime on CPU). ``edgecv.graph`` may not import ``edgecv.runtimes``; the command may."""
        if self.provider is None:
            return None
        from edgecv.runtimes.engines.base import EngineOptions, open_engine

        options = EngineOptions(provider=self.provider, precision=self.precision, allow_fallback=self.allow_fallback)
        return lambda path: open_engine(path, options)

    def overrides(self) -> Any:
        """The preprocessing flags given, as ``PreprocessOverrides``; None when there are none."""
        from edgecv.runtimes.foreign import PreprocessOverrides

        given = preprocess_overrides(self.preprocess)
        return PreprocessOverrides(**given) if given else None


@click.command("inspect", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model_ref", metavar="MODEL")
@click.option("--model", "arch", default=None, metavar="NAME",
              help="Architecture of a bare (torchvision-format) state-dict checkpoint.")
@click.option("--num-classes", type=click.IntRange(min=1), default=None, help="Classes of the head (registry names).")
@click.option("--input-size", default=None, metavar="S|C,H,W", help="Image input size, e.g. 224 or 3,224,224.")
@click.option("--seq-len", type=click.IntRange(min=1), default=None,
              help="Text models: sequence length [default: 64, or the model's maximum if smaller].")
@click.option("--vocab-size", type=click.IntRange(min=2), default=None, help="Text models: vocabulary size [default: 10000].")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True, help="ONNX: batch size for dynamic batch axes.")
@click.option("--all", "show_all", is_flag=True, help="Also list shape-arithmetic and constant nodes.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--layers", "list_layers", is_flag=True, help="ONNX: list intermediate tensors (name, op, shape).")
@click.option("--activations", "image", default=None, metavar="IMAGE",
              help="ONNX: run IMAGE and write a montage of --layer's channels to -o.")
@click.option("--layer", default=None, metavar="NAME", help="Tensor for --activations (see --layers).")
@click.option("-o", "--output", default=None, metavar="FILE.png", help="Montage PNG written by --activations.")
@click.option("--max-channels", type=click.IntRange(min=1), default=64, show_default=True,
              help="Channels drawn in the montage.")
@click.option("--provider", type=ProviderType(), default=None,
              help="--activations: run on this engine, e.g. openvino or openvino:GPU [default: ONNX Runtime CPU].")
@click.option("--precision", type=click.Choice(["auto", "f32", "bf16", "f16"]), default="auto", show_default=True,
              help="--activations: OpenVINO inference precision (the maps are what that precision computes).")
@click.option("--allow-fallback", is_flag=True, help="--activations: let an absent --provider device fall back to CPU.")
@preprocess_options(what="--activations: ")
def inspect(**params: Any) -> None:
    """Per-layer output shape, params and MACs of a model, with totals (like analyzeNetwork).

    MODEL is a registry name (see `edgecv models`), an edgecv or torchvision checkpoint
    (.pt/.pth; add --model NAME for a bare state dict) or an .onnx file. For an .onnx exported
    by edgecv, its contract (task, labels, preprocessing, export settings) is printed first.
    --activations prepares IMAGE with the model's own preprocessing; for a foreign model, give
    it with the same flags as `edgecv infer` (--size --resize --crop --stretch --scale --mean
    --std --bgr).

    \b
    Example:
      edgecv inspect mobilenet_v2 --input-size 160 --num-classes 5
      edgecv inspect lstm_classifier --seq-len 128 --json
      edgecv inspect runs/exp1/best.pt
      edgecv inspect mobilenet_v2.pth --model mobilenet_v2
      edgecv inspect model.onnx
      edgecv inspect model.onnx --layers
      edgecv inspect model.onnx --activations cat.jpg --layer /features/features.0/features.0.2/Clip_output_0 -o maps.png
      edgecv inspect foreign.onnx --activations cat.jpg --layer conv1 -o maps.png --size 224 --mean 0.5 --std 0.5
      edgecv inspect model.onnx --activations cat.jpg --layer conv1 -o maps.png --provider openvino
    """
    opts = InspectOptions(preprocess=take(params, PREPROCESS_KEYS), **params)
    _check_usage(opts)
    kind = resolve_kind(opts.model_ref)
    if (opts.list_layers or opts.image) and kind != "onnx":
        raise click.BadParameter(f"{opts.model_ref}: --layers/--activations work on an .onnx file",
                                 param_hint="MODEL")
    if kind == "onnx":
        _inspect_onnx(opts)
        return
    from edgecv.errors import require

    require("torch", "train")
    from edgecv.models.summary import (
        parse_input_size,
        summarize_checkpoint,
        summarize_registered,
    )

    if kind == "checkpoint":
        stats = summarize_checkpoint(opts.model_ref, model_name=opts.arch, num_classes=opts.num_classes,
                                     vocab_size=opts.vocab_size, input_size=opts.input_size, seq_len=opts.seq_len)
    else:
        from edgecv.models import get_model_spec

        spec = get_model_spec(opts.model_ref)  # unknown names: error listing the valid ones
        size = parse_input_size(opts.input_size, default=spec.input_size) if spec.task == "image" else None
        stats = summarize_registered(opts.model_ref, num_classes=opts.num_classes, vocab_size=opts.vocab_size,
                                     input_size=size, seq_len=opts.seq_len)
    _emit(stats, as_json=opts.as_json, show_all=opts.show_all)


def _check_usage(opts: InspectOptions) -> None:
    """Flag combinations that cannot mean anything: click usage errors (exit 2)."""
    if opts.image is not None and (opts.layer is None or opts.output is None):
        raise click.UsageError("--activations IMAGE needs --layer NAME and -o FILE.png")
    if (opts.layer is not None or opts.output is not None) and opts.image is None:
        raise click.UsageError("--layer and -o are used with --activations IMAGE")
    if opts.image is None and (opts.provider is not None or opts.precision != "auto" or opts.allow_fallback):
        raise click.UsageError("--provider, --precision and --allow-fallback choose the engine of --activations IMAGE")
    if opts.image is None and opts.overrides() is not None:
        raise click.UsageError(f"{'/'.join(PREPROCESS_FLAGS)} prepare the image of --activations IMAGE")


def _emit(stats: Any, *, as_json: bool, show_all: bool, contract: Any = None) -> None:
    if as_json:
        data = stats.to_dict()
        data["layers"] = [layer for layer in data["layers"] if show_all or not layer["shape_op"]]
        if contract is not None:
            data["contract"] = {k[len("edgecv."):]: json.loads(v) for k, v in contract.to_metadata().items()}
        click.echo(json.dumps(data, indent=2))
        return
    if contract is not None:
        click.echo(contract.describe() + "\n")
    click.echo(render(stats, show_all=show_all))


def _inspect_onnx(opts: InspectOptions) -> None:
    from edgecv.contract import contract_from_model
    from edgecv.onnx_file import load_onnx

    if opts.image is not None:
        _activations(opts)
        return
    model = load_onnx(opts.model_ref)
    if opts.list_layers:
        _list_layers(model, as_json=opts.as_json)
        return
    from edgecv.graph.stats import graph_stats

    side = 224
    if opts.input_size:
        try:
            side = int(str(opts.input_size).replace("x", ",").split(",")[-1])
        except ValueError:
            raise click.BadParameter(f"{opts.input_size!r}: expected e.g. 224 or 3,224,224",
                                     param_hint="--input-size") from None
    contract = contract_from_model(model, source=opts.model_ref)
    seq_len = _onnx_seq_len(opts, contract)
    stats = graph_stats(model, batch=opts.batch, seq_len=seq_len, image_size=side, source=opts.model_ref)
    _emit(stats, as_json=opts.as_json, show_all=opts.show_all, contract=contract)


def _onnx_seq_len(opts: InspectOptions, contract: Any) -> int:
    """--seq-len, checked against the model's maximum; by default 64 or that maximum if smaller
    (shapes at a length the graph cannot run would describe a model that does not exist)."""
    from edgecv.errors import InputError

    limit = contract.max_seq_len if contract is not None else None
    if opts.seq_len is not None and limit is not None and opts.seq_len > limit:
        raise InputError(f"{Path(opts.model_ref).name}: --seq-len {opts.seq_len} is above the model's maximum "
                         f"of {limit} tokens (edgecv.max_seq_len)")
    return opts.seq_len or min(64, limit or 64)


def _list_layers(model: Any, *, as_json: bool) -> None:
    from edgecv.graph.activations import list_tensors
    from edgecv.table import format_table

    tensors = list_tensors(model)
    if as_json:
        click.echo(json.dumps([t.to_dict() for t in tensors], indent=2))
    else:
        click.echo(format_table([{"name": t.name, "op": t.op, "shape": _shape_text(t.shape)} for t in tensors],
                                [("name", "name"), ("op", "op"), ("shape", "shape (batch 1)")]))


def _activations(opts: InspectOptions) -> None:
    """--activations: the output path is checked before the model runs, the preprocessing
    flags become a spec here (the graph layer takes a finished spec, it knows no flags)."""
    from edgecv.graph.activations import write_montage
    from edgecv.io import check_writable

    check_writable(opts.output or "", option="-o")
    spec = _activation_spec(opts)
    summary = write_montage(opts.model_ref, opts.image or "", opts.layer or "", opts.output or "",
                            max_channels=opts.max_channels, spec=spec, open_runner=opts.open_runner())
    if opts.as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(f"wrote {summary['output']}: {summary['channels_shown']} channel(s) of {opts.layer} "
                   f"{_shape_text(summary['shape'])} (min {summary['min']:.4g}, max {summary['max']:.4g}; "
                   f"{summary['engine']})")


def _activation_spec(opts: InspectOptions) -> Any:
    """The model's preprocessing (contract, else defaults from its input) with the flags applied,
    exactly as ``edgecv infer`` builds it; None without flags (the graph layer's own choice)."""
    import re

    import numpy as np

    from edgecv.contract import contract_from_model
    from edgecv.errors import InputError
    from edgecv.onnx_file import graph_inputs, load_onnx
    from edgecv.runtimes.foreign import build_spec
    from edgecv.runtimes.inputs import InputInfo

    overrides = opts.overrides()
    if overrides is None:
        return None
    name = Path(opts.model_ref).name
    model = load_onnx(opts.model_ref, load_external_data=False)
    contract = contract_from_model(model, source=opts.model_ref)
    inputs = [InputInfo.from_onnx(i, source=name) for i in graph_inputs(model)]
    if not inputs or len(inputs[0].shape) != 4 or (contract is not None and contract.task != "image"):
        got = f"input {inputs[0].name!r} {inputs[0].describe()}" if inputs else "no inputs"
        raise InputError(f"{name}: {'/'.join(PREPROCESS_FLAGS)} prepare an image, but the model has {got}; "
                         "expected an image model with an (N, C, H, W) or (N, H, W, C) input")
    dtype = "float16" if np.dtype(inputs[0].dtype) == np.float16 else "float32"
    try:
        spec = build_spec(input_shape=list(inputs[0].shape), input_dtype=dtype,
                          base=contract.preprocess if contract is not None else None, overrides=overrides)
    except InputError as exc:  # its words are the Python keywords: name the flags instead
        text = re.sub(r"^(mean/std|resize|scale|size) ", lambda m: "--" + m.group(1).replace("/", "/--") + " ",
                      str(exc))
        raise InputError(f"{name}: {text}") from None
    hw = slice(2, 4) if spec.layout == "nchw" else slice(1, 3)
    if any(d is not None and d != w for d, w in zip(inputs[0].shape[hw], spec.input_shape(1)[hw])):
        h, w = spec.size  # blame the flag, not ONNX Runtime's "invalid dimensions" later
        raise InputError(f"{name}: --size/--crop give {h}x{w}, but input {inputs[0].name!r} is fixed at "
                         f"{inputs[0].describe()}; leave them out or match the model")
    return spec
