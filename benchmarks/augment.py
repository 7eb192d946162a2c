"""Which ``--augment`` preset should be the default? Every preset on small real data sets.

The old default (random resized crops down to 25 % of the area, horizontal flips, colour
jitter) cost a 10-class handwritten-character set three points of validation accuracy at the
default epochs. This script trains ``simple_cnn`` with every preset on small real data sets
that installed packages carry (no network), with the same seeds, and prints one table:

* ``digits``: scikit-learn's bundled ``load_digits`` (1,797 handwritten digits, 8x8 grey),
  upscaled to 32x32 RGB PNGs in one folder per class: characters, where mirroring changes
  the meaning and the glyph fills the frame.
* ``photos``: patches of the colour photos bundled with scikit-image (``skimage.data``:
  astronaut, cat, coffee, rocket, motorcycle, Hubble deep field, retina, immunohistochemistry);
  the class is the photo. Each photo is cut into a 4x4 grid; validation patches come from four
  cells (one per row and column) that no training patch touches, so the model must recognise
  unseen parts of a scene, as with real photos. Patch sides vary from half to a whole cell.

    pip install scikit-learn scikit-image      # benchmark only; not needed by edgecv
    python benchmarks/augment.py                # both data sets, seeds 0 1 2, default epochs
    python benchmarks/augment.py --datasets digits --seeds 0 --presets none light

Results go to ``benchmarks/results/augment.{json,md}``.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "stereo_motorcycle", "hubble_deep_field", "retina",
          "immunohistochemistry")
VAL_CELLS = {(0, 1), (1, 3), (2, 0), (3, 2)}  # one per row and column of the 4x4 grid
PATCH_SIDE = 48  # pixels a patch is saved at (training resizes to --img-size)


def make_digits(root: Path, *, side: int = 32) -> Path:
    """scikit-learn's 1,797 handwritten digits as dark-on-light RGB PNGs, ``root/<digit>/*.png``."""
    import cv2
    from sklearn.datasets import load_digits

    digits = load_digits()
    for i, (image, label) in enumerate(zip(digits.images, digits.target)):
        grey = (255 - image * (255 / 16)).astype(np.uint8)  # 0-16 ink -> 255-0 grey
        big = cv2.resize(grey, (side, side), interpolation=cv2.INTER_LINEAR)
        folder = root / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{i:04d}.png"), cv2.cvtColor(big, cv2.COLOR_GRAY2BGR))
    return root


def _photo(name: str) -> np.ndarray:
    """One bundled scikit-image photo as BGR uint8."""
    import skimage.data

    rgb = getattr(skimage.data, name)()
    if isinstance(rgb, tuple):  # stereo_motorcycle: (left, right, disparity)
        rgb = rgb[0]
    return np.ascontiguousarray(rgb[:, :, :3][:, :, ::-1])


def make_photo_patches(root: Path, *, train_per_class: int = 120, val_per_class: int = 40, seed: int = 0,
                       patch_side: int | None = PATCH_SIDE) -> Path:
    """Patches of each bundled photo in ``root/train/<photo>`` and ``root/val/<photo>``, from
    disjoint cells of a 4x4 grid (see the module docstring), saved at ``patch_side`` pixels
    (None: at their own size)."""
    import cv2

    rng = np.random.default_rng(seed)
    for name in PHOTOS:
        image = _photo(name)
        cell_h, cell_w = image.shape[0] // 4, image.shape[1] // 4
        cells = {"train": [(r, c) for r in range(4) for c in range(4) if (r, c) not in VAL_CELLS],
                 "val": sorted(VAL_CELLS)}
        for split, count in (("train", train_per_class), ("val", val_per_class)):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                r, c = cells[split][int(rng.integers(len(cells[split])))]
                side = int(rng.integers(min(cell_h, cell_w) // 2, min(cell_h, cell_w) + 1))
                top = r * cell_h + int(rng.integers(0, cell_h - side + 1))
                left = c * cell_w + int(rng.integers(0, cell_w - side + 1))
                patch = image[top : top + side, left : left + side]
                if patch_side is not None:
                    patch = cv2.resize(patch, (patch_side, patch_side), interpolation=cv2.INTER_AREA)
                cv2.imwrite(str(folder / f"{i:04d}.png"), patch)
    return root


DATASETS = {"digits": make_digits, "photos": make_photo_patches}


def count_images(root: Path) -> tuple[int, int]:
    """(images, classes) under an image folder (with or without train/ + val/)."""
    images = sum(1 for _ in root.rglob("*.png"))
    base = root / "train" if (root / "train").is_dir() else root
    return images, sum(1 for p in base.iterdir() if p.is_dir())


def run_one(data: Path, out: Path, *, preset: str, hflip: bool, seed: int, epochs: int | None,
            img_size: int) -> dict:
    """One seeded CPU training run; returns the best and final validation accuracy."""
    import edgecv

    options = {"epochs": epochs} if epochs else {}
    start = time.perf_counter()
    result = edgecv.train(str(data), model="simple_cnn", img_size=img_size, seed=seed, augment=preset,
                          hflip=hflip, device="cpu", workers=0, out=str(out), silent=True, **options)
    return {"best_val_acc": result.best_val_acc, "final_val_acc": result.history[-1]["val_acc"],
            "final_train_acc": result.history[-1]["train_acc"], "epochs": len(result.history),
            "seconds": round(time.perf_counter() - start, 1)}


def variants(presets: list[str], hflip_on: list[str]) -> list[tuple[str, bool]]:
    """(preset, hflip) pairs: every preset without a flip, then the flipped ones asked for."""
    return [(p, False) for p in presets] + [(p, True) for p in hflip_on]


def markdown(rows: list[dict], columns: list[str]) -> str:
    """The table of ``docs/benchmarks.md``: per data set and seed, then the mean over seeds, the
    validation accuracy of each preset as "best epoch / last epoch" (``best.pt`` holds the best,
    which ``edgecv train`` reports; the last is free of picking the best of several epochs)."""
    head = ["dataset", "images", "classes", "epochs", "seed", *columns]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        group = [r for r in rows if r["dataset"] == dataset]
        mean = {**group[0], "seed": "mean",
                "best": {c: float(np.mean([r["best"][c] for r in group])) for c in columns},
                "final": {c: float(np.mean([r["final"][c] for r in group])) for c in columns}}
        for row in group + ([mean] if len(group) > 1 else []):
            cells = [row["dataset"], str(row["images"]), str(row["classes"]), str(row["epochs"]), str(row["seed"])]
            cells += ["-" if np.isnan(row["best"][c]) else f"{row['best'][c]:.1%} / {row['final'][c]:.1%}"
                      for c in columns]
            if row["seed"] == "mean":
                cells = [f"**{c}**" for c in cells]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from edgecv.training.augment import AUGMENT_PRESETS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--presets", nargs="*", default=list(AUGMENT_PRESETS), choices=list(AUGMENT_PRESETS))
    parser.add_argument("--hflip", nargs="*", default=["standard"], choices=list(AUGMENT_PRESETS),
                        help="presets also run with --hflip, on the --flip-datasets")
    parser.add_argument("--flip-datasets", nargs="*", default=["photos"], choices=list(DATASETS),
                        help="data sets that get the --hflip runs (not digits by default: a mirrored digit is wrong)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None, help="default: edgecv train's default")
    parser.add_argument("--img-size", type=int, default=32)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--result-name", default="augment", help="writes OUT/RESULT_NAME.{json,md}")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    rows, runs = [], []
    columns = list(args.presets) + [f"{p} + hflip" for p in args.hflip]
    with tempfile.TemporaryDirectory(prefix="edgecv-augment-") as tmp:
        for dataset in args.datasets:
            data = DATASETS[dataset](Path(tmp) / dataset)
            images, classes = count_images(data)
            for seed in args.seeds:
                row = {"dataset": dataset, "images": images, "classes": classes, "seed": seed, "best": {},
                       "final": {}}
                flips = args.hflip if dataset in args.flip_datasets else []
                for preset, hflip in variants(args.presets, flips):
                    column = f"{preset} + hflip" if hflip else preset
                    got = run_one(data, Path(tmp) / "runs" / f"{dataset}-{seed}-{column}".replace(" ", ""),
                                  preset=preset, hflip=hflip, seed=seed, epochs=args.epochs, img_size=args.img_size)
                    row["best"][column], row["final"][column] = got["best_val_acc"], got["final_val_acc"]
                    row["epochs"] = got["epochs"]
                    runs.append({"dataset": dataset, "seed": seed, "preset": preset, "hflip": hflip, **got})
                    print(f"{dataset:7s} seed {seed}  {column:16s} final val acc {got['final_val_acc']:.4f}  "
                          f"best {got['best_val_acc']:.4f}  train acc {got['final_train_acc']:.4f}  "
                          f"{got['seconds']:.0f}s", flush=True)
                for column in columns:
                    row["best"].setdefault(column, float("nan"))
                    row["final"].setdefault(column, float("nan"))
                rows.append(row)
    table = markdown(rows, columns)
    print("\n" + table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from importlib.metadata import version

    meta = {"python": sys.version.split()[0], "torch": torch.__version__, "machine": platform.machine(),
            "scikit-learn": version("scikit-learn"), "scikit-image": version("scikit-image"),
            "command": " ".join(["python", "benchmarks/augment.py", *(argv or sys.argv[1:])])}
    (out / f"{args.result_name}.json").write_text(json.dumps({"meta": meta, "runs": runs, "rows": rows}, indent=2)
                                                   + "\n")
    (out / f"{args.result_name}.md").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
