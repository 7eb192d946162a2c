"""The ONNX Runtime engine: :class:`~edgecv.runtimes.engines.base.Engine` over an ``InferenceSession``
created by :func:`edgecv.runtimes.engines.session.create_session` (honest provider selection).

On CUDA and TensorRT the engine runs through ONNX Runtime's I/O binding (:class:`DeviceIO`):
``session.run`` with numpy feeds allocates device memory for every input and output and copies
every output back on each call; with binding, inputs are copied once per call into device buffers
that persist, outputs stay on the GPU until asked for, and only the requested ones come back.
The choice is made once, when the engine is opened: on CPU ``run`` and ``runner`` are exactly the
plain ``session.run`` they always were.
"""
from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from edgecv.runtimes.engines.base import Engine, EngineOptions, OutputInfo
from edgecv.runtimes.engines.provider_options import device_summary
from edgecv.runtimes.engines.session import SessionInfo, create_session
from edgecv.runtimes.inputs import InputInfo

GPU_DEVICES = ("cuda", "tensorrt")
# report fields a GPU session adds to Engine.report()
_DETAIL_KEYS = ("device_id", "gpu", "provider_options", "cudnn_conv_algo_search", "tensorrt_cache",
                "tensorrt_build")


@dataclass
class _Slot:
    """Device buffers for one set of input shapes (outputs sized by the first run at them)."""

    inputs: dict[str, Any]  # name -> OrtValue on the device
    outputs: dict[str, Any] | None = None


class DeviceIO:
    """Device-resident inputs and outputs for one session (ONNX Runtime I/O binding).

    One :class:`_Slot` of buffers per input-shape set (a few kept: a video's last, shorter batch
    must not evict the full one), so steady-state calls allocate nothing on the device and bind
    the same addresses -- what CUDA graph replay requires. Output shapes are taken to follow input
    shapes (true for classifiers and feature maps). Calls are serialised: the buffers are shared.
    """

    MAX_SLOTS = 8

    def __init__(self, session: Any, *, device_type: str = "cuda", device_id: int = 0) -> None:
        import onnxruntime as ort

        self._ortvalue = ort.OrtValue
        self.session = session
        self.device = (device_type, int(device_id))
        self.binding = session.io_binding()
        self.output_names = [o.name for o in session.get_outputs()]
        self._slots: dict[tuple[Any, ...], _Slot] = {}
        self._current: tuple[Any, ...] | None = None
        self._lock = threading.Lock()

    def run(self, names: Sequence[str] | None, feeds: dict[str, np.ndarray], options: Any = None) -> list[np.ndarray]:
        """Copy ``feeds`` in, run, and copy back only the outputs ``names`` (all when None)."""
        with self._lock:
            self.copy_in(feeds)
            self.compute(options)
            return self.read(names)

    def copy_in(self, feeds: dict[str, np.ndarray]) -> None:
        """Host -> device copy into this shape set's buffers (allocated on its first use only)."""
        key = tuple((name, arr.shape, arr.dtype.str) for name, arr in feeds.items())
        slot = self._slots.get(key)
        if slot is None:
            slot = self._new_slot(key, feeds)
        if key != self._current:
            self._bind(slot)
            self._current = key
        for name, arr in feeds.items():
            slot.inputs[name].update_inplace(arr if arr.flags.c_contiguous else np.ascontiguousarray(arr))

    def compute(self, options: Any = None) -> None:
        """Run on the bound buffers (ONNX Runtime synchronises the GPU before returning)."""
        slot = self._slots[self._current]  # type: ignore[index]
        self.session.run_with_iobinding(self.binding, options)
        if slot.outputs is None:  # first run at these shapes: keep ONNX Runtime's output buffers
            slot.outputs = dict(zip(self.output_names, self.binding.get_outputs()))
            for name, value in slot.outputs.items():
                self.binding.bind_ortvalue_output(name, value)

    def read(self, names: Sequence[str] | None) -> list[np.ndarray]:
        """Device -> host copy of the requested outputs of the last run."""
        outputs = self._slots[self._current].outputs or {}  # type: ignore[index]
        values = [outputs[n] for n in (self.output_names if names is None else names)]
        # numpy() of a device value is a fresh host copy; of a CPU value, a view of the reused buffer
        return [v.numpy().copy() if v.device_name() == "cpu" else v.numpy() for v in values]

    def _new_slot(self, key: tuple[Any, ...], feeds: dict[str, np.ndarray]) -> _Slot:
        if len(self._slots) >= self.MAX_SLOTS:
            self._slots.pop(next(iter(self._slots)))  # the oldest shape set
        make = self._ortvalue.ortvalue_from_shape_and_type
        slot = _Slot({name: make(list(arr.shape), arr.dtype.type, *self.device) for name, arr in feeds.items()})
        self._slots[key] = slot
        return slot

    def _bind(self, slot: _Slot) -> None:
        for name, value in slot.inputs.items():
            self.binding.bind_ortvalue_input(name, value)
        for name in self.output_names:
            if slot.outputs is None:
                self.binding.bind_output(name, *self.device)  # ONNX Runtime allocates on the first run
            else:
                self.binding.bind_ortvalue_output(name, slot.outputs[name])


class OrtEngine(Engine):
    """An ONNX Runtime session plus what it really got."""

    backend = "onnxruntime"

    def __init__(self, path: Path, info: SessionInfo, *, io_binding: bool = False) -> None:
        self.path = path
        self.info = info
        self.session = info.session
        self.inputs = [InputInfo.from_ort(a) for a in self.session.get_inputs()]
        self.outputs = [OutputInfo(o.name, tuple(o.shape) if o.shape is not None else None)
                        for o in self.session.get_outputs()]
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self.requested = info.requested
        self.device = info.provider
        self.providers = list(info.providers)
        self.threads = info.threads
        self.create_ms = info.create_ms
        self.notices = list(info.notices)
        self.details = dict(info.details)
        self.device_io: DeviceIO | None = None
        if self.device in GPU_DEVICES:
            if io_binding:
                self.device_io = DeviceIO(self.session, device_id=int(self.details.get("device_id", 0)))
                self.run = self.device_io.run  # type: ignore[method-assign]  # chosen once, not per call
            self.notices.append(device_summary(self.details, device=self.device, io_binding=io_binding))

    @functools.cached_property
    def precision(self) -> str:  # type: ignore[override]
        """ONNX Runtime runs the arithmetic the file holds (read once, on first use); a TensorRT
        engine built with fp16 kernels runs fp16 whatever the file holds."""
        if self.details.get("tensorrt_build", {}).get("fp16"):
            return "fp16"
        from edgecv.graph.precision import model_precision
        from edgecv.onnx_file import load_onnx

        return model_precision(load_onnx(self.path, load_external_data=False))

    def run(self, names: Sequence[str] | None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(None if names is None else list(names), feeds)

    def runner(self, feeds: dict[str, np.ndarray], *, quiet: bool = False) -> Callable[[], Any]:
        # one C-level call into session.run per sample: nothing of ours inside the timed region
        options = None
        if quiet:
            import onnxruntime as ort

            options = ort.RunOptions()
            options.log_severity_level = 4  # FATAL only: a failing run's C++ log line is not repeated
        if self.device_io is not None:  # copy in, run, copy every output back: what an app pays
            return functools.partial(self.device_io.run, None, feeds, options)
        if options is None:
            return functools.partial(self.session.run, None, feeds)
        return functools.partial(self.session.run, None, feeds, options)

    def device_runners(self, feeds: dict[str, np.ndarray]) -> tuple[Callable[[], Any], Callable[[], Any]] | None:
        """(host-to-device copy, compute on device-resident inputs) for ``feeds``, so a profile can
        time the copy apart from the compute; None when inputs do not live on a device (CPU)."""
        if self.device_io is None:
            return None
        self.device_io.run(None, feeds)  # allocates and binds every buffer for these shapes
        return functools.partial(self.device_io.copy_in, feeds), self.device_io.compute

    def report(self) -> dict[str, Any]:
        """What really ran, plus on a GPU: the device, the provider options passed, cuDNN's search
        mode, the TensorRT cache outcome and whether I/O binding was used."""
        out = super().report()
        out.update({k: self.details[k] for k in _DETAIL_KEYS if k in self.details})
        if self.device in GPU_DEVICES:
            out["io_binding"] = self.device_io is not None
        return out


def open_ort_engine(path: Path, opts: EngineOptions) -> OrtEngine:
    """Create the session on the requested provider (see ``create_session``)."""
    info = create_session(path, provider=opts.provider.lower(), threads=opts.threads, verbose=opts.verbose,
                          allow_fallback=opts.allow_fallback, spinning=opts.spinning, engine=opts)
    return OrtEngine(path, info, io_binding=opts.io_binding)
