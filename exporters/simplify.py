"""Graph simplification with onnxsim, which never makes an export fail.

onnxsim folds constants and removes the shape arithmetic the exporter leaves behind (an LSTM or
attention graph typically loses half its nodes). It is also a known source of broken graphs: a
crash on an unusual op, or a rewrite that silently specialises a dynamic axis. So the simplified
graph is written to a candidate file and kept only if ``check`` (the parity run of
:mod:`edgecv.exporters.verify`) accepts it; otherwise the unsimplified graph stays and the
result says why.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from edgecv.errors import short_message
from edgecv.exporters.onnx_export import count_nodes, model_files, save_onnx


@dataclass
class SimplifyResult:
    """What the simplifier did: ``applied`` False means the input graph was kept."""

    applied: bool
    nodes_before: int
    nodes_after: int
    seconds: float
    path: str | None = None  # the simplified file (only when applied)
    reason: str | None = None  # why it was not applied

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _run_onnxsim(model: Any) -> Any:
    """Call onnxsim; separated so tests can simulate a simplifier that raises or breaks graphs."""
    from edgecv.errors import require

    onnxsim = require("onnxsim", "train")
    simplified, ok = onnxsim.simplify(model)
    if not ok:
        raise RuntimeError("onnxsim's own check failed")
    return simplified


def simplify(src: str | os.PathLike[str], dst: str | os.PathLike[str], *,
             check: Callable[[Path], str | None] | None = None) -> SimplifyResult:
    """Simplify ``src`` into ``dst``; ``check(dst)`` returns None if the result is acceptable,
    else the reason to reject it (``dst`` is then removed). Never raises for a simplifier failure.
    """
    import onnx

    start = time.perf_counter()
    model = onnx.load(os.fspath(src))
    before = count_nodes(model)
    try:
        simplified = _run_onnxsim(model)
        onnx.checker.check_model(simplified, full_check=False)
    except Exception as exc:  # any simplifier failure means "keep the original graph"
        return SimplifyResult(False, before, before, time.perf_counter() - start,
                              reason=f"simplifier failed: {short_message(exc)}")
    # onnxsim >= 0.5 records every rewrite in metadata_props (kilobytes of node names); the
    # report keeps the counts, the shipped file keeps only its own contract.
    keep = [(p.key, p.value) for p in simplified.metadata_props if not p.key.startswith("onnxsim.")]
    del simplified.metadata_props[:]
    for key, value in keep:
        simplified.metadata_props.add(key=key, value=value)
    out = save_onnx(simplified, dst)
    after = count_nodes(simplified)
    problem = check(out) if check is not None else None
    if problem:
        for f in model_files(out):
            f.unlink(missing_ok=True)
        return SimplifyResult(False, before, before, time.perf_counter() - start,
                              reason=f"simplified graph failed parity: {problem}")
    return SimplifyResult(True, before, after, time.perf_counter() - start, path=str(out))
