"""``edgecv demo``: options -> :class:`edgecv.demo.DemoConfig` -> :func:`edgecv.demo.run_demo`.

torch is imported only when the command runs, so ``edgecv demo --help`` stays fast.
"""
from __future__ import annotations

import json

import click


@click.command("demo")
@click.option("--out", "-o", default="edgecv-demo", show_default=True, type=click.Path(file_okay=False),
              help="Folder for every artefact; a non-empty folder not made by the demo needs --force.")
@click.option("--model", "-m", default="squeezenet1_1", show_default=True,
              help="Image architecture from 'edgecv models', e.g. squeezenet1_1, mobilenet_v3_small, "
                   "mobilenet_v2.")
@click.option("--epochs", type=click.IntRange(1, None), default=None, help="Training epochs [20; --quick 14].")
@click.option("--img-size", type=click.IntRange(32, None), default=None,
              help="Image side in pixels, for the data and the model [48].")
@click.option("--per-class", type=click.IntRange(8, None), default=None,
              help="Generated images per class, 25% of them for validation [600; --quick 320].")
@click.option("--threads", type=click.IntRange(1, None), default=None,
              help="CPU threads for training, the stream loop and profiling [usable cores - 1, at least 1].")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for data, training and video.")
@click.option("--quick", is_flag=True, help="Reduced run (fewer, smaller images; shorter video) for CI smoke tests.")
@click.option("--force", is_flag=True, help="Write into a non-empty --out that was not made by the demo.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON (progress goes to stderr).")
def demo(out: str, model: str, epochs: int | None, img_size: int | None, per_class: int | None,
         threads: int | None, seed: int, quick: bool, force: bool, as_json: bool) -> None:
    """Run the whole chain on generated data, on the CPU, without network access.

    \b
    1. generate coloured shapes (4 classes) and a video of moving shapes
    2. train a classifier (default: SqueezeNet 1.1 at 48 px, about 1 minute on 2 cores)
    3. export fp32 + int8 ONNX, each checked against PyTorch
    4. classify the video with the stream loop: annotated mp4 + JSON lines,
       per-frame accuracy against the video's ground truth
    5. profile fp32 vs int8 latency
    Ends with a table of every figure and artefact; OUT/summary.json holds the same.

    \b
    Examples:
      edgecv demo                                  # 1-2 minutes on 2 CPU cores
      edgecv demo --out /tmp/demo --model mobilenet_v3_small --epochs 30
      edgecv demo --quick --json > summary.json    # reduced run for CI
    """
    from edgecv.demo import DemoConfig, run_demo, stdout_to_stderr
    from edgecv.demo.report import format_summary

    cfg = DemoConfig(out=out, model=model, epochs=epochs, img_size=img_size, per_class=per_class,
                     threads=threads, seed=seed, quick=quick, force=force)
    with stdout_to_stderr(as_json):
        result = run_demo(cfg)
    if as_json:
        click.echo(json.dumps(result.summary, indent=2, default=str))
        return
    click.echo("")
    click.echo(format_summary(result.summary))
    click.echo(f"\nNext: edgecv inspect {result.out / 'model.onnx'}   |   "
               f"edgecv infer {result.out / 'model.int8.onnx'} --camera 0")
