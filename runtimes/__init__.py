"""ONNX Runtime inference, sources, the stream loop and the profiler; installed as ``edgecv.runtimes``.

Never imports torch: an edge device installs edgecv without PyTorch.
"""
from __future__ import annotations

from edgecv.runtimes.session import PROVIDER_CHOICES, SessionInfo, create_session

__all__ = ["PROVIDER_CHOICES", "SessionInfo", "create_session"]
