"""The end of a multi-stream run: one line per stream plus the totals, as a table (the CLI's
summary), as a dict (``--report`` JSON) and as the one-line error when every stream was lost."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgecv.runtimes.streaming.frames import StreamLost


@dataclass
class MultiStreamReport:
    """Per-stream figures (``streams``: the dicts of ``Lane.summary``) and the shared ones: the
    stages of the one inference loop, the batch sizes it ran, the providers and threads."""

    streams: list[dict[str, Any]]
    wall_s: float = 0.0
    stages: dict[str, dict[str, float]] = field(default_factory=dict)
    input_wait: dict[str, float] = field(default_factory=dict)  # inference loop idle, waiting for a batch
    batch: dict[str, float] = field(default_factory=dict)  # frames per inference call
    max_wait_ms: float | None = None
    interrupted: bool = False
    providers: list[str] = field(default_factory=list)
    threads: int | None = None

    @property
    def frames(self) -> int:
        return sum(s["frames"] for s in self.streams)

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def lost(self) -> list[dict[str, Any]]:
        return [s for s in self.streams if s["state"] == "lost"]

    @property
    def all_lost(self) -> bool:
        """Every stream was lost: the run failed (CLI exit 1)."""
        return bool(self.streams) and len(self.lost) == len(self.streams)

    def totals(self) -> dict[str, Any]:
        ages = [s["frame_age"] for s in self.streams if s["frame_age"]["n"]]
        return {"streams": len(self.streams), "frames": self.frames, "wall_s": round(self.wall_s, 4),
                "fps": round(self.fps, 3), "dropped": sum(s["dropped"] for s in self.streams),
                "skipped": sum(s["skipped"] for s in self.streams),
                "reconnects": sum(s["reconnects"] for s in self.streams), "lost": len(self.lost),
                "frame_age_p95_ms_max": round(max((a["p95_ms"] for a in ages), default=0.0), 3),
                "inference_calls": int(self.batch.get("n", 0)),
                "mean_batch": round(self.batch.get("mean_ms", 0.0), 3)}  # RingStats' "ms" = frames here

    def to_dict(self) -> dict[str, Any]:
        return {"streams": self.streams, "totals": self.totals(), "stages": self.stages,
                "input_wait": self.input_wait, "max_wait_ms": self.max_wait_ms, "interrupted": self.interrupted,
                "providers": self.providers, "threads": self.threads}

    def lost_message(self) -> str:
        """One line for the error when every stream was lost."""
        reasons = "; ".join(s["error"] or f"{s['source']}: lost" for s in self.lost)
        return f"all {len(self.streams)} streams lost: {reasons}"

    def raise_if_all_lost(self) -> None:
        """The run failed only if every stream was lost: raise :class:`StreamLost` (CLI exit 1)."""
        if self.all_lost:
            raise StreamLost(self.lost_message())


def format_multi_summary(report: MultiStreamReport) -> str:
    """Per stream: state, frames, FPS, frame age p50/p95, dropped, skipped, reconnects; then the
    totals, the stages of the shared loop and why any stream was lost."""
    from edgecv.table import format_table

    rows = [{"stream": s["stream"], "state": s["state"], "frames": s["frames"], "fps": s["fps"],
             "age50": s["frame_age"]["p50_ms"], "age95": s["frame_age"]["p95_ms"], "dropped": s["dropped"],
             "skipped": s["skipped"], "reconnects": s["reconnects"]} for s in report.streams]
    one = {k: (lambda v: f"{v:.1f}") for k in ("fps", "age50", "age95")}
    lines = [format_table(rows, [("stream", "stream"), ("state", "state"), ("frames", "frames"), ("fps", "FPS"),
                                 ("age50", "age p50 ms"), ("age95", "age p95 ms"), ("dropped", "dropped"),
                                 ("skipped", "skipped"), ("reconnects", "reconnects")], formatters=one)]
    t = report.totals()
    lines.append(f"total: {t['frames']} frames from {t['streams']} streams in {report.wall_s:.2f} s = "
                 f"{report.fps:.1f} FPS; {t['inference_calls']} inference calls, {t['mean_batch']:.2f} frames "
                 f"per call; provider {', '.join(report.providers)}; threads {report.threads or 'ort-default'}")
    stage_rows = [{"stage": name, "p50_ms": s["p50_ms"], "p95_ms": s["p95_ms"], "mean_ms": s["mean_ms"]}
                  for name, s in report.stages.items() if s["n"]]
    if stage_rows:
        two = {k: (lambda v: f"{v:.2f}") for k in ("p50_ms", "p95_ms", "mean_ms")}
        lines.append(format_table(stage_rows, [("stage", "stage (per call)"), ("p50_ms", "p50 ms"),
                                               ("p95_ms", "p95 ms"), ("mean_ms", "mean ms")], formatters=two))
    for s in report.streams:
        if s["error"]:
            lines.append(f"  {s['stream']}: {s['error']}")
        for item in s["unreadable"][:5]:
            lines.append(f"  {s['stream']}: skipped {item}")
    if report.interrupted:
        lines.append("stopped early (Ctrl-C, SIGTERM or a stop request); outputs were flushed")
    return "\n".join(lines)
