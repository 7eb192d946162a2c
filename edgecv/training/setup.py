"""Building the pieces of a training run from a :class:`~edgecv.training.trainer.TrainConfig`:
data (splits, tokenizer, loaders), model (registry, weights, frozen backbone), optimiser,
schedule, device. Kept apart from the run loop in :mod:`edgecv.training.trainer` so each stays readable.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecv.data import is_text_source, read_text_table, scan_image_folder
from edgecv.errors import InputError, ModelError, short_message
from edgecv.hardware import usable_cores
from edgecv.io import check_writable_dir
from edgecv.preprocess import IMAGENET_MEAN, IMAGENET_STD, PreprocessSpec, default_spec
from edgecv.training.datasets import (
    ImageDataset,
    TextDataset,
    collate_images,
    collate_text,
    stratified_split,
)
from edgecv.training.distributed import DistInfo

if TYPE_CHECKING:
    from edgecv.training.config import TrainConfig


@dataclass
class DataBundle:
    """The data side of a run, image or text, in one shape, so the trainer needs no task switch."""

    task: str  # "image" | "text"
    classes: list[str]
    train_set: Any
    val_set: Any
    preprocess: PreprocessSpec | None = None
    tokenizer: Any = None
    skipped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    description: str = ""


def select_device(name: str) -> Any:
    """``auto`` -> cuda, then mps, then cpu; an explicit device that is not there is an error."""
    import torch

    name = (name or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {name}: CUDA is not available here (use --device cpu or auto)")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InputError("--device mps: Apple MPS is not available here (use --device cpu or auto)")
    try:
        return torch.device(name)
    except RuntimeError:
        raise InputError(f"--device {name!r}: expected auto, cpu, cuda, cuda:N or mps") from None


def image_spec(cfg: TrainConfig, model_name: str) -> PreprocessSpec:
    """The evaluation/runtime preprocessing for this run. ``stretch`` is the default resize:
    it keeps the whole picture (objects near the border survive, unlike a centre crop) and
    matches the training crops, which change aspect ratio anyway; ``--resize short_side``
    gives the ImageNet-style short side + centre crop instead."""
    from edgecv.models import get_model_spec

    spec = get_model_spec(model_name)
    size = cfg.img_size or (spec.input_size[-1] if len(spec.input_size) == 3 else 224)
    channels = 1 if cfg.grayscale else 3
    mean, std = spec.mean, spec.std
    if mean is None or std is None:
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    if len(mean) != channels:  # e.g. simple_cnn's MNIST (0.5,) used on colour images
        mean, std = (mean[0],) * channels, (std[0],) * channels
    return default_spec(size=size, channels=channels, mean=mean, std=std, resize=cfg.resize)


def build_data(cfg: TrainConfig, *, tokenizer_dict: dict[str, Any] | None = None) -> DataBundle:
    """Scan/read the data, split it (seeded, stratified) and build train/val data sets.

    A saved tokenizer (``tokenizer_dict``, when resuming) is reused instead of refitting.
    """
    if cfg.data is None:
        raise InputError("no training data given (expected DATA_DIR or a .csv/.tsv/.jsonl file)")
    if is_text_source(cfg.data):
        return _build_text(cfg, tokenizer_dict)
    return _build_images(cfg)


def _build_images(cfg: TrainConfig) -> DataBundle:
    from edgecv.training.augment import build_augment

    root = Path(cfg.data)  # type: ignore[arg-type]
    spec = image_spec(cfg, cfg.model)
    warnings: list[str] = []
    if (root / "train").is_dir() and (root / "val").is_dir():
        train_scan = scan_image_folder(root / "train")
        val_scan = scan_image_folder(root / "val", classes=train_scan.classes)
        classes = train_scan.classes
        train_samples, val_samples = train_scan.samples, val_scan.samples
        skipped = train_scan.skipped + val_scan.skipped
        warnings += train_scan.warnings + val_scan.warnings
        how = f"{root}/train + {root}/val"
    else:
        scan = scan_image_folder(root)
        classes, skipped, warnings = scan.classes, list(scan.skipped), list(scan.warnings)
        tr, va, split_warn = stratified_split([s[1] for s in scan.samples], val_fraction=cfg.val_split,
                                              seed=cfg.seed, names=classes)
        warnings += split_warn
        train_samples = [scan.samples[i] for i in tr]
        val_samples = [scan.samples[i] for i in va]
        how = f"{root} split {1 - cfg.val_split:.0%}/{cfg.val_split:.0%} (seed {cfg.seed})"
    if not val_samples:
        raise InputError(f"{root}: no validation images (need at least 2 images in some class, "
                         "or a DATA_DIR/val folder)")
    augment = build_augment(spec, cfg.augment, hflip=cfg.hflip, min_crop_scale=cfg.min_crop_scale)
    train_set = ImageDataset(train_samples, spec, transform=augment, seed=cfg.seed)
    val_set = ImageDataset(val_samples, spec, transform=None, seed=cfg.seed)
    desc = (f"{len(train_samples)} train / {len(val_samples)} val images, {len(classes)} classes ({how}); "
            f"augment {cfg.augment}{' + hflip' if cfg.hflip else ''}")
    return DataBundle("image", classes, train_set, val_set, preprocess=spec, skipped=skipped,
                      warnings=warnings, description=desc)


def _build_text(cfg: TrainConfig, tokenizer_dict: dict[str, Any] | None) -> DataBundle:
    from edgecv.tokenizer import WordTokenizer

    table = read_text_table(cfg.data, text_column=cfg.text_column, label_column=cfg.label_column)  # type: ignore[arg-type]
    tr, va, _ = stratified_split(table.labels, val_fraction=cfg.val_split, seed=cfg.seed, names=table.classes)
    if not va:
        raise InputError(f"{cfg.data}: too few rows for a validation split (need at least 2 rows of some label)")
    train_texts = [table.texts[i] for i in tr]
    if tokenizer_dict is not None:
        tokenizer = WordTokenizer.from_dict(tokenizer_dict)
    else:  # fitted on the training split only: validation words stay unseen, as in deployment
        tokenizer = WordTokenizer.fit(train_texts, vocab_size=cfg.vocab_size, min_freq=cfg.min_freq,
                                      lower=cfg.lower, max_len=cfg.max_len)
    train_set = TextDataset([tokenizer.encode(t) for t in train_texts], [table.labels[i] for i in tr])
    val_set = TextDataset([tokenizer.encode(table.texts[i]) for i in va], [table.labels[i] for i in va])
    desc = (f"{len(tr)} train / {len(va)} val texts, {len(table.classes)} classes, "
            f"vocabulary {tokenizer.vocab_size} words ({cfg.data} split {1 - cfg.val_split:.0%}/{cfg.val_split:.0%})")
    return DataBundle("text", table.classes, train_set, val_set, tokenizer=tokenizer,
                      warnings=list(table.warnings), description=desc)


def make_loaders(data: DataBundle, cfg: TrainConfig, dist: DistInfo, device: Any) -> tuple[Any, Any, Any]:
    """Train loader over a (distributed) sampler that reshuffles per epoch from the seed, and a
    val loader where each rank takes a disjoint stride of the set (no padding duplicates, so
    summed metrics are exact)."""
    from torch.utils.data import DataLoader, DistributedSampler, Subset

    workers = default_workers(data.task) if cfg.workers is None else cfg.workers
    collate = collate_images if data.task == "image" else collate_text
    # DistributedSampler with explicit rank/world also serves single-process runs: one code path.
    sampler = DistributedSampler(data.train_set, num_replicas=dist.world_size, rank=dist.rank,
                                 shuffle=True, seed=cfg.seed, drop_last=False)
    pin = device.type == "cuda"
    common = {"num_workers": workers, "collate_fn": collate, "pin_memory": pin}
    if workers > 0:
        common["prefetch_factor"] = 4
    train_loader = DataLoader(data.train_set, batch_size=cfg.batch_size, sampler=sampler,
                              drop_last=False, **common)
    val_set = data.val_set
    if dist.enabled:
        val_set = Subset(data.val_set, list(range(dist.rank, len(data.val_set), dist.world_size)))
    val_loader = DataLoader(val_set, batch_size=cfg.batch_size * 2, shuffle=False, **common)
    return train_loader, val_loader, sampler


def placeholder_input(data: DataBundle) -> Any:
    """A one-sample model input (an all-zero image, or one unknown word) that a DDP rank trains
    on with zero weight when every image of its batch failed to decode, so it still meets the
    other ranks in the gradient all-reduce (see :func:`edgecv.training.loop.train_one_epoch`)."""
    import torch

    from edgecv.tokenizer import UNK_ID

    if data.task == "image" and data.preprocess is not None:
        return torch.zeros(tuple(data.preprocess.input_shape(1)), dtype=torch.float32)  # (1, C, H, W)
    return torch.full((1, 1), UNK_ID, dtype=torch.int64)  # (1, T)


def default_workers(task: str) -> int:
    """Image decoding/augmentation runs in worker processes (up to 4, one core kept for the
    training step); texts are tokenised up front, so they load in the main process."""
    if task == "text":
        return 0
    return max(1, min(4, usable_cores()))


def build_model(cfg: TrainConfig, data: DataBundle) -> Any:
    """Create the registered model for this data set (class count, channels, size, vocabulary)."""
    from edgecv.models import create_model, get_model_spec
    from edgecv.models.registry import builder_parameters

    spec = get_model_spec(cfg.model)
    if spec.task != data.task:
        raise ModelError(f"model {cfg.model!r} is a {spec.task} model but {cfg.data} is {data.task} data")
    params = builder_parameters(cfg.model)
    kwargs: dict[str, Any] = dict(cfg.model_kwargs or {})
    kwargs["num_classes"] = len(data.classes)
    if data.task == "image":
        assert data.preprocess is not None
        if "in_channels" in params:
            kwargs["in_channels"] = data.preprocess.channels
        elif data.preprocess.channels != spec.input_size[0]:
            raise InputError(f"model {cfg.model!r} takes {spec.input_size[0]}-channel images; drop --grayscale")
        if "input_size" in params:
            kwargs["input_size"] = data.preprocess.size[0]
        if "final_relu" in params and "final_relu" not in kwargs:
            # SqueezeNet's ReLU after a freshly initialised head can switch classes off for every
            # input (no gradient, training never starts); it holds no weights, so torchvision
            # checkpoints still load. --model-arg final_relu=true restores torchvision's graph.
            kwargs["final_relu"] = False
    else:
        kwargs["vocab_size"] = data.tokenizer.vocab_size
        if "max_len" in params and "max_len" not in kwargs:
            kwargs["max_len"] = max(data.tokenizer.max_len, 1)
    try:
        return create_model(cfg.model, **kwargs)
    except ValueError as exc:  # builders validate sizes, e.g. simple_cnn's multiple of 4
        raise ModelError(f"model {cfg.model!r}: {exc}") from None


def set_backbone_frozen(model: Any, frozen: bool) -> int:
    """Freeze (or unfreeze) everything but the classifier head; returns the trainable count."""
    from edgecv.models.weights import freeze_backbone, head_parameter_names

    if frozen and not head_parameter_names(model):
        raise ModelError(f"model {getattr(model, 'edgecv_name', '?')!r}: no head parameters to train")
    freeze_backbone(model, frozen=frozen)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def build_optimizer(cfg: TrainConfig, model: Any, task: str) -> Any:
    """AdamW (default) or SGD with Nesterov momentum. All parameters are registered even when
    frozen (they get no gradient, so no update), so unfreezing later needs no new optimiser."""
    import torch

    lr = cfg.lr if cfg.lr is not None else default_lr(cfg.optimizer)
    params = list(model.parameters())
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay)
    raise InputError(f"--optimizer {cfg.optimizer!r}: expected 'adamw' or 'sgd'")


def default_lr(optimizer: str) -> float:
    """A learning rate that works for small from-scratch runs; SGD needs a much larger one than AdamW."""
    return 0.05 if optimizer == "sgd" else 1e-3


class WarmupCosine:
    """LR factor per optimiser step: linear warm-up from 1 % to 100 %, then cosine to 0.
    A callable object (not a lambda) so the scheduler's state dict stays plain data."""

    def __init__(self, total_steps: int, warmup_steps: int) -> None:
        self.total_steps = max(1, int(total_steps))
        self.warmup_steps = max(0, min(int(warmup_steps), self.total_steps - 1))

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return 0.01 + 0.99 * step / self.warmup_steps
        progress = (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def build_scheduler(cfg: TrainConfig, optimizer: Any, steps_per_epoch: int) -> Any:
    """Per-step :class:`WarmupCosine` (stepped every batch, so short runs still warm up smoothly)."""
    import torch

    schedule = WarmupCosine(cfg.epochs * steps_per_epoch, round(cfg.warmup_epochs * steps_per_epoch))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


RUNS_DIR = "runs"  # numbered run folders go here: runs/exp, runs/exp2, ... (as in YOLO's runs/train/exp)
DEFAULT_RUN_NAME = "exp"


def claim_run_dir(name: str | None = None, *, root: str | Path = RUNS_DIR, exist_ok: bool = False) -> Path:
    """The folder of a run started without ``--out``: ``root/NAME``, else ``root/NAME2``,
    ``root/NAME3``, ... (the first that does not exist yet), so training twice never refuses and
    never replaces an earlier run. The folder is created here, atomically (``mkdir`` without
    ``exist_ok``), so two runs started at once never share one. ``exist_ok`` takes ``root/NAME``
    as it is (a run there is replaced)."""
    name = DEFAULT_RUN_NAME if name is None else name
    if not name or name in (".", "..") or any(sep in name for sep in ("/", "\\")):
        raise InputError(f"--name {name!r}: expected a folder name without '/' (the run goes to {root}/NAME)")
    base = Path(root) / name
    if exist_ok:
        prepare_out(base, overwrite=True)
        return base
    check_writable_dir(base, option="--name")
    for number in itertools.count(1):
        candidate = base if number == 1 else base.with_name(f"{name}{number}")
        try:
            candidate.mkdir(parents=True, exist_ok=False)
        except FileExistsError:
            continue
        except OSError as exc:
            raise InputError(f"--name {name}: cannot create {candidate} ({short_message(exc)}); "
                             "expected a writable folder") from None
        return candidate
    raise AssertionError("unreachable")  # itertools.count never ends


def prepare_out(out: Path, *, overwrite: bool) -> None:
    """Check ``out`` can take a run and create it, before any data is read: a file in the way or
    a folder that cannot be written must fail now, not at the first checkpoint an epoch later."""
    check_writable_dir(out, option="--out")
    if (out / "last.pt").exists() and not overwrite:
        raise InputError(f"{out}: already holds a training run (last.pt); continue it with "
                         f"--resume {out / 'last.pt'}, replace it with --overwrite, or leave out --out "
                         f"to train into the next free {RUNS_DIR}/{DEFAULT_RUN_NAME}N")
    for name in ("last.pt", "best.pt", "train.log"):  # an existing run is replaced file by file
        if (out / name).is_dir():
            raise InputError(f"--out {out}: {out / name} is a folder; expected a run folder where "
                             f"{name} can be written")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a race with the check above, or a file system that refuses folders
        raise InputError(f"--out {out}: cannot create the folder ({short_message(exc)}); "
                         "expected a writable folder") from None
