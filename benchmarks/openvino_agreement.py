"""What OpenVINO's default precision costs in top-1 on real photos, for trained 224 px models.

``benchmarks/openvino.py`` times the zoo models with random weights, whose top-1 margins are too
small to say anything about bf16 (every image lands in one class, or near-ties flip). This script
gives mobilenet_v2 and squeezenet1_1 real margins by training them, the way a user would, and
then compares OpenVINO's default precision (bf16 on CPUs with bf16 units) and forced f32 with
ONNX Runtime fp32 on every held-apart image:

1. data: the ``photos`` set of ``benchmarks/augment.py`` -- patches of the eight colour photos
   scikit-image carries (no download), 8 classes, 120 training and 40 validation patches per
   class from disjoint cells of each photo, here kept at their own size (64-128 px; the model's
   preprocessing resizes them to 256 and crops 224);
2. ``edgecv train DATA --model NAME --img-size 224`` (random init: no pretrained weights can be
   downloaded here), then ``edgecv export best.pt -o NAME.onnx`` -- the real CLI, in subprocesses;
3. ``edgecv.load(NAME.onnx, provider=...)`` for ``cpu`` (ONNX Runtime fp32), ``openvino``
   (its default) and ``openvino`` with ``precision="f32"``; every validation image is
   classified by each; reported: top-1 accuracy of each, top-1 agreement with ONNX Runtime fp32,
   max |diff| of the probabilities, and the fp32 top-1 margin (p50 and 5th percentile).

Target (the OpenVINO issue): top-1 agreement >= 99 % with fp32 on real images.

    pip install scikit-image      # benchmark only
    python benchmarks/openvino_agreement.py                  # ~15 min on 2 CPU cores
    python benchmarks/openvino_agreement.py --epochs 2 --models squeezenet1_1
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

_HERE = Path(__file__).resolve().parent
# run as a script, benchmarks/ is first on sys.path, and benchmarks/openvino.py would shadow
# the openvino package: import augment from its path instead of putting benchmarks/ first
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
RESULTS = _HERE / "results"
MODELS = ("mobilenet_v2", "squeezenet1_1")
RUNTIMES = {"ORT fp32": {"provider": "cpu"}, "OpenVINO default": {"provider": "openvino"},
            "OpenVINO f32": {"provider": "openvino", "precision": "f32"}}


def photos(root: Path) -> Path:
    import importlib.util

    spec = importlib.util.spec_from_file_location("edgecv_bench_augment", _HERE / "augment.py")
    augment = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(augment)  # type: ignore[union-attr]
    return augment.make_photo_patches(root, patch_side=None)


def edgecv_cli(*args: str) -> None:
    """One edgecv command in a subprocess, as a user runs it; stops the benchmark if it fails."""
    cmd = [sys.executable, "-m", "edgecv", *args]
    print("$ edgecv " + " ".join(args), file=sys.stderr, flush=True)
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"edgecv {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    print(done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "", file=sys.stderr, flush=True)


def train_and_export(name: str, data: Path, work: Path, epochs: int) -> tuple[Path, float]:
    out = work / f"run-{name}"
    t0 = time.perf_counter()
    edgecv_cli("train", str(data), "--model", name, "--img-size", "224", "--epochs", str(epochs),
               "--seed", "0", "--device", "cpu", "--out", str(out), "--quiet")
    edgecv_cli("export", str(out / "best.pt"), "-o", str(work / f"{name}.onnx"), "--data", str(data / "val"))
    return work / f"{name}.onnx", time.perf_counter() - t0


def classify_all(model: Path, data: Path, threads: int) -> dict[str, Any]:
    """Probabilities of every validation image under each runtime, plus the true labels."""
    import edgecv
    from edgecv.data import scan_image_folder
    from edgecv.preprocess import load_image
    from edgecv.runtimes.engines.base import EngineOptions

    scan = scan_image_folder(data)
    images = [load_image(path) for path, _ in scan.samples]
    truth = np.array([label for _, label in scan.samples])
    probs, described = {}, {}
    for key, kw in RUNTIMES.items():
        clf = edgecv.load(model, engine=EngineOptions(threads=threads, **kw))
        described[key] = clf.precision
        probs[key] = np.concatenate([clf.postprocess(clf.run(clf.preprocess(images[i:i + 8]))[0])
                                     for i in range(0, len(images), 8)])
    return {"truth": truth, "probs": probs, "precision": described, "classes": scan.classes}


def agreement_rows(name: str, found: dict[str, Any]) -> list[dict[str, Any]]:
    ref = found["probs"]["ORT fp32"]
    top2 = np.sort(ref, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    rows = []
    for key, p in found["probs"].items():
        rows.append({"model": name, "runtime": key, "precision": found["precision"][key], "images": len(p),
                     "top1_acc": float((p.argmax(1) == found["truth"]).mean()),
                     "top1_agreement": float((p.argmax(1) == ref.argmax(1)).mean()),
                     "max_abs_diff": float(np.abs(p - ref).max()),
                     "margin_p50": float(np.median(margin)), "margin_p5": float(np.percentile(margin, 5))})
    return rows


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = ["# OpenVINO vs ONNX Runtime fp32: top-1 agreement on real photos (trained models)", "",
             f"{meta['cpu']}; {meta['threads']} threads; openvino {meta['openvino']}, onnxruntime "
             f"{meta['onnxruntime']}; {meta['epochs']} epochs of `edgecv train` at 224 px per model; "
             f"{meta['seconds']:.0f} s in all", "",
             "| model | runtime | precision | images | top-1 accuracy | top-1 agreement with ORT fp32 | "
             "max abs diff (probabilities) | fp32 top-1 margin p50 / p5 |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['runtime']} | {r['precision']} | {r['images']} | "
                     f"{100 * r['top1_acc']:.1f} % | **{100 * r['top1_agreement']:.1f} %** | {r['max_abs_diff']:.2e} | "
                     f"{r['margin_p50']:.3f} / {r['margin_p5']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", type=Path, default=None, help="keep data, runs and models here")
    args = ap.parse_args(argv)

    import tempfile

    import onnxruntime
    import openvino

    from edgecv.hardware import read_cpuinfo

    started = time.perf_counter()
    work = args.work or Path(tempfile.mkdtemp(prefix="edgecv-ov-agree-"))
    data = work / "photos"
    if not (data / "val").is_dir():
        photos(data)
    rows, train_s = [], {}
    for name in args.models.split(","):
        model = work / f"{name}.onnx"
        if not model.exists():
            model, train_s[name] = train_and_export(name, data, work, args.epochs)
        rows += agreement_rows(name, classify_all(model, data / "val", args.threads))
    meta = {"cpu": read_cpuinfo()[0], "threads": args.threads, "epochs": args.epochs,
            "openvino": openvino.get_version().split("-")[0], "onnxruntime": onnxruntime.__version__,
            "train_and_export_s": train_s, "seconds": time.perf_counter() - started,
            "load_average": os.getloadavg(), "work": str(work)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "openvino_agreement.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    text = markdown(rows, meta)
    (RESULTS / "openvino_agreement.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
