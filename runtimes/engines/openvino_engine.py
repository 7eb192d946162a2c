"""The OpenVINO engine: :class:`~edgecv.runtimes.engines.base.Engine` over ``openvino.Core().compile_model``.

It reads the very ``.onnx`` file ONNX Runtime runs (no conversion step, no second artefact), so
``--provider openvino`` is a drop-in for ``infer``, ``profile`` and ``edgecv.load``. Three
things make it honest rather than merely fast:

* precision: on CPUs with bf16 units (AVX-512 BF16, AMX) OpenVINO runs bf16 unless told
  otherwise. What ran is read back from the compiled model (``INFERENCE_PRECISION_HINT``), never
  assumed; ``EngineOptions.precision`` forces f32/bf16/f16, and a forced value the device cannot
  honour (f16 on a CPU without fp16 units) is a notice naming what really runs;
* devices: an absent device (``openvino:GPU`` on a box without one) is an error naming what
  OpenVINO sees, unless fallback is allowed -- then CPU, with a notice (the rules of CUDA);
* threads: ``INFERENCE_NUM_THREADS`` on the CPU device, read back from the compiled model.

The ONNX ``metadata_props`` (the edgecv contract) and the real graph inputs are read with onnx
(weights not loaded), so the contract and input checks are the same as on ONNX Runtime.
"""
from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from edgecv.errors import (
    InputError,
    MissingDependencyError,
    ModelError,
    ProviderError,
    short_message,
)
from edgecv.runtimes.engines.base import Engine, EngineOptions, OutputInfo
from edgecv.runtimes.inputs import InputInfo

INSTALL = "pip install 'edgecv[openvino]'"
PRECISIONS = ("auto", "f32", "bf16", "f16")  # EngineOptions.precision -> INFERENCE_PRECISION_HINT
REPORTED = {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}  # ov.Type name -> what reports say
VIRTUAL_DEVICES = ("AUTO", "MULTI", "HETERO", "BATCH")  # pick real devices themselves
STATIC_SHAPE_DEVICES = ("NPU",)  # compile only static shapes: dynamic dims are reshaped first


def import_openvino() -> Any:
    """The ``openvino`` module, or one line saying what to install (it is an optional extra)."""
    try:
        import openvino
    except ImportError:
        raise MissingDependencyError(f"openvino is not installed; --provider openvino needs it: {INSTALL}") from None
    return openvino


@functools.lru_cache(maxsize=1)
def core() -> Any:
    """One ``openvino.Core`` per process: it loads device plugins once and caches their state."""
    return import_openvino().Core()


def requested_device(provider: str) -> str:
    """``"openvino"`` -> ``"CPU"`` (predictable; ``openvino:AUTO`` lets OpenVINO choose),
    ``"openvino:GPU"`` -> ``"GPU"``."""
    _, _, device = provider.partition(":")
    return device.strip().upper() or "CPU"


def resolve_device(device: str, available: Sequence[str], *, allow_fallback: bool,
                   source: str) -> tuple[str, list[str]]:
    """(the device to compile for, notices). ``GPU`` matches ``GPU``/``GPU.0``/...; a virtual
    device (AUTO, MULTI, HETERO) is passed through and reports what it picked after compiling."""
    family = device.split(":", 1)[0]
    if family in VIRTUAL_DEVICES or any(d == device or d.split(".")[0] == device for d in available):
        return device, []
    seen = ", ".join(available) or "no devices"
    if not allow_fallback or "CPU" not in available:
        raise ProviderError(f"{source}: OpenVINO device {device!r} is not available here (OpenVINO sees: {seen}); "
                            f"use --provider openvino:CPU, or --allow-fallback to run on CPU")
    return "CPU", [f"notice: OpenVINO {device} is not available here (OpenVINO sees: {seen}); "
                   f"running on OpenVINO CPU"]


def compile_config(device: str, opts: EngineOptions, *, devices: Sequence[str] = ("CPU",)) -> dict[str, Any]:
    """The ``compile_model`` properties: latency hint (one stream: a frame at a time), explicit
    CPU threads, forced precision -- through ``DEVICE_PROPERTIES`` for a virtual device (AUTO
    hands them to whichever of ``devices`` it picks) -- then ``--provider-option`` values as given."""
    if opts.precision not in PRECISIONS:
        raise InputError(f"precision {opts.precision!r}: expected one of {', '.join(PRECISIONS)}")
    if opts.threads is not None and opts.threads < 1:
        raise InputError(f"threads={opts.threads}: expected a positive integer")
    own = {} if opts.precision == "auto" else {"INFERENCE_PRECISION_HINT": opts.precision}
    cpu = {**own, **({} if opts.threads is None else {"INFERENCE_NUM_THREADS": int(opts.threads)})}
    config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
    if device.split(":")[0] in VIRTUAL_DEVICES:
        per_device = {d: cpu if d.startswith("CPU") else own for d in devices}
        if any(per_device.values()):
            config["DEVICE_PROPERTIES"] = {d: props for d, props in per_device.items() if props}
    else:
        config.update(cpu if device.startswith("CPU") else own)
    config.update(opts.provider_options)
    return config


class OpenVinoEngine(Engine):
    """A compiled OpenVINO model plus what really runs it."""

    backend = "openvino"

    def __init__(self, path: Path, opts: EngineOptions) -> None:
        from edgecv.graph.precision import is_quantized
        from edgecv.onnx_file import graph_inputs, load_onnx

        ov = import_openvino()
        self.path = path
        self.requested = opts.provider
        name = path.name
        proto = load_onnx(path, load_external_data=False)  # file problems in the same words as ORT's
        self.metadata = {p.key: p.value for p in proto.metadata_props}
        self.inputs = [InputInfo.from_onnx(i, source=name) for i in graph_inputs(proto)]
        self.outputs = [OutputInfo(o.name, _onnx_dims(o)) for o in proto.graph.output]
        self._quantized = is_quantized(proto)
        del proto
        start = time.perf_counter_ns()
        device, self.notices = resolve_device(requested_device(opts.provider), core().available_devices,
                                              allow_fallback=opts.allow_fallback, source=name)
        model = _read(path)
        if device.split(".")[0] in STATIC_SHAPE_DEVICES:
            self.inputs = _make_static(ov, model, self.inputs, opts, device=device, source=name)
        self.compiled, device = self._compile(model, device, opts)
        self.create_ms = (time.perf_counter_ns() - start) / 1e6
        self._describe_devices(device, opts)
        self._request = self.compiled.create_infer_request()
        self._index = _output_index(self.compiled, self.outputs)

    def _compile(self, model: Any, device: str, opts: EngineOptions) -> tuple[Any, str]:
        """Compile for ``device``; a device that is present but fails to compile falls back to
        CPU only when allowed (with a notice naming the reason), as CUDA does."""
        try:
            config = compile_config(device, opts, devices=core().available_devices)
            return core().compile_model(model, device, config), device
        except RuntimeError as exc:
            reason = short_message(_last_line(exc))
            if device == "CPU" or not opts.allow_fallback:
                cls = ModelError if device == "CPU" else ProviderError
                raise cls(f"{self.path.name}: OpenVINO cannot compile the model for {device} ({reason})") from None
        self.notices.append(f"notice: OpenVINO {device} could not compile the model ({reason}); running on "
                            f"OpenVINO CPU")
        return core().compile_model(model, "CPU", compile_config("CPU", opts)), "CPU"

    def _describe_devices(self, device: str, opts: EngineOptions) -> None:
        """device / providers / precision / threads as the compiled model reports them."""
        ran = [d.strip("()") for d in _property(self.compiled, "EXECUTION_DEVICES") or [device]]
        self.device = f"openvino:{ran[0]}"
        self.providers = [f"OpenVINO {d} ({_full_name(d)})" for d in ran]
        hint = _ran_property(self.compiled, ran[0], "INFERENCE_PRECISION_HINT")
        name = hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint or "")
        floats = REPORTED.get(name, name or "unknown")
        self.precision = f"int8+{floats}" if self._quantized else floats
        if opts.precision != "auto" and floats != REPORTED[opts.precision]:
            self.notices.append(f"notice: OpenVINO {ran[0]} runs {floats}, not the {REPORTED[opts.precision]} "
                                f"asked for (the device has no {REPORTED[opts.precision]} arithmetic)")
        threads = _ran_property(self.compiled, ran[0], "INFERENCE_NUM_THREADS")
        self.threads = int(threads) if threads else None  # a GPU/NPU has no CPU threads to report
        if opts.threads is not None and not ran[0].startswith("CPU"):
            self.notices.append(f"notice: --threads sets OpenVINO's CPU threads; {ran[0]} does not use it")

    def run(self, names: Sequence[str] | None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        wanted = [o.name for o in self.outputs] if names is None else list(names)
        missing = [n for n in wanted if n not in self._index]
        if missing:
            raise InputError(f"{self.path.name}: no output named {missing[0]!r} (outputs: "
                             f"{', '.join(o.name for o in self.outputs)})")
        try:
            results = self._request.infer(feeds, share_inputs=True)  # outputs copied: safe to keep
        except RuntimeError as exc:
            raise ModelError(f"{self.path.name}: OpenVINO cannot run the model "
                             f"({short_message(_last_line(exc))})") from None
        return [results[self._index[n]] for n in wanted]

    def runner(self, feeds: dict[str, np.ndarray], *, quiet: bool = False) -> Callable[[], Any]:
        """Its own infer request with ``feeds`` bound once as zero-copy tensors; each call is one
        C-level ``infer`` returning views of the request's output buffers (nothing allocated or
        copied per call; the GIL is released while it runs). ``quiet``: OpenVINO logs nothing."""
        from openvino import Tensor
        from openvino._pyopenvino import InferRequest

        request = self.compiled.create_infer_request()
        for name, value in feeds.items():
            request.set_tensor(name, Tensor(np.ascontiguousarray(value), shared_memory=True))
        return functools.partial(InferRequest.infer, request, {}, True, True)


def open_openvino_engine(path: Path, opts: EngineOptions) -> OpenVinoEngine:
    """Open ``path`` on the OpenVINO device ``opts.provider`` names (``openvino[:DEVICE]``)."""
    from edgecv.onnx_file import check_model_path

    import_openvino()  # the missing extra first: one line, before anything else is looked at
    return OpenVinoEngine(check_model_path(path), opts)


def _read(path: Path) -> Any:
    try:
        return core().read_model(str(path))
    except RuntimeError as exc:
        raise ModelError(f"{path}: OpenVINO cannot read the model ({short_message(_last_line(exc))})") from None


def _make_static(ov: Any, model: Any, inputs: list[InputInfo], opts: EngineOptions, *, device: str,
                 source: str) -> list[InputInfo]:
    """Reshape dynamic batch (and a text model's sequence length) to the sizes the command will
    use, for devices that compile static shapes only; the engine's inputs then say so."""
    out: list[InputInfo] = []
    shapes: dict[str, list[int]] = {}
    for inp in inputs:
        dims = list(inp.shape)
        for axis, dim in enumerate(dims):
            if dim is not None:
                continue
            if axis == 0:
                dims[0] = opts.batch_sizes[0] if len(opts.batch_sizes) == 1 else 1
            elif axis == 1 and len(dims) == 2 and opts.seq_lens:
                dims[1] = opts.seq_lens[0]
            else:
                raise ModelError(f"{source}: OpenVINO {device} needs static shapes, but input {inp.name!r} "
                                 f"{inp.describe()} has a dynamic dim {axis}; re-export with fixed sizes")
        shapes[inp.name] = dims
        out.append(InputInfo(inp.name, tuple(dims), inp.dtype, tuple(str(d) for d in dims), inp.vocab_size))
    model.reshape({name: ov.PartialShape(dims) for name, dims in shapes.items()})
    return out


def _onnx_dims(value_info: Any) -> tuple[Any, ...] | None:
    """ONNX output dims as ONNX Runtime reports them: ints, symbolic names, None when unknown."""
    tensor = value_info.type.tensor_type
    if not tensor.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tensor.shape.dim)


def _output_index(compiled: Any, outputs: list[OutputInfo]) -> dict[str, int]:
    """ONNX output name -> compiled output index (OpenVINO keeps ONNX tensor names; order as
    a fallback)."""
    index: dict[str, int] = {}
    for i, port in enumerate(compiled.outputs):
        for name in port.get_names():
            index.setdefault(name, i)
    for i, out in enumerate(outputs):
        index.setdefault(out.name, i)
    return index


def _property(compiled: Any, key: str) -> Any:
    try:
        return compiled.get_property(key)
    except RuntimeError:  # AUTO / MULTI / some GPUs do not expose every property
        return None


def _ran_property(compiled: Any, device: str, key: str) -> Any:
    """``key`` of the compiled model, or -- for AUTO/MULTI, which do not expose it themselves --
    of the device it picked (``DEVICE_PROPERTIES``)."""
    value = _property(compiled, key)
    if value is None:
        value = (_property(compiled, "DEVICE_PROPERTIES") or {}).get(device, {}).get(key)
    return value


def _device_property(device: str, key: str) -> Any:
    try:
        return core().get_property(device, key)
    except RuntimeError:
        return None


def _full_name(device: str) -> str:
    return str(_device_property(device, "FULL_DEVICE_NAME") or device)


def _last_line(exc: BaseException) -> str:
    """OpenVINO's messages start with a stack of "Exception from src/...:123:" lines; the reason
    is the last non-empty line."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip() and not ln.strip().startswith("Exception from")]
    return lines[-1] if lines else str(exc)
