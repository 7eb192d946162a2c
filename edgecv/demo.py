"""``edgecv demo``: the whole chain on generated data, on the CPU, in a few minutes.

Five steps, each calling the same public library functions the individual commands use:

1. generate a coloured-shapes image set (:func:`edgecv.synthetic.make_shapes_dataset`);
2. train a small classifier on it (:func:`edgecv.trainer.train`);
3. export fp32 + int8 ONNX with parity checks (:func:`edgecv.exporters.run_export`);
4. write a video of moving shapes and classify it with the stream loop
   (:func:`edgecv.runtimes.stream.run_stream`), scoring every frame against the video's truth;
5. profile fp32 vs int8 (:func:`edgecv.runtimes.profile_job.run_profile`).

Everything is seeded and runs on the CPU with a fixed thread count, so two runs give the same
accuracy figures (timings of course vary with the machine and its load). The recipe (48 px
SqueezeNet 1.1, 600 images per class, 20 epochs) was chosen to reach >= 90 % validation accuracy
in about a minute of training on two cores; ``quick=True`` is a reduced run for tests and CI.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from edgecv.errors import InputError, ModelError, require

MARKER = ".edgecv-demo"  # written first: marks a folder the demo may clear and rewrite
# Everything the demo writes under --out (removed before a rerun, so nothing stale survives).
OWNED = ("data", "train", "video", "stream", "profile", "model.onnx", "model.int8.onnx",
         "model.fp16.onnx", "model.export.json", "summary.json")
STEPS = 5

# Settings per size; the user's --epochs/--img-size/--per-class override them.
FULL = {"epochs": 20, "img_size": 48, "per_class": 600, "video_seconds": 6.0, "profile_runs": 200}
QUICK = {"epochs": 14, "img_size": 48, "per_class": 320, "video_seconds": 2.0, "profile_runs": 30}


@dataclass
class DemoConfig:
    """What ``edgecv demo`` was asked to do; ``None`` fields take the preset's value."""

    out: str = "edgecv-demo"
    model: str = "squeezenet1_1"
    epochs: int | None = None
    img_size: int | None = None
    per_class: int | None = None
    threads: int | None = None  # None -> usable cores - 1 (one core is left to the data loader)
    seed: int = 0
    quick: bool = False
    force: bool = False
    batch_size: int = 32
    lr: float = 1e-3
    min_crop_scale: float = 0.6  # milder than the trainer's 0.25: a crop must keep the shape
    video_seconds: float | None = None
    video_fps: int = 15
    profile_runs: int | None = None

    def resolved(self) -> DemoConfig:
        """A copy with every preset value filled in and checked."""
        preset = QUICK if self.quick else FULL
        values = asdict(self)
        for key, default in preset.items():
            if values.get(key) is None:
                values[key] = default
        if values["threads"] is None:
            values["threads"] = max(1, usable_cores() - 1)
        cfg = DemoConfig(**values)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if self.epochs is not None and self.epochs < 1:
            raise InputError(f"--epochs {self.epochs}: expected >= 1")
        if self.img_size is not None and self.img_size < 32:
            raise InputError(f"--img-size {self.img_size}: expected >= 32 pixels")
        if self.per_class is not None and self.per_class < 8:
            raise InputError(f"--per-class {self.per_class}: expected >= 8 images per class")
        if self.threads is not None and self.threads < 1:
            raise InputError(f"--threads {self.threads}: expected >= 1")


@dataclass
class DemoResult:
    """What a demo run produced: the summary document and where it was written."""

    out: Path
    summary: dict[str, Any]
    summary_path: Path
    steps: list[dict[str, Any]] = field(default_factory=list)


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def prepare_out(out: Path, *, force: bool) -> None:
    """Refuse a non-empty folder that the demo did not make (unless ``force``); clear the demo's
    own files from an earlier run; mark the folder as a demo folder."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and not (out / MARKER).exists() and any(out.iterdir()) and not force:
        raise InputError(f"--out {out}: folder is not empty and was not made by 'edgecv demo'; "
                         "choose another --out or pass --force")
    out.mkdir(parents=True, exist_ok=True)
    for name in OWNED:
        target = out / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
    (out / MARKER).write_text("written by 'edgecv demo'; the demo may clear and rewrite this folder\n",
                              encoding="utf-8")


def check_model(name: str) -> dict[str, Any]:
    """The registered image model ``name`` and the builder arguments the demo uses for it."""
    from edgecv.models import get_model_spec, list_models
    from edgecv.training_setup import builder_parameters

    spec = get_model_spec(name)  # unknown names: one line listing the valid ones
    if spec.task != "image":
        raise ModelError(f"--model {name}: the demo trains on images; expected one of "
                         f"{', '.join(list_models('image'))}")
    params = builder_parameters(name)
    kwargs: dict[str, Any] = {}
    if "final_relu" in params:
        kwargs["final_relu"] = False  # a fresh SqueezeNet head behind a ReLU can switch classes off
    if "dropout" in params:
        kwargs["dropout"] = 0.0  # short run on clean data: dropout only slows convergence
    return kwargs


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_demo(config: DemoConfig | None = None, *, echo: Callable[[str], None] | None = None) -> DemoResult:
    """Run the five steps into ``config.out`` and write ``summary.json`` there.

    ``echo(line)`` receives the progress lines (default: print to stdout); the trainer's epoch
    lines and tqdm bars go to stdout as usual.
    """
    from edgecv import demo_steps as steps
    from edgecv.demo_report import build_summary

    cfg = (config or DemoConfig()).resolved()
    require("torch", "train")  # an edge-only install gets a one-line hint, not a traceback
    say = echo or (lambda line: print(line, flush=True))
    model_kwargs = check_model(cfg.model)
    out = Path(cfg.out)
    prepare_out(out, force=cfg.force)
    timings: list[dict[str, Any]] = []
    results: dict[str, Any] = {}
    start = time.perf_counter()

    def step(number: int, title: str, fn: Callable[[], Any]) -> Any:
        say(f"[{number}/{STEPS}] {title} ...")
        t0 = time.perf_counter()
        value = fn()
        seconds = time.perf_counter() - t0
        timings.append({"step": title, "seconds": round(seconds, 2)})
        say(f"      done in {seconds:.1f} s")
        return value

    results["data"] = step(1, f"Generating data: {cfg.per_class} images per class at {cfg.img_size} px "
                              f"and a {cfg.video_seconds:g} s video",
                           lambda: steps.generate(cfg, out))
    with torch_threads(cfg.threads):
        results["train"] = step(2, f"Training {cfg.model} for {cfg.epochs} epochs on the CPU "
                                   f"({cfg.threads} thread{'s' if cfg.threads != 1 else ''})",
                                lambda: steps.train(cfg, out, model_kwargs=model_kwargs))
        results["export"] = step(3, "Exporting fp32 + int8 ONNX with parity checks",
                                 lambda: steps.export(cfg, out, results["train"], say=say))
    results["stream"] = step(4, "Classifying the video with the stream loop",
                             lambda: steps.stream(cfg, out, results["export"], say=say))
    results["profile"] = step(5, "Profiling fp32 vs int8",
                              lambda: steps.profile(cfg, out, results["export"], say=say))
    total = time.perf_counter() - start
    summary = build_summary(cfg, out, results, timings=timings, total_s=total)
    summary_path = _write_summary(out / "summary.json", summary)
    return DemoResult(out=out, summary=summary, summary_path=summary_path, steps=timings)


def _write_summary(path: Path, summary: dict[str, Any]) -> Path:
    """Write summary.json listing its own final size (a few rounds until the number is stable)."""
    import json

    from edgecv.io import write_text_atomic

    entry = next(a for a in summary["artefacts"] if a["name"] == "summary")
    entry["bytes"] = 0
    for _ in range(4):
        text = json.dumps(summary, indent=2, default=str) + "\n"
        size = len(text.encode("utf-8"))
        if entry["bytes"] == size:
            break
        entry["bytes"] = size
    return write_text_atomic(path, text)


def stdout_to_stderr(enabled: bool) -> Any:
    """With ``--json`` every progress line (ours and the trainer's) goes to stderr."""
    return contextlib.redirect_stdout(sys.stderr) if enabled else contextlib.nullcontext()
