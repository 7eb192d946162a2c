"""Inference engines (ONNX Runtime, ...), the classifier, sources, the stream loop and the profiler;
installed as ``edgecv.runtimes``.

Never imports torch: an edge device installs edgecv without PyTorch.
"""
from __future__ import annotations

from edgecv.runtimes.classifier import (
    Classifier,
    Prediction,
    Timings,
    TopK,
    load,
)
from edgecv.runtimes.engines.base import Engine, EngineOptions, open_engine
from edgecv.runtimes.engines.session import PROVIDER_CHOICES, SessionInfo, create_session
from edgecv.runtimes.foreign import PreprocessOverrides
from edgecv.runtimes.inputs import InputInfo, check_input
from edgecv.runtimes.labels import imagenet_labels, load_labels
from edgecv.runtimes.streaming.multistream import MultiStreamOptions, MultiStreamReport, run_multistream
from edgecv.runtimes.streaming.sources import FakeCapture, LiveSource, StreamLost, open_source, open_stream
from edgecv.runtimes.streaming.stream import FrameResult, StreamOptions, StreamReport, run_pipeline, run_stream

__all__ = [
    "PROVIDER_CHOICES", "SessionInfo", "create_session", "Engine", "EngineOptions", "open_engine",
    "Classifier", "InputInfo", "Prediction", "Timings", "TopK", "check_input", "load",
    "PreprocessOverrides", "imagenet_labels", "load_labels",
    "FakeCapture", "LiveSource", "StreamLost", "open_source", "open_stream", "FrameResult", "StreamOptions",
    "StreamReport", "run_pipeline", "run_stream", "MultiStreamOptions", "MultiStreamReport", "run_multistream",
]
