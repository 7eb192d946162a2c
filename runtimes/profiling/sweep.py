"""Profile sweeps: model x provider x batch x threads x sequence length (never imports torch).

Inputs are synthesised from the model itself: its graph inputs (rank, dtype incl. float16, fixed
vs dynamic dims) plus its edgecv contract (image size, tokenizer vocabulary and max length). A
foreign model whose dims cannot be inferred gets a one-line error naming the flag that fixes it
(``--shape input=1,3,224,224`` or ``--seq-len``); a fixed-batch model asked for another batch
size gets an error instead of a silently different measurement.

One configuration that cannot run never loses the rest of a sweep: :func:`plan` sets aside
configurations that cannot be built (a ``--seq-len`` above the model's maximum, a batch size a
fixed-batch graph cannot take) and :func:`run_sweep` those whose session creation or first run
fails; each becomes a :class:`Skipped` notice and the others are measured. Only when nothing at
all can be measured is there an error (:func:`nothing_measured`).
"""
from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from edgecv.errors import EdgecvError, InputError, ModelError, short_message
from edgecv.runtimes.inputs import InputInfo
from edgecv.runtimes.profiling.timing import (
    ColdStart,
    LatencyStats,
    first_run_ms,
    measure,
)

_QUANT_OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv", "QLinearMatMul",
              "MatMulInteger", "ConvInteger", "DynamicQuantizeMatMul", "MatMulIntegerToFloat"}


@dataclass
class ModelInfo:
    """What the sweep needs to know about one ``.onnx`` file."""

    path: Path
    inputs: list[InputInfo]
    task: str | None  # "image" | "text" from the contract, else guessed from the inputs
    contract: Any = None
    quantized: bool = False  # int8 arithmetic: "% of float32 peak" would not be like for like

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def is_text(self) -> bool:
        return self.task == "text"

    @property
    def max_seq_len(self) -> int | None:
        """The longest sequence the graph takes, from the contract (None when unknown)."""
        return self.contract.max_seq_len if self.contract is not None and self.is_text else None


def inspect_model(path: str | os.PathLike[str]) -> ModelInfo:
    """Read a model's real graph inputs and contract (weights in external data are not loaded)."""
    from edgecv.contract import contract_from_model
    from edgecv.onnx_file import graph_inputs, load_onnx

    model = load_onnx(path, load_external_data=False)
    contract = contract_from_model(model, source=str(path))
    vocab = _gather_vocab(model)
    inputs = [InputInfo.from_onnx(inp, vocab_size=vocab.get(inp.name), source=str(path))
              for inp in graph_inputs(model)]
    task = contract.task if contract is not None else (
        "text" if any(np.issubdtype(i.dtype, np.integer) for i in inputs) else "image")
    quantized = any(n.op_type in _QUANT_OPS for n in model.graph.node)
    return ModelInfo(Path(path), inputs, task, contract, quantized)


def _gather_vocab(model: Any) -> dict[str, int]:
    """Embedding sizes: graph inputs used as Gather indices into an initializer table."""
    tables = {init.name: init.dims[0] for init in model.graph.initializer if init.dims}
    out: dict[str, int] = {}
    for node in model.graph.node:
        if node.op_type == "Gather" and len(node.input) > 1 and node.input[0] in tables:
            out[node.input[1]] = int(tables[node.input[0]])
    return out


def parse_shapes(values: Sequence[str]) -> dict[str, list[int]]:
    """``["input=1,3,224,224"]`` -> ``{"input": [1, 3, 224, 224]}`` with one-line errors."""
    out: dict[str, list[int]] = {}
    for value in values:
        name, sep, dims = value.partition("=")
        try:
            shape = [int(d) for d in dims.split(",")] if sep and name else []
        except ValueError:
            shape = []
        if not shape or any(d < 1 for d in shape):
            raise InputError(f"--shape {value!r}: expected NAME=D0,D1,... with positive integers, "
                             f"e.g. input=1,3,224,224")
        out[name.strip()] = shape
    return out


def synthesize_inputs(info: ModelInfo, *, batch: int, seq_len: int | None = None,
                      shapes: dict[str, list[int]] | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs for one configuration, allocated once (the timed loop reuses them).

    Floats are standard-normal (float16 if the graph wants it); integer inputs are token ids in
    ``[1, vocab)`` (never padding, so no row is fully masked).
    """
    shapes = shapes or {}
    unknown = set(shapes) - {i.name for i in info.inputs}
    if unknown:
        names = ", ".join(i.name for i in info.inputs)
        raise InputError(f"--shape {sorted(unknown)[0]}: {info.name} has no such input (inputs: {names})")
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for inp in info.inputs:
        shape = _resolve_shape(info, inp, batch=batch, seq_len=seq_len, given=shapes.get(inp.name))
        if np.issubdtype(inp.dtype, np.floating):
            feeds[inp.name] = rng.standard_normal(shape).astype(inp.dtype)
        elif inp.dtype == np.bool_:
            feeds[inp.name] = np.ones(shape, dtype=np.bool_)
        else:
            high = _vocab_size(info, inp)
            feeds[inp.name] = rng.integers(1, max(high, 2), size=shape).astype(inp.dtype)
    return feeds


def _vocab_size(info: ModelInfo, inp: InputInfo) -> int:
    tok = info.contract.tokenizer if info.contract is not None else None
    if tok and tok.get("vocab"):
        return len(tok["vocab"])
    return inp.vocab_size or 2  # unknown table size: ids 1 (<unk>) are valid for any vocabulary


def _resolve_shape(info: ModelInfo, inp: InputInfo, *, batch: int, seq_len: int | None,
                   given: list[int] | None) -> list[int]:
    dims = list(inp.shape)
    if given is not None:
        if len(given) != len(dims):
            raise InputError(f"--shape {inp.name}={','.join(map(str, given))}: {info.name} input "
                             f"{inp.name!r} has rank {len(dims)} ({_fmt_dims(dims)})")
        for i, (want, got) in enumerate(zip(dims, given)):
            if i > 0 and want is not None and want != got:
                raise InputError(f"--shape {inp.name}: dim {i} is fixed to {want} in {info.name}, got {got}")
        dims = [dims[0]] + list(given[1:])  # the batch dim always comes from --batch
    if not dims:
        return []
    if dims[0] is not None and dims[0] != batch:
        raise InputError(f"{info.name}: input {inp.name!r} has a fixed batch size of {dims[0]} "
                         f"({_fmt_dims(inp.shape)}), cannot run --batch {batch}; re-export with a "
                         f"dynamic batch axis or use --batch {dims[0]}")
    dims[0] = batch
    if info.is_text and len(dims) == 2 and dims[1] is None:
        dims[1] = seq_len or _default_seq_len(info)
        if dims[1] is None:
            raise InputError(f"{info.name}: input {inp.name!r} has a dynamic sequence length "
                             f"({_fmt_dims(inp.shape)}); pass --seq-len 64 (or --shape {inp.name}={batch},64)")
    elif info.is_text and len(dims) == 2 and seq_len is not None and dims[1] != seq_len:
        raise InputError(f"{info.name}: input {inp.name!r} has a fixed sequence length of {dims[1]}, "
                         f"cannot run --seq-len {seq_len}")
    if len(dims) == 4 and info.contract is not None and info.contract.preprocess is not None:
        spec = info.contract.preprocess
        layout = spec.input_shape(batch)
        dims = [d if d is not None else int(layout[i]) for i, d in enumerate(dims)]
    if any(d is None for d in dims):
        raise InputError(f"{info.name}: input {inp.name!r} has dynamic dims ({_fmt_dims(inp.shape)}) "
                         f"that cannot be inferred; pass --shape {inp.name}={_example(dims)} "
                         f"(with the model's real sizes)")
    return [int(d) for d in dims]


def _default_seq_len(info: ModelInfo) -> int | None:
    tok = info.contract.tokenizer if info.contract is not None else None
    return int(tok["max_len"]) if tok and tok.get("max_len") else None


def _fmt_dims(dims: Sequence[int | None]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"


def _example(dims: Sequence[int | None]) -> str:
    if len(dims) == 4:
        return ",".join(str(d) if d is not None else ("3" if i == 1 else "224") for i, d in enumerate(dims))
    return ",".join(str(d) if d is not None else "64" for d in dims)


@dataclass
class Config:
    """One point of the sweep."""

    model: ModelInfo
    provider: str
    batch: int
    threads: int | None
    seq_len: int | None = None

    @property
    def label(self) -> str:
        """How notices name this configuration: ``m.onnx cpu batch 1 threads 2 seq-len 64``."""
        return (f"{self.model.name} {self.provider} batch {self.batch} threads {self.threads or 'default'}"
                + (f" seq-len {self.seq_len}" if self.seq_len else ""))


@dataclass
class Skipped:
    """A configuration that could not be measured, and the one-line error that says why."""

    config: Config
    error: EdgecvError

    @property
    def reason(self) -> str:
        text = short_message(self.error)
        for prefix in (f"{self.config.model.path}: ", f"{self.config.model.name}: "):
            if text.startswith(prefix):  # the label already names the model
                return text[len(prefix):]
        return text

    @property
    def notice(self) -> str:
        return f"skipped: {self.config.label}: {self.reason}"


def check_config(cfg: Config, *, shapes: dict[str, list[int]] | None = None) -> dict[str, np.ndarray]:
    """The inputs of one configuration, or a one-line error saying why it cannot be built
    (cheap: no session is created, so a whole sweep is checked before anything is timed)."""
    feeds = synthesize_inputs(cfg.model, batch=cfg.batch, seq_len=cfg.seq_len, shapes=shapes)
    limit, seq = cfg.model.max_seq_len, seq_of(cfg.model, feeds)
    if limit is not None and seq is not None and seq > limit:
        raise InputError(f"{cfg.model.name}: sequence length {seq} is above the model's maximum of {limit} "
                         f"tokens (edgecv.max_seq_len); use --seq-len {limit} or less")
    return feeds


def plan(configs: Sequence[Config], *, shapes: dict[str, list[int]] | None = None
         ) -> tuple[list[Config], list[Skipped]]:
    """Split ``configs`` into those that can be built and those skipped (with the reason)."""
    kept: list[Config] = []
    skipped: list[Skipped] = []
    for cfg in configs:
        try:
            check_config(cfg, shapes=shapes)
        except EdgecvError as exc:
            skipped.append(Skipped(cfg, exc))
        else:
            kept.append(cfg)
    return kept, skipped


def nothing_measured(skipped: Sequence[Skipped]) -> EdgecvError:
    """The one error for a sweep in which no configuration ran: the reason itself when there is
    one (or all share it), else how many were skipped and the first reason."""
    if not skipped:
        return InputError("nothing to profile: expected at least one model and configuration")
    if len({s.reason for s in skipped}) == 1:
        return skipped[0].error
    return ModelError(f"no configuration could be measured ({len(skipped)} skipped); first: "
                      f"{skipped[0].config.label}: {skipped[0].reason}")


def expand(models: Sequence[ModelInfo], *, providers: Sequence[str], batches: Sequence[int],
           threads: Sequence[int | None], seq_lens: Sequence[int | None] = (None,)) -> list[Config]:
    """Cartesian product; sequence lengths only multiply text models."""
    out = []
    for model in models:
        lens = list(seq_lens) if model.is_text else [None]
        for prov, b, t, s in itertools.product(providers, batches, threads, lens):
            out.append(Config(model, prov, int(b), t, s))
    return out


@dataclass
class ProfileResult:
    """One measured configuration; ``to_dict`` is the ``--json`` record."""

    model: str
    runtime: str  # "onnxruntime" | "torch" | "opencv"
    provider: str
    batch: int
    threads: int | None
    seq_len: int | None
    stats: LatencyStats
    cold: ColdStart | None = None
    providers: list[str] = field(default_factory=list)
    path: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # gflops, pct_peak, ratios, notes

    def to_dict(self, *, samples: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.model, "runtime": self.runtime, "provider": self.provider,
                               "providers": self.providers, "batch": self.batch,
                               "threads": self.threads, "seq_len": self.seq_len}
        out.update(self.stats.to_dict(samples=samples))
        if self.cold is not None:
            out["create_ms"], out["first_run_ms"] = self.cold.create_ms, self.cold.first_run_ms
        out.update(self.extra)
        out["path"] = self.path
        return out


def profile_config(cfg: Config, *, warmup: int, runs: int | None, duration_s: float | None,
                   shapes: dict[str, list[int]] | None = None, verbose: bool = False,
                   notices: list[str] | None = None, spinning: bool = True,
                   engine_options: Any = None) -> ProfileResult:
    """Fresh engine per configuration, so each one's cold start is honest. ``engine_options``
    (an ``EngineOptions``) carries the backend options; provider and threads come from ``cfg``."""
    from dataclasses import replace

    from edgecv.runtimes.engines.base import EngineOptions, open_engine

    feeds = synthesize_inputs(cfg.model, batch=cfg.batch, seq_len=cfg.seq_len, shapes=shapes)
    base = engine_options or EngineOptions(verbose=verbose, spinning=spinning)
    engine = open_engine(cfg.model.path, replace(base, provider=cfg.provider, threads=cfg.threads))
    if notices is not None:
        notices.extend(n for n in engine.notices if n not in notices)
    fn = engine.runner(feeds)
    cold = ColdStart(engine.create_ms, _first_run(engine.runner(feeds, quiet=not verbose), cfg, backend=engine.backend))
    stats = measure(fn, warmup=warmup, runs=runs, duration_s=duration_s, items_per_run=cfg.batch)
    seq = seq_of(cfg.model, feeds)
    extra: dict[str, Any] = {"spinning": spinning, "precision": engine.precision, "threads_used": engine.threads}
    # engines with device-resident inputs (CUDA/TensorRT I/O binding) time the host-to-device copy
    # apart from the compute on the same bound buffers; p50 above stays the whole call (copy in,
    # compute, copy out), which is what an application pays. CPU engines have none of this.
    pair = engine.device_runners(feeds)
    if pair is not None:
        n = min(runs or 100, 100)
        extra["h2d_ms"] = measure(pair[0], warmup=3, runs=n).p50_ms
        extra["compute_ms"] = measure(pair[1], warmup=3, runs=n).p50_ms
    report = engine.report()  # what the GPU options did: cache hit/build, cuDNN search, binding
    extra.update({k: report[k] for k in ("io_binding", "cudnn_conv_algo_search", "tensorrt_cache",
                                         "provider_options") if k in report})
    return ProfileResult(cfg.model.name, engine.backend, engine.device, cfg.batch, cfg.threads, seq,
                         stats, cold, list(engine.providers), str(cfg.model.path), extra=extra)


def _first_run(fn: Callable[[], Any], cfg: Config, *, backend: str = "onnxruntime") -> float:
    try:
        return first_run_ms(fn)
    except Exception as exc:  # the backend's own exception types: shape/dtype mismatch and the like
        name = {"onnxruntime": "ONNX Runtime", "openvino": "OpenVINO"}.get(backend, backend)
        raise ModelError(f"{cfg.model.name}: {name} cannot run batch {cfg.batch}"
                         f"{f' seq-len {cfg.seq_len}' if cfg.seq_len else ''} ({ort_reason(exc)})") from None


def ort_reason(exc: BaseException) -> str:
    """The useful end of an ONNX Runtime failure: "Add node '/Add': ... 64 by 256" instead of
    200 characters of source paths and C++ signatures that cut the actual reason off."""
    text = " ".join(str(exc).split())
    node = re.search(r"running (\w+) node\. Name:'([^']*)'", text)
    if node is None or "Status Message:" not in text:
        return short_message(text)
    tail = text.rsplit("Status Message:", 1)[1].strip()
    tail = re.sub(r"^\S+:\d+ .*? was false\.\s*", "", tail)  # "file.h:583 void f(...) cond was false."
    name = f" '{node.group(2)}'" if node.group(2) else ""
    return short_message(f"{node.group(1)} node{name}: {tail}")


def seq_of(info: ModelInfo, feeds: dict[str, np.ndarray]) -> int | None:
    if not info.is_text:
        return None
    ints = [v for v in feeds.values() if v.ndim == 2 and np.issubdtype(v.dtype, np.integer)]
    return int(ints[0].shape[1]) if ints else None


def run_sweep(configs: Sequence[Config], *, warmup: int, runs: int | None, duration_s: float | None,
              shapes: dict[str, list[int]] | None = None, verbose: bool = False,
              notices: list[str] | None = None, spinning: bool = True,
              progress: Callable[[Config], None] | None = None, engine_options: Any = None
              ) -> tuple[list[tuple[Config, ProfileResult]], list[Skipped]]:
    """Profile every configuration in order (models stay grouped for side-by-side ratios);
    one whose session creation or first run fails is skipped with its reason, never fatal."""
    measured: list[tuple[Config, ProfileResult]] = []
    skipped: list[Skipped] = []
    for cfg in configs:
        if progress is not None:
            progress(cfg)
        try:
            result = profile_config(cfg, warmup=warmup, runs=runs, duration_s=duration_s, shapes=shapes,
                                    verbose=verbose, notices=notices, spinning=spinning,
                                    engine_options=engine_options)
        except EdgecvError as exc:
            skipped.append(Skipped(cfg, exc))
        else:
            measured.append((cfg, result))
    return measured, skipped
