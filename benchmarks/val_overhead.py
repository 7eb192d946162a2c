"""What ``edgecv val`` costs per image beyond the work itself: val vs a bare loop on the same files.

The bare loop is what one would write by hand: for each batch, decode the files
(``edgecv.preprocess.load_image``), preprocess them (``preprocess_image``, the same spec), stack
and ``session.run`` (same ONNX Runtime settings and threads), argmax, count the hits. ``edgecv
val`` (:func:`edgecv.runtimes.evaluation.evaluate.evaluate`) does the same plus everything it reports
(top-k, confusion matrix, per-class figures, per-call latency), with decoding and preprocessing on
a producer thread that overlaps inference, as the stream loop does. Both are timed end to end
(model load included) in interleaved rounds; the medians per image are compared.

Model: MobileNetV2 (random weights: speed does not depend on them) at 224 px with an edgecv
contract (4 class names, the default preprocessing), on 400 generated 256 px PNGs.

Usage::

    python benchmarks/val_overhead.py                 # writes benchmarks/results/val_overhead.{json,md}
    python benchmarks/val_overhead.py --images 100 --rounds 2
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
CLASSES = ["circle", "square", "triangle", "star"]


def build_model(dest: Path, *, model_name: str) -> Path:
    """A randomly initialised image model with a contract (labels + preprocessing)."""
    import onnx
    import torch

    from edgecv.contract import ModelContract, embed_contract
    from edgecv.exporters.onnx_export import export_onnx
    from edgecv.models import create_model
    from edgecv.preprocess import default_spec

    torch.manual_seed(0)
    model = create_model(model_name, num_classes=len(CLASSES)).eval()
    path = export_onnx(model, dest, input_shape=(3, 224, 224))
    proto = onnx.load(str(path))
    embed_contract(proto, ModelContract(task="image", labels=list(CLASSES), preprocess=default_spec(size=224),
                                        io={"input": "input", "output": "logits", "probabilities": False,
                                            "attention": None}))
    onnx.save(proto, str(path))
    return path


def bare_loop(model: Path, data: Path, *, batch: int, threads: int) -> tuple[float, int]:
    """(seconds, images): decode + preprocess + session.run, one batch after the other."""
    from edgecv.contract import ModelContract
    from edgecv.data import scan_image_folder
    from edgecv.preprocess import load_image, preprocess_image
    from edgecv.runtimes.engines.session import create_session

    t0 = time.perf_counter()
    session = create_session(model, provider="cpu", threads=threads).session
    spec = ModelContract.from_metadata(session.get_modelmeta().custom_metadata_map).preprocess
    scan = scan_image_folder(data)
    hits = 0
    for start in range(0, len(scan.samples), batch):
        chunk = scan.samples[start:start + batch]
        x = np.stack([preprocess_image(load_image(path), spec) for path, _ in chunk])
        scores = session.run(None, {"input": x})[0]
        hits += int((scores.argmax(1) == np.array([label for _, label in chunk])).sum())
    return time.perf_counter() - t0, len(scan.samples)


def val_run(model: Path, data: Path, *, batch: int, threads: int) -> tuple[float, int]:
    from edgecv.runtimes.engines.base import EngineOptions
    from edgecv.runtimes.evaluation.evaluate import EvalOptions, evaluate

    t0 = time.perf_counter()
    report = evaluate(model, data, EvalOptions(batch_size=batch, engine=EngineOptions(provider="cpu", threads=threads)))
    return time.perf_counter() - t0, report.models[0].samples


def measure(model: Path, data: Path, *, batch: int, threads: int, rounds: int) -> dict[str, Any]:
    per_image: dict[str, list[float]] = {"bare": [], "val": []}
    for _ in range(rounds):
        for name, fn in (("bare", bare_loop), ("val", val_run)):
            seconds, images = fn(model, data, batch=batch, threads=threads)
            per_image[name].append(1000 * seconds / images)
    bare, val = (float(np.median(per_image[k])) for k in ("bare", "val"))
    return {"batch": batch, "threads": threads, "rounds": rounds, "bare_ms_per_image": bare,
            "val_ms_per_image": val, "overhead_pct": 100 * (val / bare - 1), "samples": per_image}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--images", type=int, default=400, help="generated images in all (4 classes)")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--threads", default="2")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)

    from edgecv.demo.synthetic import make_shapes_dataset
    from edgecv.io import write_json_atomic, write_text_atomic
    from edgecv.runtimes.profiling import sysinfo

    env = sysinfo.collect(["CPUExecutionProvider"])
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgecv-val-bench-") as tmp:
        data = make_shapes_dataset(Path(tmp) / "data", classes=CLASSES, per_class=args.images // len(CLASSES),
                                   size=256, seed=0)
        model = build_model(Path(tmp) / "model.onnx", model_name=args.model)
        for threads in (int(t) for t in args.threads.split(",")):
            for batch in (int(b) for b in args.batches.split(",")):
                print(f"batch {batch}, threads {threads} ...", file=sys.stderr, flush=True)
                rows.append(measure(model, data, batch=batch, threads=threads, rounds=args.rounds))
    meta = {"environment": env, "model": args.model, "images": args.images, "load_average": os.getloadavg()}
    text = markdown(rows, meta)
    write_json_atomic(Path(args.out) / "val_overhead.json", {"meta": meta, "results": rows})
    write_text_atomic(Path(args.out) / "val_overhead.md", text)
    print(text)
    return 0


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    from edgecv.table import markdown_table

    env = meta["environment"]
    v = env["versions"]
    lines = ["# edgecv val overhead vs a bare decode + preprocess + session.run loop", "",
             f"- CPU: {env['cpu']}, {env['cores_usable']} usable cores; onnxruntime {v['onnxruntime']}, "
             f"opencv {v['opencv']}, numpy {v['numpy']}",
             f"- {meta['model']} (random weights) at 224 px, {meta['images']} generated 256 px PNGs, 4 classes; "
             f"end to end per run (model load included); medians of {rows[0]['rounds']} interleaved rounds",
             f"- load average at the end: {', '.join(f'{x:.2f}' for x in meta['load_average'])}", ""]
    cols = [("batch", "batch"), ("threads", "threads"), ("bare_ms_per_image", "bare loop ms/image"),
            ("val_ms_per_image", "edgecv val ms/image"), ("overhead_pct", "val overhead")]
    fmt = {"bare_ms_per_image": lambda x: f"{x:.2f}", "val_ms_per_image": lambda x: f"{x:.2f}",
           "overhead_pct": lambda x: f"{x:+.1f} %"}
    lines.append(markdown_table(rows, cols, formatters=fmt))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
