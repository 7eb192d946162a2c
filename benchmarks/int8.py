"""int8 vs fp32 on this CPU, as ``edgecv export --int8`` decides it, plus int8 accuracy on held-apart images.

Speed (``--part speed``): mobilenet_v2, mobilenet_v3_small and squeezenet1_1 at 224 px, 1000
classes, random weights (latency does not depend on the values), exported with the project's
exporter. Two int8 files per model, both static QDQ with per-channel weights calibrated on 32
generated shapes images at 224 px (``quantize_int8_static``): every quantizable operator, and the
operators without an int8 kernel in ONNX Runtime's CPU provider (plus the Mul they feed) left in
float (``exclude_float_ops=True``; only where the graph has such operators). Each is timed
against fp32 with the export's own harness (:func:`edgecv.runtimes.profiling.ab_timing.compare_latency`:
same threads, interleaved blocks, pooled medians) at batch 1 and 8.

Accuracy (``--part accuracy``): mobilenet_v3_small trained from scratch for a few epochs on
generated shapes (a plain torch loop), exported with ``--int8`` through the real pipeline (which
runs the speed check above), then fp32 and both int8 variants (calibrated on 200 training images)
evaluated with ``edgecv val``'s library call on 400 shapes of another seed that neither training
nor calibration saw.

Usage::

    python benchmarks/int8.py                       # writes benchmarks/results/int8.{json,md}
    python benchmarks/int8.py --part speed --models mobilenet_v3_small --rounds 8
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
MODELS = ("mobilenet_v2", "mobilenet_v3_small", "squeezenet1_1")
TARGETS = {"mobilenet_v3_small": 1.2, "mobilenet_v2": 1.5, "squeezenet1_1": 1.5}
SHAPES = ["circle", "square", "triangle", "star"]


def calibration(tmp: Path, size: int) -> Any:
    from edgecv.demo.synthetic import make_shapes_dataset
    from edgecv.exporters.samples import find_samples

    data = make_shapes_dataset(tmp / f"calib{size}", classes=SHAPES, per_class=8, size=size, seed=3)
    return find_samples(data, task="image", labels=SHAPES, limit=32)


def speed_rows(name: str, tmp: Path, samples: Any, args: argparse.Namespace) -> list[dict[str, Any]]:
    """fp32 vs both int8 variants of one model, at every batch size."""
    import numpy as np
    import torch

    from edgecv.exporters.onnx_export import export_onnx
    from edgecv.exporters.quantize import quantize_int8_static
    from edgecv.models import create_model
    from edgecv.preprocess import default_spec
    from edgecv.runtimes.profiling.ab_timing import compare_latency

    torch.manual_seed(0)
    fp32 = export_onnx(create_model(name, num_classes=1000).eval(), tmp / f"{name}.onnx", input_shape=(3, 224, 224))
    spec = default_spec(size=224)
    variants = {"int8 (all operators)": quantize_int8_static(fp32, tmp / f"{name}.int8.onnx", samples=samples,
                                                             spec=spec)}
    excluded = quantize_int8_static(fp32, tmp / f"{name}.int8x.onnx", samples=samples, spec=spec,
                                    exclude_float_ops=True)
    if excluded["excluded"]["nodes"]:
        variants["int8 (float-only ops excluded)"] = excluded
    rng = np.random.default_rng(0)
    batches = [int(b) for b in args.batches.split(",")]
    pool = rng.standard_normal((max(batches), 3, 224, 224)).astype(np.float32)
    rows = []
    for label, info in variants.items():
        print(f"{name}: {label} ...", file=sys.stderr, flush=True)
        for pair in compare_latency(fp32, info["path"], lambda b: {"input": pool[:b]}, batches=batches,
                                    threads=args.threads, rounds=args.rounds, block_s=args.block):
            ex = info.get("excluded") or {}
            rows.append({"model": name, "variant": label, "batch": pair.batch, "threads": args.threads,
                         "fp32_p50_ms": pair.a_p50_ms, "int8_p50_ms": pair.b_p50_ms, "speedup": pair.speedup,
                         "runs": f"{pair.a_runs}/{pair.b_runs}", "target": TARGETS.get(name),
                         "met": pair.speedup >= TARGETS.get(name, 1.0),
                         "excluded": ", ".join(f"{n} {op}" for op, n in ex.get("op_types", {}).items()) or "-",
                         "load_1min": os.getloadavg()[0]})
    return rows


def train_mnv3(data: Path, dest: Path, args: argparse.Namespace) -> tuple[Path, float]:
    """mobilenet_v3_small trained from scratch on ``data/train`` with a plain torch loop (Adam,
    BatchNorm momentum raised from torchvision's 0.01 to 0.1: a few hundred steps are not enough
    for 0.01 running statistics). Returns the checkpoint and its accuracy on ``data/val``."""
    import torch

    from edgecv.data import scan_image_folder
    from edgecv.models import create_model
    from edgecv.models.checkpoint import save_checkpoint
    from edgecv.preprocess import default_spec, load_image, preprocess_batch

    spec = default_spec(size=args.img_size)

    def tensors(folder: Path) -> tuple[Any, Any]:
        scan = scan_image_folder(folder, classes=SHAPES)
        x = torch.from_numpy(preprocess_batch([load_image(p) for p, _ in scan.samples], spec))  # (N, 3, S, S)
        return x, torch.tensor([label for _, label in scan.samples])

    (x, y), (xv, yv) = tensors(data / "train"), tensors(data / "val")
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    model = create_model("mobilenet_v3_small", num_classes=len(SHAPES), dropout=0.0)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = 0.1
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(0)
    for epoch in range(args.epochs):
        model.train()
        for idx in torch.randperm(len(x), generator=gen).split(32):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
        print(f"epoch {epoch + 1}/{args.epochs}", file=sys.stderr, flush=True)
    model.eval()
    with torch.no_grad():
        acc = float((torch.cat([model(b) for b in xv.split(64)]).argmax(1) == yv).float().mean())
    ckpt = save_checkpoint({"model": model.edgecv_name, "model_kwargs": model.edgecv_kwargs, "task": "image",
                            "state_dict": model.state_dict(), "classes": SHAPES, "preprocess": spec.to_dict(),
                            "tokenizer": None}, dest)
    return ckpt, acc


def accuracy_rows(tmp: Path, args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Train, export --int8 (speed check included), evaluate fp32 and both int8 files on held-apart shapes."""
    from edgecv.contract import read_contract
    from edgecv.demo.synthetic import make_shapes_dataset
    from edgecv.exporters import ExportOptions, load_source, run_export
    from edgecv.exporters.quantize import quantize_int8_static
    from edgecv.exporters.samples import find_samples
    from edgecv.runtimes.engines.base import EngineOptions
    from edgecv.runtimes.evaluation.evaluate import EvalOptions, evaluate

    size = args.img_size
    data = make_shapes_dataset(tmp / "shapes", classes=SHAPES, per_class=args.per_class, size=size, seed=0,
                               split=True, val_fraction=0.25)
    held = make_shapes_dataset(tmp / "held", classes=SHAPES, per_class=100, size=size, seed=7)
    ckpt, val_acc = train_mnv3(data, tmp / "mnv3.pt", args)
    report = run_export(load_source(ckpt), ExportOptions(output=tmp / "m.onnx", data=data, int8=True, calib_size=200,
                                                         int8_speed_threads=args.threads))
    samples = find_samples(data / "train", task="image", labels=SHAPES, limit=200)
    spec = read_contract(report.output).preprocess
    all_ops = quantize_int8_static(report.output, tmp / "all.int8.onnx", samples=samples, spec=spec)["path"]
    float_ops = quantize_int8_static(report.output, tmp / "float-ops.int8.onnx", samples=samples, spec=spec,
                                     exclude_float_ops=True)["path"]
    models = [report.output, all_ops, float_ops]
    val = evaluate(models, held, EvalOptions(batch_size=8, engine=EngineOptions(provider="cpu", threads=args.threads)))
    labels = {str(report.output): "fp32 (m.onnx)", all_ops: "int8, every operator",
              float_ops: "int8, float-only ops excluded"}
    rows = [{"file": labels[str(m.path)], "top1": m.top1, "macro_f1": m.macro_f1, "vs_fp32": cmp["text"],
             "samples": m.samples} for m, cmp in zip(val.models, val.comparison)]
    speed = report.stage("int8").details.get("speed", {})
    return rows, {"trained_val_acc": val_acc, "export_speed": speed,
                  "export_warnings": report.warnings, "recommendation": val.recommendation["text"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["speed", "accuracy", "both"], default="both")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--block", type=float, default=0.1, help="seconds per timed block")
    parser.add_argument("--img-size", type=int, default=64, help="accuracy part: image side")
    parser.add_argument("--per-class", type=int, default=400, help="accuracy part: images per class (75 %% train)")
    parser.add_argument("--epochs", type=int, default=15, help="accuracy part: training epochs")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)

    from edgecv.io import write_json_atomic, write_text_atomic
    from edgecv.runtimes.profiling import sysinfo

    env = sysinfo.collect(["CPUExecutionProvider"])
    started = time.time()
    speed: list[dict[str, Any]] = []
    accuracy: list[dict[str, Any]] = []
    extra: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="edgecv-int8-") as tmp_name:
        tmp = Path(tmp_name)
        if args.part in ("speed", "both"):
            samples = calibration(tmp, 224)
            for name in args.models.split(","):
                speed += speed_rows(name, tmp, samples, args)
        if args.part in ("accuracy", "both"):
            accuracy, extra = accuracy_rows(tmp, args)
    meta = {"environment": env, "threads": args.threads, "rounds": args.rounds, "block_s": args.block,
            "seconds": round(time.time() - started, 1), "accuracy_setup": {"img_size": args.img_size,
            "per_class": args.per_class, "epochs": args.epochs}, **extra}
    text = markdown(speed, accuracy, meta)
    write_json_atomic(Path(args.out) / "int8.json", {"meta": meta, "speed": speed, "accuracy": accuracy})
    write_text_atomic(Path(args.out) / "int8.md", text)
    print(text)
    return 0


def markdown(speed: list[dict[str, Any]], accuracy: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    from edgecv.runtimes.profiling import sysinfo
    from edgecv.table import markdown_table

    env = meta["environment"]
    v = env["versions"]
    lines = ["# int8 vs fp32 (ONNX Runtime CPU)", "",
             f"- CPU: {env['cpu']}, {env['cores_usable']} usable cores, int8 flags: "
             f"{', '.join(env['int8_flags']) or 'none'}; {sysinfo.vnni_note(env)}",
             f"- onnxruntime {v['onnxruntime']}, onnx {v['onnx']}, numpy {v['numpy']}",
             f"- {meta['threads']} threads, {meta['rounds']} interleaved rounds of ~{meta['block_s']} s blocks, "
             "p50 of the pooled samples; speedup = fp32 p50 / int8 p50", ""]
    if speed:
        cols = [("model", "model"), ("variant", "int8 file"), ("batch", "batch"), ("fp32_p50_ms", "fp32 p50 ms"),
                ("int8_p50_ms", "int8 p50 ms"), ("speedup", "speedup"), ("target", "target"), ("met", "met"),
                ("excluded", "left in float"), ("runs", "runs fp32/int8"), ("load_1min", "load")]
        fmt = {"fp32_p50_ms": lambda x: f"{x:.3f}", "int8_p50_ms": lambda x: f"{x:.3f}",
               "speedup": lambda x: f"{x:.2f}x", "target": lambda x: "-" if x is None else f">= {x:.1f}x",
               "load_1min": lambda x: f"{x:.1f}"}
        lines += ["## Speed (random weights, 224 px)", "", markdown_table(speed, cols, formatters=fmt), ""]
    if accuracy:
        s = meta["accuracy_setup"]
        lines += [f"## Accuracy: mobilenet_v3_small trained {s['epochs']} epochs on generated shapes at "
                  f"{s['img_size']} px (validation accuracy {meta['trained_val_acc']:.1%}), evaluated with "
                  "edgecv val on 400 held-apart shapes (another seed)", ""]
        cols = [("file", "file"), ("top1", "top-1"), ("macro_f1", "macro F1"), ("vs_fp32", "vs fp32 (edgecv val)")]
        fmt = {"top1": lambda x: f"{100 * x:.1f} %", "macro_f1": lambda x: f"{x:.3f}"}
        lines += [markdown_table(accuracy, cols, formatters=fmt), ""]
        verdict = meta["export_speed"]
        if verdict:
            lines.append(f"`export --int8` kept attempt {verdict['chosen'] + 1} of {len(verdict['attempts'])} "
                         f"and recommends **{verdict['recommended']}**.")
        lines += [f"- {w}" for w in meta["export_warnings"] if w.startswith("int8")]
        lines.append(f"- edgecv val: {meta['recommendation']}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
