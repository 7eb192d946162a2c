"""Is the training data pipeline fast enough to keep the model busy?

Measures, in one process run on the CPU:
  1. data pipeline: images/s of JPEG load + training augmentation + collate through the
     DataLoader with edgecv's default worker count (what ``edgecv train`` uses);
  2. training step: images/s of forward + backward + AdamW step for mobilenet_v2 at 224
     on ready-made batches;
  3. end to end: images/s of the two together (the real loader feeding real steps).
The pipeline should be >= 1.5x the step throughput. Results go to
``benchmarks/results/train_throughput[_threadsN].{json,md}``.

    python benchmarks/train_throughput.py                 # defaults: batch 32, 224 px
    python benchmarks/train_throughput.py --steps 8 --batches 24 --workers 2 --threads 1
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _load() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def make_jpeg_folder(root: Path, *, n: int, size: tuple[int, int] = (320, 240)) -> Path:
    """``n`` 320x240 JPEGs in 4 class folders: a realistic decode + resize cost per image."""
    import cv2

    from edgecv.demo.synthetic import render_shape_image

    rng = np.random.default_rng(0)
    classes = ("circle", "square", "star", "triangle")
    for i in range(n):
        name = classes[i % len(classes)]
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        image = render_shape_image(name, size=(size[1], size[0]), rng=rng)
        cv2.imwrite(str(folder / f"{i:05d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return root


def bench_pipeline(root: Path, *, img_size: int, batch: int, batches: int, workers: int) -> dict:
    from torch.utils.data import DataLoader, RandomSampler

    from edgecv.data import scan_image_folder
    from edgecv.preprocess import default_spec
    from edgecv.training.augment import TrainAugment
    from edgecv.training.datasets import ImageDataset, collate_images

    spec = default_spec(size=img_size, resize="stretch")
    scan = scan_image_folder(root)
    dataset = ImageDataset(scan.samples, spec, transform=TrainAugment(spec=spec), seed=0)
    sampler = RandomSampler(dataset, replacement=True, num_samples=batch * (batches + 4))
    loader = DataLoader(dataset, batch_size=batch, sampler=sampler, num_workers=workers,
                        collate_fn=collate_images, prefetch_factor=4 if workers else None)
    it = iter(loader)
    for _ in range(4):  # worker start-up and first batches are not steady state
        next(it)
    start = time.perf_counter_ns()
    images = 0
    for b in it:
        images += int(b["x"].shape[0])
    seconds = (time.perf_counter_ns() - start) / 1e9
    return {"images": images, "seconds": round(seconds, 3), "images_per_s": round(images / seconds, 1),
            "workers": workers}


def bench_step(*, img_size: int, batch: int, steps: int, loader=None) -> dict:
    import torch

    from edgecv.models import create_model

    torch.manual_seed(0)
    model = create_model("mobilenet_v2", num_classes=4)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    criterion = torch.nn.CrossEntropyLoss()
    x = torch.randn(batch, 3, img_size, img_size)
    y = torch.randint(0, 4, (batch,))
    source = iter(loader) if loader is not None else None
    times, images = [], 0
    for i in range(steps + 2):  # 2 warm-up steps (allocator, oneDNN primitive caches)
        t0 = time.perf_counter_ns()
        if source is not None:
            b = next(source)
            x, y = b["x"], b["y"]
        optimizer.zero_grad(set_to_none=True)
        loss = criterion(model(x), y)  # (B, 4) logits
        loss.backward()
        optimizer.step()
        if i >= 2:
            times.append((time.perf_counter_ns() - t0) / 1e9)
            images += int(x.shape[0])
    total = sum(times)
    return {"steps": steps, "batch": batch, "p50_step_s": round(statistics.median(times), 4),
            "seconds": round(total, 3), "images_per_s": round(images / total, 1),
            "images_per_s_p50": round(batch / statistics.median(times), 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--batches", type=int, default=24, help="pipeline batches timed")
    parser.add_argument("--steps", type=int, default=8, help="training steps timed")
    parser.add_argument("--images", type=int, default=256, help="JPEGs generated")
    parser.add_argument("--workers", type=int, default=None, help="default: what edgecv train uses")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--no-end-to-end", action="store_true")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args(argv)

    import torch

    from edgecv.training.setup import default_workers

    if args.threads:
        torch.set_num_threads(args.threads)
    workers = default_workers("image") if args.workers is None else args.workers
    load_before = _load()
    with tempfile.TemporaryDirectory() as tmp:
        root = make_jpeg_folder(Path(tmp) / "jpegs", n=args.images)
        pipeline = bench_pipeline(root, img_size=args.img_size, batch=args.batch, batches=args.batches,
                                  workers=workers)
        print(f"data pipeline : {pipeline['images_per_s']:8.1f} images/s  (load + augment + collate, "
              f"{workers} workers, {pipeline['images']} images)", flush=True)
        step = bench_step(img_size=args.img_size, batch=args.batch, steps=args.steps)
        print(f"training step : {step['images_per_s']:8.1f} images/s  (mobilenet_v2 @ {args.img_size}, "
              f"batch {args.batch}, p50 {step['p50_step_s']:.3f} s/step)", flush=True)
        e2e = None
        if not args.no_end_to_end:
            from torch.utils.data import DataLoader, RandomSampler

            from edgecv.data import scan_image_folder
            from edgecv.preprocess import default_spec
            from edgecv.training.augment import TrainAugment
            from edgecv.training.datasets import ImageDataset, collate_images

            spec = default_spec(size=args.img_size, resize="stretch")
            ds = ImageDataset(scan_image_folder(root).samples, spec, transform=TrainAugment(spec=spec))
            loader = DataLoader(ds, batch_size=args.batch, num_workers=workers, collate_fn=collate_images,
                                sampler=RandomSampler(ds, replacement=True, num_samples=args.batch * (args.steps + 2)),
                                prefetch_factor=4 if workers else None)
            e2e = bench_step(img_size=args.img_size, batch=args.batch, steps=args.steps, loader=loader)
            print(f"end to end    : {e2e['images_per_s']:8.1f} images/s  (real loader feeding the steps)", flush=True)
    ratio = pipeline["images_per_s"] / step["images_per_s"]
    verdict = "OK" if ratio >= 1.5 else "BOTTLENECK"
    print(f"pipeline / step = {ratio:.2f}x  (target >= 1.5x): {verdict}")
    result = {
        "benchmark": "train_throughput", "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "cpu": _cpu_model(), "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "python": sys.version.split()[0], "torch": torch.__version__,
        "opencv": __import__("cv2").__version__, "numpy": np.__version__,
        "load_avg_before": load_before, "load_avg_after": _load(),
        "img_size": args.img_size, "batch": args.batch, "pipeline": pipeline, "train_step": step,
        "end_to_end": e2e, "ratio_pipeline_over_step": round(ratio, 2), "target_ratio": 1.5, "verdict": verdict,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "train_throughput" + (f"_threads{args.threads}" if args.threads else "")
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    md = [
        "# Training throughput (CPU)", "",
        f"{result['date_utc']} UTC; {result['cpu']}, {result['usable_cpus']} usable CPUs, torch {result['torch']} "
        f"({result['torch_threads']} threads), OpenCV {result['opencv']}; load average before/after "
        f"{load_before} / {result['load_avg_after']}.", "",
        "| measurement | images/s | notes |", "|---|---:|---|",
        f"| data pipeline (JPEG 320x240 load + augment + collate) | {pipeline['images_per_s']} | {workers} workers |",
        f"| training step, mobilenet_v2 @ {args.img_size} | {step['images_per_s']} | batch {args.batch}, "
        f"p50 {step['p50_step_s']} s/step |",
    ]
    if e2e:
        md.append(f"| end to end (loader feeding steps) | {e2e['images_per_s']} | same process |")
    md += ["", f"Pipeline / step = **{ratio:.2f}x** (target >= 1.5x): {verdict}.", ""]
    (out / f"{stem}.md").write_text("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
