"""Per-layer output shapes, parameters and MACs of a PyTorch model (``edgecv inspect NAME``).

One forward pass at batch 1 with forward hooks on every module, inside
``torch.utils.flop_counter.FlopCounterMode``. Each leaf module call becomes a row; a non-leaf
module whose own forward does matrix work outside its children (the hand-written attention
matmuls ``Q K^T`` and ``weights V``) or owns parameters directly gets a row of its own, so
nothing is lost from the totals.

MAC conventions match :mod:`edgecv.graph.stats` (the ONNX view), so the two agree:
conv / linear / matmul work only, no bias adds or activations; FLOPs = 2 x MACs. Recurrent layers
use a rule (``T x B x (|W_ih| + |W_hh|)`` per layer and direction) because eager CPU LSTM kernels
are invisible to the flop counter.

Models built on the ``meta`` device (no memory, no weight init) give the same figures in a
fraction of the time; ``edgecv models`` uses that.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from edgecv.errors import InputError, ModelError
from edgecv.graph.stats import LayerStats, ModelStats
from edgecv.models.registry import builder_parameters, create_model, get_model_spec

DEFAULT_VOCAB = 10000  # text models in `edgecv models` / `edgecv inspect NAME`
DEFAULT_TEXT_CLASSES = 2
IMAGENET_CLASSES = 1000  # torchvision-compatible image models


def _first_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)):
        for item in value:
            found = _first_tensor(item)
            if found is not None:
                return found
    if isinstance(value, dict):
        return _first_tensor(list(value.values()))
    return None


def _rnn_macs(module: nn.RNNBase, x: torch.Tensor) -> int:
    """Input + recurrent projections for every step, layer and direction (+ LSTM projection)."""
    if x.dim() == 2:  # unbatched (T, I)
        steps_times_batch = x.shape[0]
    else:
        steps_times_batch = x.shape[0] * x.shape[1]
    weights = sum(p.numel() for n, p in module.named_parameters(recurse=False) if n.startswith("weight_"))
    return int(steps_times_batch * weights)


def summarize(model: nn.Module, example_input: torch.Tensor | Sequence[torch.Tensor], *,
              source: str | None = None) -> ModelStats:
    """Run ``model`` once on ``example_input`` and return its per-layer table and totals."""
    try:
        return _summarize(model, example_input, source=source)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - shapes that do not fit the architecture
        inputs = example_input if isinstance(example_input, (tuple, list)) else (example_input,)
        shapes = ", ".join(str(tuple(t.shape)) for t in inputs)
        text = " ".join(str(exc).split())[:200]
        raise InputError(f"{source or type(model).__name__}: forward pass failed for input {shapes} "
                         f"({text})") from None


def _summarize(model: nn.Module, example_input: torch.Tensor | Sequence[torch.Tensor], *,
               source: str | None = None) -> ModelStats:
    from torch.utils.flop_counter import FlopCounterMode

    inputs = tuple(example_input) if isinstance(example_input, (tuple, list)) else (example_input,)
    counter = FlopCounterMode(display=False)
    recorder = _LayerRecorder(model, counter)
    handles = recorder.attach(model)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), counter:
            output = model(*inputs)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return _model_stats(model, inputs, output, recorder.layers, source=source)


class _LayerRecorder:
    """Forward hooks that turn module calls into table rows. The flop counter's running total is
    read before and after each call; a module's own MACs are its total minus its children's, so
    the matmuls a non-leaf forward does itself are counted once, in its own row."""

    def __init__(self, model: nn.Module, counter: Any) -> None:
        self.counter = counter
        self.names = {id(m): n for n, m in model.named_modules()}
        self.stack: list[dict[str, Any]] = []  # one frame per module call in progress
        self.layers: list[LayerStats] = []
        self.seen_params: set[int] = set()  # a shared weight counts once, in the first row that owns it

    def attach(self, model: nn.Module) -> list[Any]:
        handles = []
        for module in model.modules():
            handles.append(module.register_forward_pre_hook(self.pre_hook))
            handles.append(module.register_forward_hook(self.post_hook))
        return handles

    def own_params(self, module: nn.Module) -> int:
        count = 0
        for p in module.parameters(recurse=False):
            if id(p) not in self.seen_params:
                self.seen_params.add(id(p))
                count += p.numel()
        return count

    def pre_hook(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        self.stack.append({"start": self.counter.get_total_flops(), "children": 0, "args": args})

    def post_hook(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        frame = self.stack.pop()
        inclusive = self.counter.get_total_flops() - frame["start"]
        if self.stack:
            self.stack[-1]["children"] += inclusive
        own_flops = inclusive - frame["children"]
        leaf = not any(True for _ in module.children())
        if isinstance(module, nn.RNNBase):
            x = _first_tensor(frame["args"])
            macs = _rnn_macs(module, x) if x is not None else 0
        else:
            macs = own_flops // 2
        params = self.own_params(module)
        if not leaf and macs == 0 and params == 0:
            return
        out = _first_tensor(output)
        name = self.names.get(id(module), "") or type(module).__name__
        self.layers.append(LayerStats(name=name, type=type(module).__name__,
                                      output_shape=list(out.shape) if out is not None else None,
                                      params=params, macs=int(macs)))


def _model_stats(model: nn.Module, inputs: tuple[torch.Tensor, ...], output: Any,
                 layers: list[LayerStats], *, source: str | None) -> ModelStats:
    """Totals over the recorded rows and the model's own parameters and buffers."""
    params = {id(p): p for p in model.parameters()}
    buffers = list(model.buffers())
    out = _first_tensor(output)
    spec = getattr(model, "edgecv_spec", None)
    return ModelStats(
        source=source or getattr(model, "edgecv_name", type(model).__name__), kind="torch",
        layers=layers,
        total_params=sum(p.numel() for p in params.values()),
        total_macs=sum(layer.macs for layer in layers),
        total_buffers=sum(b.numel() for b in buffers if b.is_floating_point()),
        param_bytes=sum(p.numel() * p.element_size() for p in params.values())
        + sum(b.numel() * b.element_size() for b in buffers),
        inputs=[{"name": "input_ids" if t.dtype == torch.int64 else "input", "shape": list(t.shape),
                 "dtype": str(t.dtype).replace("torch.", "")} for t in inputs],
        outputs=[{"name": "logits", "shape": list(out.shape) if out is not None else None}],
        info={"architecture": getattr(model, "edgecv_name", None),
              "model_kwargs": getattr(model, "edgecv_kwargs", None),
              "task": spec.task if spec is not None else None},
    )


# ----------------------------------------------------------------------------- registry models


def parse_input_size(text: str | None, *, default: Sequence[int]) -> tuple[int, ...]:
    """``"224"`` -> (C, 224, 224) keeping the default channels; ``"3,224,224"`` as given."""
    if text is None or str(text).strip() == "":
        return tuple(int(v) for v in default)
    try:
        values = [int(v) for v in str(text).replace("x", ",").split(",") if v.strip()]
    except ValueError:
        raise InputError(f"input size {text!r}: expected e.g. 224 or 3,224,224") from None
    if len(values) == 1:
        values = [int(default[0]), values[0], values[0]]
    elif len(values) == 2:
        values = [int(default[0]), *values]
    if len(values) != 3 or any(v < 1 for v in values):
        raise InputError(f"input size {text!r}: expected e.g. 224 or 3,224,224")
    return tuple(values)


def build_kwargs(name: str, *, num_classes: int | None = None, vocab_size: int | None = None,
                 input_size: Sequence[int] | None = None) -> dict[str, Any]:
    """Builder kwargs for a registry model: ImageNet's 1000 classes for torchvision-compatible
    models, builder defaults otherwise; text models get a ``DEFAULT_VOCAB`` vocabulary."""
    spec = get_model_spec(name)
    accepted = builder_parameters(name)
    kwargs: dict[str, Any] = {}
    if spec.task == "text":
        kwargs["vocab_size"] = vocab_size or DEFAULT_VOCAB
        kwargs["num_classes"] = num_classes or DEFAULT_TEXT_CLASSES
        return kwargs
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    elif spec.torchvision_compatible:
        kwargs["num_classes"] = IMAGENET_CLASSES
    if input_size is not None:
        c, h, w = input_size
        if c != spec.input_size[0] and "in_channels" in accepted:
            kwargs["in_channels"] = c
        if (h, w) != tuple(spec.input_size[1:]) and "input_size" in accepted:
            if h != w:
                raise InputError(f"{name}: input size {h}x{w}: this model needs a square input")
            kwargs["input_size"] = h
    return kwargs


def example_input(name: str, *, input_size: Sequence[int] | None = None, seq_len: int | None = None,
                  batch: int = 1, device: str | torch.device = "cpu") -> torch.Tensor:
    """A batch that fits the registered model: (B, C, H, W) floats or (B, T) token ids."""
    spec = get_model_spec(name)
    if spec.task == "text":
        steps = int(seq_len or spec.input_size[0])
        if steps < 1:
            raise InputError(f"seq_len={seq_len}: expected a positive integer")
        # token id 1 (unknown word) everywhere: every position is a real token, nothing masked
        return torch.ones(batch, steps, dtype=torch.long, device=device)
    size = tuple(input_size or spec.input_size)
    return torch.zeros(batch, *size, device=device)


def summarize_registered(name: str, *, num_classes: int | None = None, vocab_size: int | None = None,
                         input_size: Sequence[int] | None = None, seq_len: int | None = None,
                         meta: bool = True) -> ModelStats:
    """Stats of a registry architecture, built on the ``meta`` device (fast, no weights) when
    possible and on CPU otherwise."""
    spec = get_model_spec(name)
    size = tuple(input_size or spec.input_size) if spec.task == "image" else None
    kwargs = build_kwargs(name, num_classes=num_classes, vocab_size=vocab_size, input_size=size)
    try:
        stats = None
        if meta:
            try:  # data-dependent Python code cannot run on meta tensors; then use CPU
                with torch.device("meta"):
                    model = create_model(name, **kwargs)
                x = example_input(name, input_size=size, seq_len=seq_len, device="meta")
                stats = _summarize(model, x, source=name)
            except (NotImplementedError, RuntimeError):
                stats = None
        if stats is None:
            model = create_model(name, **kwargs)
            stats = summarize(model, example_input(name, input_size=size, seq_len=seq_len), source=name)
    except ValueError as exc:  # builders reject impossible sizes with ValueError
        raise ModelError(f"model {name!r}: {' '.join(str(exc).split())}") from None
    stats.info.update({"architecture": name, "model_kwargs": kwargs, "task": spec.task,
                       "input_size": list(size) if size else [int(seq_len or spec.input_size[0])]})
    return stats


# ----------------------------------------------------------------------------- checkpoints


def summarize_checkpoint(path: str, *, model_name: str | None = None, num_classes: int | None = None,
                         vocab_size: int | None = None, input_size: str | None = None,
                         seq_len: int | None = None) -> ModelStats:
    """Stats of a trained model: an edgecv checkpoint (architecture and kwargs read from it) or a
    bare torchvision-format state dict (``model_name`` required). The weights are loaded with
    ``load_weights`` so a checkpoint of another architecture fails with the keys that differ."""
    from edgecv.models.checkpoint import (
        extract_state_dict,
        is_edgecv_checkpoint,
        load_checkpoint,
    )
    from edgecv.models.weights import load_weights

    obj = load_checkpoint(path)
    name, kwargs, preprocess = _checkpoint_facts(path, obj, model_name=model_name)
    spec = get_model_spec(name)
    state = extract_state_dict(obj, source=str(path))
    if not kwargs:
        kwargs = _kwargs_from_state(name, state, num_classes=num_classes, vocab_size=vocab_size)
    elif num_classes is not None:
        kwargs["num_classes"] = num_classes
    try:
        model = create_model(name, **kwargs)
    except ValueError as exc:
        raise ModelError(f"{path}: cannot build {name} with {kwargs} ({exc})") from None
    load_weights(model, path)  # errors name the file and the keys that differ
    x = _checkpoint_input(name, kwargs, preprocess, input_size=input_size, seq_len=seq_len)
    stats = summarize(model, x, source=str(path))
    stats.info.update({"architecture": name, "model_kwargs": kwargs, "task": spec.task,
                       "input_size": list(x.shape[1:]),
                       "checkpoint": "edgecv" if is_edgecv_checkpoint(obj) else "state_dict"})
    return stats


def _checkpoint_facts(path: str, obj: dict[str, Any], *,
                      model_name: str | None) -> tuple[str, dict[str, Any], Any]:
    """Architecture, builder kwargs and preprocessing recorded in the checkpoint; a bare state dict
    records none of them, so it needs ``model_name`` and its sizes are read from its tensors."""
    from edgecv.models.checkpoint import is_edgecv_checkpoint

    if not is_edgecv_checkpoint(obj):
        if model_name is None:
            raise InputError(f"{path}: a bare state dict does not say which architecture it is; "
                             f"pass --model NAME")
        return model_name, {}, None
    name = model_name or obj.get("model")
    if not isinstance(name, str):
        raise ModelError(f"{path}: edgecv checkpoint without a model name; pass --model NAME")
    # the saved kwargs belong to the saved architecture; another --model reads sizes from the tensors
    same = model_name is None or model_name == obj.get("model")
    return name, dict(obj.get("model_kwargs") or {}) if same else {}, obj.get("preprocess")


def _kwargs_from_state(name: str, state: dict[str, Any], *, num_classes: int | None,
                       vocab_size: int | None) -> dict[str, Any]:
    """Builder kwargs whose class count (and vocabulary size for text models) are the
    checkpoint's own, found under the layer names of the architecture itself (its classifier head,
    its token embedding), so every registered model works whatever its layers are called."""
    from edgecv.models.weights import head_name

    kwargs = build_kwargs(name, num_classes=num_classes, vocab_size=vocab_size)
    probe = _probe(name, kwargs)
    head = state.get(f"{head_name(probe)}.weight")  # (classes, features[, 1, 1])
    if num_classes is None and head is not None:
        kwargs["num_classes"] = int(head.shape[0])
    if vocab_size is None and "vocab_size" in kwargs:
        table = state.get(_token_table(probe, int(kwargs["vocab_size"])) or "")  # (vocab, dim)
        if table is not None and table.dim() == 2:
            kwargs["vocab_size"] = int(table.shape[0])
    return kwargs


def _probe(name: str, kwargs: dict[str, Any]) -> nn.Module:
    """The architecture without weights (``meta`` device: no memory, no init), to read its layer
    names; on CPU for builders that cannot run on ``meta``."""
    try:
        with torch.device("meta"):
            return create_model(name, **kwargs)
    except (NotImplementedError, RuntimeError):
        return create_model(name, **kwargs)


def _token_table(probe: nn.Module, vocab_size: int) -> str | None:
    """State-dict key of the embedding looked up by token id: the one the probe built with
    ``vocab_size`` rows (a position table has ``max_len`` rows)."""
    for module_name, module in probe.named_modules():
        if isinstance(module, nn.Embedding) and module.num_embeddings == vocab_size:
            return f"{module_name}.weight"
    return None


def _checkpoint_input(name: str, kwargs: dict[str, Any], preprocess: Any, *, input_size: str | None,
                      seq_len: int | None) -> torch.Tensor:
    """An example batch of the size the model was trained for: the registry default, changed by the
    builder kwargs, then by the checkpoint's preprocessing, then by ``input_size`` from the user."""
    spec = get_model_spec(name)
    if spec.task != "image":
        return example_input(name, seq_len=seq_len)
    size = list(spec.input_size)
    if isinstance(kwargs.get("in_channels"), int):
        size[0] = kwargs["in_channels"]
    if isinstance(kwargs.get("input_size"), int):
        size[1:] = [kwargs["input_size"]] * 2
    if isinstance(preprocess, dict) and preprocess.get("size"):
        size[1:] = [int(v) for v in preprocess["size"]]
        size[0] = 1 if preprocess.get("color") == "gray" else size[0]
    return example_input(name, input_size=parse_input_size(input_size, default=size))
