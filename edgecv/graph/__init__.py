"""Torch-free ONNX graph analysis: per-node shapes, parameters, MACs and feature maps.

Sits below both ``edgecv.models`` (whose torch per-layer summary reuses these result types, so
the torch view and the ONNX view compare like for like) and ``edgecv.runtimes`` (the profiler's
roofline). Imports numpy, OpenCV, onnx and onnxruntime only.
"""
from __future__ import annotations

from edgecv.graph.stats import LayerStats, ModelStats, graph_stats

__all__ = ["LayerStats", "ModelStats", "graph_stats"]
