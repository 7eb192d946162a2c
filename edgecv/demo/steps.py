"""The five steps of ``edgecv demo`` (see :mod:`edgecv.demo`), one function each.

Each step calls the public library API of its layer and returns a small dict of what it made and
measured; :mod:`edgecv.demo.report` turns those into the summary. No step shells out to the CLI.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from edgecv.errors import EdgecvError

if TYPE_CHECKING:
    from edgecv.demo.config import DemoConfig

# (width, height) as in OpenCV. Square, like the training images: the model's "stretch" resize
# would squash a 4:3 frame by a third, and the video then scores ~10 points below validation.
VIDEO_SIZE = (240, 240)
# Shapes in the video are as large, relative to the frame, as in the training images; the
# generator's default (smaller shapes) is a different distribution than the model was trained on.
VIDEO_RADIUS = (0.26, 0.44)
# The columns of `edgecv profile`'s table that matter for fp32 vs int8 (profile.md has them all).
PROFILE_COLUMNS = [("model", "model"), ("provider", "provider"), ("threads", "threads"),
                   ("create_ms", "create ms"), ("p50_ms", "p50 ms"), ("p90_ms", "p90 ms"),
                   ("p99_ms", "p99 ms"), ("runs", "runs"), ("throughput", "items/s"), ("speedup", "vs first")]


def generate(cfg: DemoConfig, out: Path) -> dict[str, Any]:
    """Image set under ``out/data/{train,val}/<class>/`` and a video with its truth file."""
    from edgecv.demo.synthetic import (
        DEFAULT_SHAPE_CLASSES,
        make_shapes_dataset,
        make_shapes_video,
    )

    data = make_shapes_dataset(out / "data", classes=DEFAULT_SHAPE_CLASSES, per_class=cfg.per_class,
                               size=cfg.img_size, seed=cfg.seed, split=True, val_fraction=0.25)
    video = make_shapes_video(out / "video" / "shapes.mp4", seconds=cfg.video_seconds, fps=cfg.video_fps,
                              size=VIDEO_SIZE, seed=cfg.seed + 1, classes=DEFAULT_SHAPE_CLASSES,
                              radius=VIDEO_RADIUS)
    n_train = sum(1 for _ in (data / "train").rglob("*.png"))
    n_val = sum(1 for _ in (data / "val").rglob("*.png"))
    return {"data": data, "train_images": n_train, "val_images": n_val,
            "classes": list(DEFAULT_SHAPE_CLASSES), "video": video,
            "truth": video.with_name(video.stem + ".truth.json")}


def train(cfg: DemoConfig, out: Path, *, model_kwargs: dict[str, Any]) -> Any:
    """:func:`edgecv.training.trainer.train` on the generated set, on the CPU, seeded."""
    from edgecv.hardware import usable_cores
    from edgecv.training.trainer import train as run_training

    # One loader worker decodes and augments on the core the training step leaves free.
    workers = 1 if usable_cores() > 1 else 0
    return run_training(str(out / "data"), model=cfg.model, out=str(out / "train"), epochs=cfg.epochs,
                        img_size=cfg.img_size, batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed,
                        min_crop_scale=cfg.min_crop_scale, model_kwargs=model_kwargs, device="cpu",
                        workers=workers, overwrite=True)


def export(cfg: DemoConfig, out: Path, trained: Any, *, say: Callable[[str], None]) -> Any:
    """fp32 + int8 from ``best.pt``. The data folder has train/ and val/, so int8 is calibrated
    on training images and every stage is checked on all the validation images: int8 figures
    measured on its own calibration images would flatter it."""
    from edgecv.exporters import ExportOptions, load_source, run_export

    source = load_source(trained.best_checkpoint)
    data = out / "data"
    n_train = sum(1 for _ in (data / "train").rglob("*.png"))
    n_val = sum(1 for _ in (data / "val").rglob("*.png"))
    opts = ExportOptions(output=out / "model.onnx", data=data, int8=True, calib_size=min(300, n_train),
                         verify_size=max(4, n_val), seed=cfg.seed, int8_speed_threads=cfg.threads)
    report = run_export(source, opts, progress=lambda m: say(f"      ... {m}"))
    if not report.passed:
        raise EdgecvError(f"export failed parity; see {report.report_path}")
    return report


def int8_file(report: Any) -> Path | None:
    """The int8 file when the export wrote it and it passed its checks, else None."""
    int8 = report.stage("int8")
    ok = int8 is not None and int8.file and int8.status in ("ok", "warning") and Path(int8.file).exists()
    return Path(int8.file) if ok else None


def int8_recommended(report: Any) -> bool:
    """int8 was written, passed, and was not found slower than fp32 on this machine."""
    speed = (report.stage("int8").details or {}).get("speed") if int8_file(report) else None
    return int8_file(report) is not None and (speed is None or speed.get("recommended") == "int8")


def validate(cfg: DemoConfig, out: Path, report: Any, *, say: Callable[[str], None]) -> dict[str, Any]:
    """``edgecv val``'s library call: fp32 and int8 side by side on the validation images (none
    of which int8 was calibrated on), with the demo's threads; the accuracy figures of the
    summary come from here. Writes val.json, val.md and per-model CSV/PNG under ``out/val``."""
    from edgecv.io import write_json_atomic, write_text_atomic
    from edgecv.runtimes.engines.base import EngineOptions
    from edgecv.runtimes.evaluation.evaluate import EvalOptions, evaluate
    from edgecv.runtimes.evaluation.report import format_markdown, format_report, write_outputs

    models = [Path(report.output)] + ([int8_file(report)] if int8_file(report) else [])
    say(f"      validating {', '.join(m.name for m in models)} on {out / 'data' / 'val'} (edgecv val)")
    result = evaluate(models, out / "data", EvalOptions(engine=EngineOptions(provider="cpu", threads=cfg.threads)))
    folder = out / "val"
    files = write_outputs(result, folder, warn=lambda m: say(f"      warning: {m}"))
    files.append(write_json_atomic(folder / "val.json", result.to_dict()))
    files.append(write_text_atomic(folder / "val.md", format_markdown(result)))
    for line in format_report(result).splitlines():
        say(f"      {line}".rstrip())
    return {"report": result, "json": folder / "val.json", "markdown": folder / "val.md", "files": files}


def stream(cfg: DemoConfig, out: Path, report: Any, *, say: Callable[[str], None],
           model: Path | None = None) -> dict[str, Any]:
    """Run the stream loop over the demo video with ``model`` (the file ``edgecv val``
    recommends), else the int8 model (fp32 if int8 was not kept, or was not faster than fp32 on
    this machine): annotated mp4 + JSON lines, and per-frame accuracy against the video's truth."""
    from edgecv.demo.synthetic import load_video_truth
    from edgecv.runtimes.classifier import load
    from edgecv.runtimes.streaming.outputs import JsonlSink, VideoSink
    from edgecv.runtimes.streaming.sources import VideoFileSource
    from edgecv.runtimes.streaming.stream import StreamOptions, run_stream

    model_path = model or (int8_file(report) if int8_recommended(report) else Path(report.output))
    video = out / "video" / "shapes.mp4"
    truth = {f["frame"]: f["label"] for f in load_video_truth(video)["frames"]}
    clf = load(model_path, provider="cpu", threads=cfg.threads)
    say(f"      {clf.describe()}")
    source = VideoFileSource(video)
    annotated, jsonl = out / "stream" / "annotated.mp4", out / "stream" / "predictions.jsonl"
    sinks = [JsonlSink(jsonl), VideoSink(annotated, fps=source.fps)]
    score = {"correct": 0, "scored": 0}
    bar = _frame_bar(source.frame_count)

    def on_result(result: Any) -> None:
        label = truth.get(result.frame)
        if label is not None:
            score["scored"] += 1
            score["correct"] += int(result.top_k[0].label == label)
        if bar is not None:
            bar.update(1)

    try:
        stream_report = run_stream(clf, source, StreamOptions(top_k=3), sinks=sinks, on_result=on_result)
    finally:
        if bar is not None:
            bar.close()
    from edgecv.runtimes.streaming.outputs import format_summary

    for line in format_summary(stream_report).splitlines():
        say(f"      {line}")
    accuracy = score["correct"] / score["scored"] if score["scored"] else None
    if accuracy is not None:
        say(f"      per-frame accuracy against the video's truth: {accuracy:.1%} "
            f"({score['correct']}/{score['scored']} frames)")
    return {"model": model_path, "report": stream_report, "annotated": annotated, "jsonl": jsonl,
            "frame_accuracy": accuracy, "frames_scored": score["scored"], "frames_correct": score["correct"]}


def _frame_bar(total: int | None) -> Any:
    if not sys.stdout.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="      frames", unit="frame", leave=False, dynamic_ncols=True)


def profile(cfg: DemoConfig, out: Path, report: Any, *, say: Callable[[str], None]) -> dict[str, Any]:
    """fp32 vs int8 latency at batch 1 on the CPU with the demo's thread count, in one process
    run; writes profile.json, profile.md and latency.png under ``out/profile``."""
    from edgecv.runtimes.profiling import report as profile_report
    from edgecv.runtimes.profiling import sysinfo
    from edgecv.runtimes.profiling.job import ProfileOptions, run_profile
    from edgecv.table import format_table

    models = [str(report.output)]
    int8 = report.stage("int8")
    if int8 is not None and int8.file and Path(int8.file).exists():
        models.append(int8.file)
    opts = ProfileOptions(models=models, providers=["cpu"], batches=[1], threads=[cfg.threads],
                          warmup=10, runs=cfg.profile_runs, peak="off")
    result = run_profile(opts, progress=lambda m: say(f"      ... measuring {m}"))
    folder = out / "profile"
    folder.mkdir(parents=True, exist_ok=True)
    public = [{k: v for k, v in row.items() if k != "samples_ms"} for row in result.rows]
    flat = [{k: v for k, v in row.items() if not isinstance(v, dict)} for row in public]
    header = sysinfo.header_lines(result.env)
    header.append(f"warm-up {opts.warmup} runs, then {opts.runs} runs per model; times in ms")
    profile_report.write_json(str(folder / "profile.json"), public, result.env)
    profile_report.write_markdown(folder / "profile.md", flat, header + result.notices,
                                  title="edgecv demo: fp32 vs int8")
    plot = folder / "latency.png"
    try:
        profile_report.plot_latency(plot, result.rows)
    except EdgecvError as exc:  # matplotlib missing: the numbers matter more than the picture
        say(f"      (no latency plot: {exc})")
        plot = None
    table = format_table(public, PROFILE_COLUMNS, formatters=profile_report.FORMATTERS)
    for line in table.splitlines():
        say(f"      {line}")
    for line in profile_report.comparison_lines(public):
        say(f"      {line}")
    return {"rows": public, "env": result.env, "json": folder / "profile.json", "markdown": folder / "profile.md",
            "plot": plot}
