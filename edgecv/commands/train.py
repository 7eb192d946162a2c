"""``edgecv train``: options -> :class:`edgecv.training.trainer.TrainConfig` -> :func:`edgecv.training.trainer.train`.

torch is imported only when the command runs, so ``edgecv train --help`` stays fast.
"""
from __future__ import annotations

import json
import math
from typing import Any

import click

# The same bounds as TrainConfig.validate() (the Python API), kept in edgecv.training.config; they
# are repeated here as literals so 'edgecv train --help' never imports the training package.
MIN_IMG_SIZE = 8  # smallest input any registered image model accepts
MIN_VOCAB_SIZE = 3  # <pad>, <unk> and at least one real word
# edgecv.training.augment.AUGMENT_PRESETS, repeated for the same reason (a test keeps them equal)
AUGMENT_CHOICES = ("none", "light", "standard", "strong")


class FiniteRange(click.FloatRange):
    """``click.FloatRange`` that also refuses nan and inf: ``nan < 0`` is False, so a plain range
    lets ``--lr nan`` through to the optimiser, which then fails with a traceback."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


@click.command("train")
@click.argument("data", required=False, type=click.Path(exists=True))
@click.option("--model", "-m", default=None, help="Architecture from 'edgecv models' (default mobilenet_v2 for "
              "images, lstm_classifier for text).")
@click.option("--out", "-o", default=None,
              help="Output folder for checkpoints, metrics and plots [the next free runs/exp, runs/exp2, ...].")
@click.option("--name", default=None, help="Without --out: train into runs/NAME, runs/NAME2, ... [exp].")
@click.option("--exist-ok", is_flag=True, default=False,
              help="Without --out: use runs/NAME as it is, no numbering (a run there is replaced).")
@click.option("--epochs", type=click.IntRange(1), default=None, help="Epochs to train [10].")
@click.option("--batch-size", type=click.IntRange(1), default=None, help="Batch size per process [32].")
@click.option("--lr", type=FiniteRange(0, min_open=True), default=None,
              help="Peak learning rate [1e-3 AdamW, 0.05 SGD].")
@click.option("--optimizer", type=click.Choice(["adamw", "sgd"]), default=None, help="Optimiser [adamw].")
@click.option("--weight-decay", type=FiniteRange(0), default=None, help="Weight decay [0.01].")
@click.option("--warmup-epochs", type=FiniteRange(0), default=None,
              help="Linear LR warm-up before the cosine decay [1].")
@click.option("--label-smoothing", type=FiniteRange(0, 1, max_open=True), default=None,
              help="Cross-entropy label smoothing [0].")
@click.option("--grad-clip", type=FiniteRange(0, min_open=True), default=None,
              help="Clip the gradient norm [1.0 for text, off for images].")
@click.option("--seed", type=click.IntRange(0), default=None,
              help="Seed for split, init, shuffling and augmentation [0].")
@click.option("--val-split", type=FiniteRange(0, 1, min_open=True, max_open=True), default=None,
              help="Validation fraction, stratified per class [0.2]; "
              "ignored when DATA_DIR has train/ and val/.")
@click.option("--device", default=None, help="auto (cuda -> mps -> cpu), cpu, cuda, cuda:N or mps [auto].")
@click.option("--no-amp", is_flag=True, default=False, help="Disable mixed precision on CUDA.")
@click.option("--workers", type=click.IntRange(0), default=None,
              help="DataLoader worker processes [up to 4 for images, 0 text].")
@click.option("--model-arg", "model_args", multiple=True, metavar="KEY=VALUE",
              help="Extra architecture argument, repeatable: --model-arg width_mult=0.5 --model-arg dropout=0.")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Start from these weights (torchvision .pth or edgecv .pt); a head of another class count is "
                   "replaced.")
@click.option("--freeze-backbone", is_flag=True, default=False, help="Train only the classifier head.")
@click.option("--unfreeze-at", type=click.IntRange(1), default=None,
              help="With --freeze-backbone: train everything from this epoch.")
@click.option("--img-size", type=click.IntRange(MIN_IMG_SIZE), default=None,
              help="Square input size in pixels [the model's default].")
@click.option("--resize", type=click.Choice(["stretch", "short_side"]), default=None,
              help="Evaluation/runtime resize, saved with the model [stretch: whole image; short_side: + centre crop].")
@click.option("--grayscale", is_flag=True, default=False, help="Train on 1-channel grey images.")
@click.option("--augment", type=click.Choice(AUGMENT_CHOICES), default=None,
              help="Augmentation preset, see below [light].")
@click.option("--no-augment", is_flag=True, default=False, help="Same as --augment none.")
@click.option("--hflip/--no-hflip", default=None,
              help="Mirror half the training images [off]: for natural photos, never for characters, digits or text.")
@click.option("--min-crop-scale", type=FiniteRange(0, 1, min_open=True), default=None,
              help="Smallest random-crop area fraction [the preset's: light 0.8, standard 0.5, strong 0.25].")
@click.option("--text-column", default=None, help="Text column of a CSV/TSV/JSONL [text].")
@click.option("--label-column", default=None, help="Label column of a CSV/TSV/JSONL [label].")
@click.option("--vocab-size", type=click.IntRange(MIN_VOCAB_SIZE), default=None,
              help="Largest vocabulary incl. <pad>, <unk> [20000].")
@click.option("--min-freq", type=click.IntRange(1), default=None, help="Words seen fewer times become <unk> [1].")
@click.option("--max-len", type=click.IntRange(1), default=None, help="Tokens kept per text [64].")
@click.option("--no-lower", is_flag=True, default=False, help="Keep letter case when tokenising.")
@click.option("--resume", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Continue a run from its last.pt (a larger --epochs extends it).")
@click.option("--overwrite", is_flag=True, default=False,
              help="Replace an existing run in --out (without --out: in runs/NAME, as --exist-ok does).")
@click.option("--quiet", "-q", is_flag=True, default=False, help="Only warnings and the final line.")
@click.option("--json", "as_json", is_flag=True, default=False, help="Print the run summary as JSON.")
def train(data: str | None, **opts: Any) -> None:
    """Train a classifier on an image folder (DATA_DIR/<class>/*.jpg) or a text table.

    \b
    Images: classes are the sorted sub-folder names; DATA_DIR/train + DATA_DIR/val
    are used when present, else a seeded, stratified --val-split. Unreadable
    images are skipped and listed in OUT/train.log. Text: a .csv/.tsv/.jsonl file;
    the word tokenizer is fitted on the training split and saved in the checkpoint.

    \b
    Augmentation presets (--augment; training images only, never evaluation):
      none      no augmentation: training sees the evaluation pixels
      light     random crops of 80-100% of the area, aspect 0.9-1.1; colours
                unchanged (the default)
      standard  crops of 50-100%, aspect 3/4-4/3, brightness, contrast and
                saturation x[0.8, 1.2]
      strong    crops of 25-100%, aspect 3/4-4/3, colour x[0.7, 1.3]
    No preset flips: a mirrored "b" is a "d". Add --hflip for natural photos.
    Measured on small real data sets in docs/benchmarks.md.

    \b
    Writes to --out (default: runs/exp, then runs/exp2, runs/exp3, ...; --name NAME
    for runs/NAME, runs/NAME2, ...): last.pt, best.pt, metrics.csv, summary.json,
    config.json, curves.png, confusion_matrix.png/.csv, per_class.csv, train.log.
    On a terminal each epoch shows a progress bar; otherwise one line per epoch and a
    heartbeat line at least every 30 s inside long epochs. -q: only warnings and the
    final line.

    \b
    Examples:
      edgecv train data/ --model mobilenet_v2 --weights mobilenet_v2.pth \\
          --freeze-backbone --unfreeze-at 3 --epochs 10 --out runs/exp1
      edgecv train photos/ --model simple_cnn --img-size 32 --augment standard --hflip
      edgecv train digits/ --model simple_cnn --img-size 32 --name digits   # runs/digits
      edgecv train shapes/ --model simple_cnn --img-size 16 --lr 2e-3 \\
          --model-arg dropout=0 --epochs 15 --batch-size 64 --out runs/shapes
      edgecv train sms.csv --model lstm_classifier --text-column text \\
          --label-column label --epochs 8 --out runs/sms
      edgecv train --resume runs/exp1/last.pt --epochs 20
      torchrun --nproc-per-node 2 -m edgecv train data/ --model simple_cnn --out runs/ddp
    """
    from edgecv.data import is_text_source
    from edgecv.training.trainer import train as run_training

    resume, overwrite, quiet, as_json = opts.pop("resume"), opts.pop("overwrite"), opts.pop("quiet"), opts.pop("as_json")
    name, exist_ok = opts.pop("name"), opts.pop("exist_ok")
    if data is None and resume is None:
        raise click.UsageError("missing DATA (an image folder or a .csv/.tsv/.jsonl file), or --resume last.pt")
    if name is not None and (opts["out"] is not None or resume is not None):
        raise click.UsageError("--name picks a folder under runs/; it cannot be combined with --out or --resume")
    if opts["no_augment"] and opts["augment"] not in (None, "none"):
        raise click.UsageError(f"--no-augment contradicts --augment {opts['augment']}")
    options = _config_options(opts)
    if resume is None and "model" not in options:
        options["model"] = "lstm_classifier" if data and is_text_source(data) else "mobilenet_v2"
    result = run_training(data, resume=resume, overwrite=overwrite, quiet=quiet, silent=as_json, name=name,
                          exist_ok=exist_ok, **options)
    if as_json:
        click.echo(json.dumps(result.summary(), indent=2))


def _config_options(opts: dict[str, Any]) -> dict[str, Any]:
    """CLI flags -> TrainConfig fields; only options the user gave (None = not given)."""
    flags = {"no_amp": ("amp", False), "no_augment": ("augment", "none"), "no_lower": ("lower", False),
             "freeze_backbone": ("freeze_backbone", True), "grayscale": ("grayscale", True)}
    out: dict[str, Any] = {}
    model_args = opts.pop("model_args", ())
    if model_args:
        out["model_kwargs"] = _parse_model_args(model_args)
    for key, value in opts.items():
        if key in flags:
            if value:
                name, setting = flags[key]
                out[name] = setting
        elif value is not None:
            out[key] = value
    return out


def _parse_model_args(items: tuple[str, ...]) -> dict[str, Any]:
    """``("width_mult=0.5", "dropout=0")`` -> ``{"width_mult": 0.5, "dropout": 0}`` (JSON values, else text)."""
    parsed: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE", param_hint="--model-arg")
        try:
            parsed[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            parsed[key.strip()] = raw
    return parsed
