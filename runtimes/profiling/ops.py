"""Where the time goes: ONNX Runtime's profiling trace aggregated per operator type.

ORT writes a Chrome-trace JSON list when a session has ``enable_profiling``. Kernel executions are
events with ``cat == "Node"``, a name ending in ``_kernel_time``, ``dur`` in microseconds and
``args.op_name``; whole runs are ``cat == "Session"`` events named ``model_run``. Warm-up runs are
excluded by keeping only events that start at or after the first measured ``model_run``.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from edgecv.errors import InputError


@dataclass
class OpStat:
    op_type: str
    total_ms: float  # summed over all measured runs
    per_run_ms: float
    percent: float  # of the summed model_run time
    count: int  # nodes of this type in the graph (as executed)
    calls: int


@dataclass
class NodeStat:
    node: str
    op_type: str
    per_run_ms: float
    percent: float


@dataclass
class OpsProfile:
    """Per-operator and per-node breakdown of ``runs`` measured runs."""

    runs: int
    run_ms: float  # mean model_run duration in the trace
    ops: list[OpStat]
    nodes: list[NodeStat]
    providers: dict[str, float] = field(default_factory=dict)  # provider -> percent of kernel time

    def to_dict(self, *, top: int | None = None) -> dict[str, Any]:
        from dataclasses import asdict

        return {"runs": self.runs, "run_ms": self.run_ms, "providers": self.providers,
                "ops": [asdict(o) for o in self.ops],
                "nodes": [asdict(n) for n in (self.nodes[:top] if top else self.nodes)]}


def parse_trace(events: Sequence[dict[str, Any]], *, runs: int | None = None) -> OpsProfile:
    """Aggregate a trace; ``runs`` keeps only the last ``runs`` model_run windows (drops warm-up)."""
    model_runs = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
                        key=lambda e: e["ts"])
    if runs is not None and runs > 0:
        model_runs = model_runs[-runs:]
    if not model_runs:
        raise InputError("profiling trace has no model_run events: expected at least one measured run")
    start = model_runs[0]["ts"]
    total_run_us = float(sum(e["dur"] for e in model_runs))
    n_runs = len(model_runs)
    by_op: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    op_nodes: dict[str, set[str]] = defaultdict(set)
    by_node: dict[str, list[Any]] = {}
    by_provider: dict[str, float] = defaultdict(float)
    for e in events:
        if e.get("cat") != "Node" or e.get("ts", 0) < start or not str(e.get("name", "")).endswith("_kernel_time"):
            continue
        args = e.get("args", {})
        op = args.get("op_name", "?")
        node = e["name"][: -len("_kernel_time")]
        dur = float(e.get("dur", 0))
        by_op[op][0] += dur
        by_op[op][1] += 1
        op_nodes[op].add(node)
        by_node.setdefault(node, [op, 0.0])[1] += dur
        by_provider[args.get("provider", "?")] += dur
    kernel_us = sum(v[0] for v in by_op.values()) or 1.0
    denom = total_run_us or kernel_us
    ops = sorted((OpStat(op, us / 1e3, us / 1e3 / n_runs, 100.0 * us / denom, len(op_nodes[op]), int(calls))
                  for op, (us, calls) in by_op.items()), key=lambda o: -o.total_ms)
    nodes = sorted((NodeStat(name, op, us / 1e3 / n_runs, 100.0 * us / denom)
                    for name, (op, us) in by_node.items()), key=lambda n: -n.per_run_ms)
    providers = {p: 100.0 * us / kernel_us for p, us in sorted(by_provider.items(), key=lambda x: -x[1])}
    return OpsProfile(n_runs, total_run_us / 1e3 / n_runs, ops, nodes, providers)


def load_trace(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read an ORT profiling JSON file (a list of events, or ``{"traceEvents": [...]}``)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable ONNX Runtime profiling trace ({exc})") from None
    if isinstance(data, dict):
        data = data.get("traceEvents", [])
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a JSON list of trace events")
    return data


def profile_ops(path: str | os.PathLike[str], feeds: dict[str, Any], *, provider: str = "cpu",
                threads: int | None = None, warmup: int = 5, runs: int = 20,
                verbose: bool = False, spinning: bool = True) -> OpsProfile:
    """Run ``runs`` profiled inferences after ``warmup`` and aggregate the trace.

    Uses its own session: profiling adds per-kernel bookkeeping that must not leak into the
    latency numbers measured by the main sweep.
    """
    from edgecv.runtimes.engines.session import create_session

    with tempfile.TemporaryDirectory(prefix="edgecv-ops-") as tmp:
        info = create_session(path, provider=provider, threads=threads, verbose=verbose,
                              profile_prefix=str(Path(tmp) / "ort"), spinning=spinning)
        sess = info.session
        for _ in range(max(warmup, 0) + 1):  # +1: the cold first run never counts
            sess.run(None, feeds)
        for _ in range(runs):
            sess.run(None, feeds)
        trace_file = sess.end_profiling()
        events = load_trace(trace_file)
    return parse_trace(events, runs=runs)
