"""Multi-stream benchmark: many simulated 640x480 cameras, one mobilenet_v3_small, one batch per tick.

Prints and writes ``benchmarks/results/multistream.{json,md}``:

(a) 4 live streams at 30 fps for ``--seconds`` (60 by default): every stream's classified FPS
    (target >= 29), frame age p95 vs one batched inference period (preprocess + inference +
    postprocess of one call, p50) + one frame interval, and no build-up: frame age p95 over the
    first 10 s vs the last 10 s, and RSS (psutil) at the start and the end;
(b) saturation (streams faster than the model): 4 streams batched into one ``engine.run`` per
    tick vs the same 4 streams one frame per ``engine.run`` (``max_batch=1``, round robin),
    classified frames/s, interleaved rounds, ratio of medians (target >= 1.3);
(c) 8 live streams at 30 fps: graceful degradation -- frames dropped (counted, never queued),
    frame age bounded and stable.

Sources are ``LiveSource`` capture threads over ``FakeCapture`` (a camera stand-in that delivers
frames in real time). The model is ``edgecv.models.create_model('mobilenet_v3_small')`` with
random weights, exported by ``edgecv.exporters.export_onnx`` (needs the [train] extra); the
measured part is torch-free.

    python benchmarks/multistream.py --threads 2 --seconds 60
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stream import machine  # noqa: E402 - the same machine header as the stream benchmark

RESULTS = Path(__file__).resolve().parent / "results"
SIZE = (640, 480)


def export_model(path: Path) -> Path:
    import onnx

    from edgecv.contract import ModelContract, embed_contract
    from edgecv.exporters import export_onnx
    from edgecv.models import create_model
    from edgecv.preprocess import default_spec
    from edgecv.runtimes.labels import imagenet_labels

    export_onnx(create_model("mobilenet_v3_small").eval(), path, input_shape=(3, 224, 224))
    proto = onnx.load(str(path))
    embed_contract(proto, ModelContract(task="image", labels=list(imagenet_labels()),
                                        architecture="mobilenet_v3_small", preprocess=default_spec(size=224)))
    onnx.save(proto, str(path))
    return path


def cameras(n: int, fps: float, *, copy: bool = True) -> list:
    from edgecv.runtimes.streaming.sources import FakeCapture, LiveSource

    colours = [(0, 0, 200), (0, 200, 0), (200, 0, 0), (0, 200, 200)]
    return [LiveSource(lambda c=colours[i % 4]: FakeCapture(fps=fps, size=SIZE, colour=c, copy=copy),
                       name=f"camera {i}") for i in range(n)]


def run(clf, sources, seconds: float, **options) -> tuple:
    """One timed multi-stream run; returns the report and (t since start, stream, age ms) per frame."""
    from edgecv.runtimes.streaming.multistream import MultiStreamOptions, run_multistream

    stop = threading.Event()
    timer = threading.Timer(seconds, stop.set)
    timeline: list[tuple[float, str, float]] = []
    t0 = time.perf_counter()
    timer.start()
    report = run_multistream(clf, sources, MultiStreamOptions(handle_signals=False, **options), stop=stop,
                             on_result=lambda r: timeline.append((time.perf_counter() - t0, r.stream, r.age_ms)))
    timer.cancel()
    return report, timeline


def period_ms(report) -> float:
    s = report.stages
    return s["preprocess"]["p50_ms"] + s["inference"]["p50_ms"] + s["postprocess"]["p50_ms"]


def age_drift(timeline: list, seconds: float, window: float = 10.0) -> dict:
    early = [a for t, _, a in timeline if 2.0 <= t < 2.0 + window]
    late = [a for t, _, a in timeline if t >= seconds - window]
    return {"early_p95_ms": float(np.percentile(early, 95)) if early else None,
            "late_p95_ms": float(np.percentile(late, 95)) if late else None, "window_s": window}


def bench_live(clf, *, streams: int, seconds: float, fps: float = 30.0) -> dict:
    import psutil

    proc = psutil.Process()
    rss: dict[str, float] = {}
    timer = threading.Timer(2.0, lambda: rss.setdefault("start_mb", proc.memory_info().rss / 2**20))
    timer.start()
    report, timeline = run(clf, cameras(streams, fps), seconds)
    rss["end_mb"] = proc.memory_info().rss / 2**20
    timer.cancel()
    period = period_ms(report)
    per = [{"stream": s["stream"], "fps": s["fps"], "frames": s["frames"], "dropped": s["dropped"],
            "age_p50_ms": s["frame_age"]["p50_ms"], "age_p95_ms": s["frame_age"]["p95_ms"],
            "age_max_ms": s["frame_age"]["max_ms"]} for s in report.streams]
    return {"streams": streams, "camera_fps": fps, "seconds": seconds, "per_stream": per,
            "min_fps": min(p["fps"] for p in per), "median_fps": float(np.median([p["fps"] for p in per])),
            "max_age_p95_ms": max(p["age_p95_ms"] for p in per), "period_ms": period,
            "bound_ms": period + 1000.0 / fps, "mean_batch": report.totals()["mean_batch"],
            "dropped": report.totals()["dropped"], "drift": age_drift(timeline, seconds), "rss": rss,
            "stages": report.stages}


def bench_saturation(clf, *, streams: int, fps: float, seconds: float, rounds: int) -> dict:
    """Interleaved rounds of batched vs one-frame-per-call runs over streams faster than the model."""
    per_round = []
    for i in range(rounds):
        row = {}
        for mode in (("batched", "single") if i % 2 == 0 else ("single", "batched")):
            report, _ = run(clf, cameras(streams, fps, copy=False), seconds,
                            max_batch=None if mode == "batched" else 1)
            row[mode] = {"fps": report.fps, "mean_batch": report.totals()["mean_batch"],
                         "inference_p50_ms": report.stages["inference"]["p50_ms"],
                         "preprocess_p50_ms": report.stages["preprocess"]["p50_ms"],
                         "dropped": report.totals()["dropped"]}
        row["ratio"] = row["batched"]["fps"] / row["single"]["fps"]
        per_round.append(row)
    batched = float(np.median([r["batched"]["fps"] for r in per_round]))
    single = float(np.median([r["single"]["fps"] for r in per_round]))
    return {"streams": streams, "camera_fps": fps, "seconds_per_run": seconds, "rounds": per_round,
            "batched_fps": batched, "single_fps": single, "ratio": batched / single,
            "round_ratios": [round(r["ratio"], 3) for r in per_round], "target": 1.3}


def bench_engine(clf, *, batch: int = 4, rounds: int = 7) -> dict:
    """The parts of (b), timed alone (interleaved, medians per frame): ``engine.run`` of one batch
    of ``batch`` vs ``batch`` runs of one frame, and the preprocessing of ``batch`` 640x480
    frames one after another (what one frame per call does) vs side by side on a pool of one
    thread per core (what a batch tick does, ``preprocess_parallel``)."""
    from concurrent.futures import ThreadPoolExecutor

    from edgecv.hardware import usable_cores
    from edgecv.runtimes.profiling.ab_timing import interleaved
    from edgecv.runtimes.streaming.multistream import preprocess_parallel

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (SIZE[1], SIZE[0], 3), dtype=np.uint8) for _ in range(batch)]
    x1, xn = clf.preprocess(images[:1]), clf.preprocess(images)
    with ThreadPoolExecutor(usable_cores()) as pool:
        # blocks, not alternate calls: OpenCV's own worker threads keep spinning for a while
        # after a resize and would bill the next step
        samples = interleaved([lambda: clf.run(x1), lambda: clf.run(xn),
                               lambda: [clf.preprocess([image]) for image in images],
                               lambda: preprocess_parallel(clf, images, pool)], rounds=rounds, block_s=0.2)
    times = dict(zip(("one", "many", "pre_serial", "pre_pool"), (ns / 1e6 for ns in samples)))
    one_ms, many_ms = float(np.median(times["one"])), float(np.median(times["many"])) / batch
    pre_ms, pool_ms = float(np.median(times["pre_serial"])) / batch, float(np.median(times["pre_pool"])) / batch
    # what (b) can reach at best when nothing overlaps: per frame, preprocessing + inference
    return {"batch": batch, "rounds": rounds, "runs": [len(t) for t in times.values()], "batch1_ms": one_ms,
            "batched_ms_per_frame": many_ms, "ratio": one_ms / many_ms, "preprocess_ms": pre_ms,
            "preprocess_pool_ms": pool_ms, "pool_workers": usable_cores(),
            "ceiling_with_preprocess": (one_ms + pre_ms) / (many_ms + pool_ms)}


def to_markdown(res: dict) -> str:
    m, a, b, c, e = res["machine"], res["live4"], res["saturation"], res["live8"], res["engine"]
    da, dc = a["drift"], c["drift"]
    return "\n".join([
        "# Multi-stream benchmark (mobilenet_v3_small, random init, CPU)", "",
        f"{m['cpu']}, {m['cores']} cores (1-min load {m['load_avg_1m']:.2f} at start, {m['load_avg_1m_end']:.2f} at "
        f"the end), threads={res['threads']}, onnxruntime {m['onnxruntime']}, "
        f"opencv {m['opencv']}, numpy {m['numpy']}, python {m['python']}; simulated 640x480 cameras "
        f"(FakeCapture in LiveSource capture threads)", "",
        "| measure | result | target |", "|---|---|---|",
        f"| (a) 4 x 30 fps, {a['seconds']:.0f} s: classified FPS per stream (min / median) | **{a['min_fps']:.1f}** / "
        f"{a['median_fps']:.1f} ({a['mean_batch']:.2f} frames per inference call; {a['dropped']} dropped) | >= 29 |",
        f"| (a) frame age p95, worst stream | **{a['max_age_p95_ms']:.1f} ms** | < {a['bound_ms']:.1f} ms (batched "
        f"period {a['period_ms']:.1f} + 33.3) |",
        f"| (a) no build-up: frame age p95 first 10 s -> last 10 s; RSS start -> end | {da['early_p95_ms']:.1f} -> "
        f"{da['late_p95_ms']:.1f} ms; {a['rss']['start_mb']:.1f} -> {a['rss']['end_mb']:.1f} MB | stable, flat |",
        f"| (b) saturation, 4 streams x {b['camera_fps']:.0f} fps: frames/s batched vs one frame per engine.run "
        f"(median of {len(b['rounds'])} interleaved rounds of {b['seconds_per_run']:.0f} s) | "
        f"{b['batched_fps']:.0f} vs {b['single_fps']:.0f} = **{b['ratio']:.2f}x** (rounds {b['round_ratios']}) "
        f"| >= 1.3x |",
        f"| (b) its parts, timed alone (medians of {e['rounds']} interleaved blocks of 0.2 s, per frame): "
        f"engine.run batch 1 vs batch {e['batch']}; preprocessing one frame at a time vs {e['batch']} frames on "
        f"{e['pool_workers']} threads | {e['batch1_ms']:.2f} vs {e['batched_ms_per_frame']:.2f} ms = "
        f"{e['ratio']:.2f}x; "
        f"{e['preprocess_ms']:.2f} vs {e['preprocess_pool_ms']:.2f} ms; together, nothing overlapped: "
        f"({e['batch1_ms']:.2f} + {e['preprocess_ms']:.2f}) / ({e['batched_ms_per_frame']:.2f} + "
        f"{e['preprocess_pool_ms']:.2f}) = **{e['ceiling_with_preprocess']:.2f}x** | - |",
        f"| (c) 8 x 30 fps, {c['seconds']:.0f} s: FPS per stream (min / median); dropped | {c['min_fps']:.1f} / "
        f"{c['median_fps']:.1f}; {c['dropped']} dropped ({c['mean_batch']:.2f} frames per call) | degrades, counted |",
        f"| (c) frame age p95 worst stream; first 10 s -> last 10 s | {c['max_age_p95_ms']:.1f} ms "
        f"(bound {c['bound_ms']:.1f}); {dc['early_p95_ms']:.1f} -> {dc['late_p95_ms']:.1f} ms | bounded, no queue |",
        ""])


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    ap.add_argument("--seconds", type=float, default=60.0, help="length of run (a)")
    ap.add_argument("--many-seconds", type=float, default=20.0, help="length of run (c)")
    ap.add_argument("--saturation-fps", type=float, default=150.0, help="per-stream rate in (b): above the model's")
    ap.add_argument("--saturation-seconds", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--model", type=Path, default=None, help="use this mobilenet_v3_small .onnx instead of exporting")
    ap.add_argument("--tag", default="")
    args = ap.parse_args(argv)

    from edgecv.runtimes import load

    work = Path(tempfile.mkdtemp(prefix="edgecv-multistream-bench-"))
    clf = load(args.model or export_model(work / "mobilenet_v3_small.onnx"), provider="cpu", threads=args.threads)
    res = {"machine": machine(), "threads": args.threads, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "model": "mobilenet_v3_small (edgecv.models, random init)"}
    print(f"# {clf.describe()}", flush=True)
    res["engine"] = e = bench_engine(clf)
    print(f"engine.run alone: batch 1 {e['batch1_ms']:.2f} ms vs batch {e['batch']} {e['batched_ms_per_frame']:.2f} ms "
          f"per frame = {e['ratio']:.2f}x; preprocess {e['preprocess_ms']:.2f} ms per frame serial, "
          f"{e['preprocess_pool_ms']:.2f} on {e['pool_workers']} threads -> (b) without overlap "
          f"{e['ceiling_with_preprocess']:.2f}x", flush=True)
    res["saturation"] = b = bench_saturation(clf, streams=4, fps=args.saturation_fps, seconds=args.saturation_seconds,
                                             rounds=args.rounds)
    print(f"(b) saturation: batched {b['batched_fps']:.0f} vs one frame per call {b['single_fps']:.0f} frames/s = "
          f"{b['ratio']:.2f}x (rounds {b['round_ratios']})", flush=True)
    res["live4"] = a = bench_live(clf, streams=4, seconds=args.seconds)
    print(f"(a) 4 x 30 fps: FPS min {a['min_fps']:.1f}, age p95 worst {a['max_age_p95_ms']:.1f} ms (bound "
          f"{a['bound_ms']:.1f}), drift {a['drift']}, RSS {a['rss']}", flush=True)
    res["live8"] = c = bench_live(clf, streams=8, seconds=args.many_seconds)
    print(f"(c) 8 x 30 fps: FPS min {c['min_fps']:.1f}, dropped {c['dropped']}, age p95 worst "
          f"{c['max_age_p95_ms']:.1f} ms, drift {c['drift']}", flush=True)
    res["machine"]["load_avg_1m_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = "multistream" + (f"_{args.tag}" if args.tag else "")
    (RESULTS / f"{stem}.json").write_text(json.dumps(res, indent=2) + "\n")
    (RESULTS / f"{stem}.md").write_text(to_markdown(res))
    print(to_markdown(res))
    return res


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
