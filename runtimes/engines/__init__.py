"""Inference engines behind one interface (:class:`Engine`): ONNX Runtime (CPU, CUDA, TensorRT,
with honest provider selection, TensorRT caches and I/O binding) and OpenVINO. Everything above
this package uses only the interface; :func:`open_engine` picks the backend."""
from __future__ import annotations

from edgecv.runtimes.engines.base import Engine, EngineOptions, OutputInfo, normalize_provider, open_engine

__all__ = ["Engine", "EngineOptions", "OutputInfo", "normalize_provider", "open_engine"]
