"""The ONNX Runtime engine: :class:`~edgecv.runtimes.engine.Engine` over an ``InferenceSession``
created by :func:`edgecv.runtimes.session.create_session` (honest provider selection)."""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from edgecv.runtimes.engine import Engine, EngineOptions, OutputInfo
from edgecv.runtimes.inputs import InputInfo
from edgecv.runtimes.session import SessionInfo, create_session


class OrtEngine(Engine):
    """An ONNX Runtime session plus what it really got."""

    backend = "onnxruntime"

    def __init__(self, path: Path, info: SessionInfo) -> None:
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

    @functools.cached_property
    def precision(self) -> str:  # type: ignore[override]
        """ONNX Runtime runs the arithmetic the file holds (read once, on first use)."""
        from edgecv.graph.precision import model_precision
        from edgecv.onnx_file import load_onnx

        return model_precision(load_onnx(self.path, load_external_data=False))

    def run(self, names: Sequence[str] | None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(None if names is None else list(names), feeds)

    def runner(self, feeds: dict[str, np.ndarray], *, quiet: bool = False) -> Callable[[], Any]:
        # one C-level call into session.run per sample: nothing of ours inside the timed region
        if not quiet:
            return functools.partial(self.session.run, None, feeds)
        import onnxruntime as ort

        options = ort.RunOptions()
        options.log_severity_level = 4  # FATAL only: a failing run's C++ log line is not repeated
        return functools.partial(self.session.run, None, feeds, options)


def open_ort_engine(path: Path, opts: EngineOptions) -> OrtEngine:
    """Create the session on the requested provider (see ``create_session``)."""
    info = create_session(path, provider=opts.provider.lower(), threads=opts.threads, verbose=opts.verbose,
                          allow_fallback=opts.allow_fallback, spinning=opts.spinning)
    return OrtEngine(path, info)
