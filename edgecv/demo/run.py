"""``edgecv demo``: the whole chain on generated data, on the CPU, in a few minutes.

Five steps, each calling the same public library functions the individual commands use:

1. generate a coloured-shapes image set (:func:`edgecv.demo.synthetic.make_shapes_dataset`);
2. train a small classifier on it (:func:`edgecv.training.trainer.train`);
3. export fp32 + int8 ONNX with parity checks (:func:`edgecv.exporters.run_export`), then
   evaluate both on the validation images as ``edgecv val`` does
   (:func:`edgecv.runtimes.evaluation.evaluate.evaluate`): the summary's accuracy figures come from there;
4. write a video of moving shapes and classify it with the stream loop
   (:func:`edgecv.runtimes.streaming.stream.run_stream`), scoring every frame against the video's truth;
5. profile fp32 vs int8 (:func:`edgecv.runtimes.profiling.job.run_profile`).

Everything is seeded and runs on the CPU with a fixed thread count, so two runs give the same
accuracy figures (timings of course vary with the machine and its load). The recipe (48 px
SqueezeNet 1.1, 600 images per class, 20 epochs) was chosen to reach >= 90 % validation accuracy
in about a minute of training on two cores; ``quick=True`` is a reduced run for tests and CI.
"""
from __future__ import annotations

import contextlib
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from edgecv.demo.config import MARKER, OWNED, STEPS, DemoConfig, DemoResult
from edgecv.errors import InputError, ModelError, require
from edgecv.io import check_writable_dir


def prepare_out(out: Path, *, force: bool) -> None:
    """Refuse a non-empty folder that the demo did not make (unless ``force``); clear the demo's
    own files from an earlier run; mark the folder as a demo folder. Runs before the data is
    generated, so a folder that cannot be written fails now, not after minutes of training."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder")
    check_writable_dir(out, option="--out")
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
    from edgecv.models.registry import builder_parameters

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
    from edgecv.demo import steps
    from edgecv.demo.report import build_summary

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

        def export_and_validate() -> Any:
            report = steps.export(cfg, out, results["train"], say=say)
            results["val"] = steps.validate(cfg, out, report, say=say)
            return report

        results["export"] = step(3, "Exporting fp32 + int8 ONNX with parity checks, then validating both "
                                    "(edgecv val)", export_and_validate)
    results["stream"] = step(4, "Classifying the video with the stream loop",
                             lambda: steps.stream(cfg, out, results["export"], say=say,
                                                  model=Path(results["val"]["report"].recommendation["model"])))
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
