"""``edgecv val``: accuracy, F1, confusion, latency and size of exported models on labelled data,
side by side, on any engine (torch-free). Public entry: :func:`evaluate`."""
from __future__ import annotations

from edgecv.runtimes.evaluation.evaluate import EvalOptions, EvalReport, ModelEval, evaluate

__all__ = ["EvalOptions", "EvalReport", "ModelEval", "evaluate"]
