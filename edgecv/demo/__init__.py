"""``edgecv demo``: the whole chain on generated data (config, steps, report, synthetic data).

Imports torch only inside the steps that train and export, so importing this package is cheap.
"""
from __future__ import annotations

from edgecv.demo.config import DemoConfig, DemoResult
from edgecv.demo.run import run_demo, stdout_to_stderr

__all__ = ["DemoConfig", "DemoResult", "run_demo", "stdout_to_stderr"]
