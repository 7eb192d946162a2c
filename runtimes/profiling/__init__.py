"""``edgecv profile``: the timing harness, sweeps, baselines, per-operator traces, roofline and
reports. Torch-free like the rest of ``edgecv.runtimes``: a PyTorch baseline is handed in by the
command (see :class:`edgecv.runtimes.profiling.baselines.Baseline`)."""
from __future__ import annotations

from edgecv.runtimes.profiling.job import (
    ProfileOptions,
    ProfileReport,
    check_p99,
    run_profile,
)

__all__ = ["ProfileOptions", "ProfileReport", "check_p99", "run_profile"]
