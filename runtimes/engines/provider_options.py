"""Execution provider options for one session: CUDA's, TensorRT's (``tensorrt.py``) and the user's
``--provider-option KEY=VALUE`` merged over them -- and what to report about them afterwards.

CUDA's defaults: the GPU from ``--device``, and cuDNN's convolution algorithm search EXHAUSTIVE
(ONNX Runtime's default too: the fastest kernels, paid for with a slow first run per input shape)
or HEURISTIC with ``--fast-start`` (a fast first run, maybe slower kernels). CUDA graphs
(``enable_cuda_graph``, TensorRT's ``trt_cuda_graph_enable``) stay off: ONNX Runtime allows them
only with fixed input shapes and every node on the GPU, and a model that breaks either rule fails
instead of running slower; pass ``--provider-option enable_cuda_graph=1`` for a fixed-shape model
(edgecv's I/O binding keeps one set of device buffers per shape, which is what graph replay needs).

The CPU path stays exactly as before: with no options to pass, nothing here reads the model or
touches ONNX Runtime, and the session is created without ``provider_options``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecv.errors import InputError
from edgecv.runtimes.engines import gpu_info
from edgecv.runtimes.engines.tensorrt import TENSORRT, TrtPlan, plan_tensorrt

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
GPU_PROVIDERS = (CUDA, TENSORRT)
# options both GPU providers understand: a TensorRT chain passes them to each
SHARED_KEYS = frozenset({"device_id", "user_compute_stream", "has_user_compute_stream"})


def cuda_options(*, device_id: int, fast_start: bool) -> dict[str, str]:
    """CUDA provider defaults (see the module docstring for why)."""
    return {"device_id": str(device_id), "cudnn_conv_algo_search": "HEURISTIC" if fast_start else "EXHAUSTIVE"}


def route_overrides(overrides: dict[str, str], chain: list[str]) -> dict[str, dict[str, str]]:
    """Which provider each ``--provider-option`` goes to: the first one asked for. In a TensorRT
    chain, ``trt_*`` keys go to TensorRT, device/stream keys to both, and the rest to CUDA (which
    runs the nodes TensorRT cannot take)."""
    out: dict[str, dict[str, str]] = {}
    for key, value in overrides.items():
        if chain[0] == TENSORRT and CUDA in chain and not key.startswith("trt_"):
            targets = [TENSORRT, CUDA] if key in SHARED_KEYS else [CUDA]
        else:
            targets = [chain[0]]
        for target in targets:
            out.setdefault(target, {})[key] = value
    return out


@dataclass
class ProviderPlan:
    """The options one session is created with, and the facts to report once it exists."""

    chain: list[str]
    options: dict[str, dict[str, str]]  # provider -> options passed to it
    given: dict[str, dict[str, str]]  # the user's --provider-option, routed
    device_id: int
    fp16_requested: bool
    trt: TrtPlan | None = None

    def provider_options(self) -> list[dict[str, str]] | None:
        """``InferenceSession(provider_options=...)``, aligned with the chain; None: pass none."""
        if not self.options:
            return None
        return [dict(self.options.get(p, {})) for p in self.chain]

    def without(self, provider: str) -> ProviderPlan:
        """The same plan for the chain without ``provider`` (TensorRT that did not load)."""
        chain = [p for p in self.chain if p != provider]
        options = {p: o for p, o in self.options.items() if p != provider}
        return ProviderPlan(chain, options, self.given, self.device_id, self.fp16_requested,
                            None if provider == TENSORRT else self.trt)

    def prepare(self) -> None:
        """Just before the session is created: TensorRT's cache check and build notice."""
        if self.trt is not None:
            self.trt.prepare()

    def outcome(self, got: list[str], create_ms: float) -> tuple[list[str], dict[str, Any]]:
        """Notices and report fields for what the session really got."""
        details: dict[str, Any] = {}
        notes: list[str] = []
        used = {p: dict(o) for p, o in self.options.items() if p in got and o}
        if used:
            details["provider_options"] = used
        first = got[0] if got else CPU
        if first in GPU_PROVIDERS:
            details["device_id"] = self.device_id
            ident = gpu_info.gpu_identity(self.device_id)
            if ident:
                details["gpu"] = ident.get("name")
            if CUDA in got and CUDA in self.options:
                details["cudnn_conv_algo_search"] = self.options[CUDA].get("cudnn_conv_algo_search")
        if self.trt is not None and first == TENSORRT:
            trt_notes, trt_details = self.trt.outcome(create_ms)
            notes += trt_notes
            details.update(trt_details)
        elif self.fp16_requested:
            notes.append(f"notice: --fp16 applies to TensorRT engines; {_short(first)} runs the model's own "
                         f"precision (export with --fp16 for an fp16 model)")
        for provider, given in self.given.items():
            unused = "" if provider in got else f" (not used: the session did not get {_short(provider)})"
            notes.append(f"notice: provider options for {provider}: "
                         + ", ".join(f"{k}={v}" for k, v in given.items()) + unused)
        return notes, details


def plan_providers(path: Path, chain: list[str], opts: Any = None) -> ProviderPlan:
    """The options for ``chain`` from an ``EngineOptions`` (None: the defaults)."""
    if opts is None:
        from edgecv.runtimes.engines.base import EngineOptions

        opts = EngineOptions()
    overrides = {str(k): str(v) for k, v in (opts.provider_options or {}).items()}
    if chain == [CPU] and not overrides:  # the CPU path: nothing to pass, nothing to read
        return ProviderPlan(chain, {}, {}, 0, bool(opts.fp16))
    given = route_overrides(overrides, chain)
    device_id = _device_id(opts.device_id, overrides)
    options: dict[str, dict[str, str]] = {}
    if CUDA in chain:
        options[CUDA] = {**cuda_options(device_id=device_id, fast_start=bool(opts.fast_start)), **given.get(CUDA, {})}
    trt = None
    if TENSORRT in chain:
        import onnxruntime as ort

        trt = plan_tensorrt(path, device_id=device_id, fp16=bool(opts.fp16), cache_dir=opts.cache_dir,
                            batch_sizes=opts.batch_sizes, seq_lens=opts.seq_lens,
                            overrides=given.get(TENSORRT, {}), ort_version=getattr(ort, "__version__", "unknown"))
        options[TENSORRT] = trt.options
    if CPU in given:
        options[CPU] = dict(given[CPU])
    return ProviderPlan(chain, options, given, device_id, bool(opts.fp16), trt)


def _device_id(flag: int | None, overrides: dict[str, str]) -> int:
    """``--provider-option device_id=N`` beats ``--device N``; default 0."""
    text = overrides.get("device_id")
    if text is None:
        return int(flag or 0)
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise InputError(f"--provider-option device_id={text}: expected a GPU index (0, 1, ...)")
    return value


def device_summary(details: dict[str, Any], *, device: str, io_binding: bool) -> str:
    """One line saying how the GPU runs: which GPU, cuDNN search mode or TensorRT build, I/O binding."""
    gpu = f"GPU {details.get('device_id', 0)}" + (f" ({details['gpu']})" if details.get("gpu") else "")
    search = details.get("cudnn_conv_algo_search")
    why = {"EXHAUSTIVE": " (fastest kernels; the first run per input shape is slow; --fast-start: HEURISTIC)",
           "HEURISTIC": " (fast first run; without --fast-start: EXHAUSTIVE)"}.get(str(search), "")
    if device == "tensorrt":
        build = details.get("tensorrt_build", {})
        ranges = ", ".join(f"{k} {lo}-{hi}" for k, (lo, _opt, hi) in build.get("ranges", {}).items())
        precision = "fp16" + (f" ({build['fp16_reason']})" if build.get("fp16_reason") else "") \
            if build.get("fp16") else "fp32"
        line = f"TensorRT on {gpu}: {precision}" + (f", profile {ranges}" if ranges else "")
        if search:
            line += f"; other nodes on CUDA, cuDNN search {search}"
    else:
        line = f"CUDA on {gpu}: cuDNN convolution search {search or 'default'}{why}"
    return line + ("; I/O binding on" if io_binding else "; I/O binding off")


def _short(provider: str) -> str:
    return {CPU: "CPU", CUDA: "CUDA", TENSORRT: "TensorRT"}.get(provider, provider)
