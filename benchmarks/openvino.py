"""OpenVINO vs ONNX Runtime on this CPU: speed ratios, what OpenVINO's default precision costs in
top-1, int8 on both, and the stream loop on OpenVINO -- all in ONE process run.

Models: mobilenet_v2 and squeezenet1_1 from the edgecv model zoo, random init (no downloads),
exported with ``edgecv.exporters.export_onnx`` at 224x224 (1000 classes, dynamic batch) with an
ImageNet-preprocessing contract. int8: the exporter's own static QDQ per-channel quantization
(``quantize_int8_static``) calibrated on 32 generated images; OpenVINO and ONNX Runtime run the
very same int8 file.

Images: the demo's synthetic coloured shapes rendered at 224x224 (``make_shapes_dataset``) --
real-looking pictures, not noise; calibration and agreement use disjoint sets. Top-1 agreement
and max |diff| compare each runtime's logits with ONNX Runtime fp32 on 100 of them, for two
variants of each model: as exported (random weights send every image to the same class, so
agreement is trivially 100% -- the table says how many classes the images landed in), and with
BatchNorm statistics estimated and per-class logit offsets removed on the 32 calibration images,
so predictions spread over dozens of classes. Random weights leave tiny top-1 margins (reported
beside max |diff|): that variant shows where bf16's rounding flips a prediction, a harsher test
than a trained model with real margins would be.

Timing: every runtime gets the same pre-allocated input, the same thread count and a zero-
argument ``Engine.runner`` (ONNX Runtime with its default spinning threads, as ``edgecv profile``
measures; OpenVINO with INFERENCE_NUM_THREADS). Rounds are interleaved and each runtime's pooled
samples are compared by their medians.

Stream loop: ``edgecv.load(..., provider="openvino", threads=1)`` on mobilenet_v2 runs the real
stream loop over a generated 640x480 video; FPS is compared with 1000 / inference p50 measured on
the same classifier right before (median of five rounds over a 20 s, 600-frame video; 200 timed runs before each).

    python benchmarks/openvino.py                     # writes benchmarks/results/openvino.{json,md}
    python benchmarks/openvino.py --runs 30 --rounds 4 --out /tmp/ov
"""
from __future__ import annotations

import sys
from pathlib import Path

# This file is called openvino.py: run as a script, benchmarks/ is first on sys.path and
# "import openvino" would find this file. Drop that entry before anything imports openvino.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import argparse  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

MODELS = ("mobilenet_v2", "squeezenet1_1")
RESULTS = _HERE / "results"
TARGET_SPEEDUP, TARGET_TOP1, TARGET_STREAM = 1.4, 0.99, 0.9


def export(name: str, dest: Path, *, calib: np.ndarray | None = None) -> Path:
    """A random-init zoo model at 224x224 as ONNX, with the contract ``edgecv infer`` reads;
    with ``calib`` (preprocessed images), BatchNorm statistics are estimated on them and the mean
    logit per class is subtracted, so untrained predictions vary from image to image."""
    import onnx
    import torch

    from edgecv.contract import ModelContract, embed_contract
    from edgecv.exporters.onnx_export import export_onnx
    from edgecv.models import create_model
    from edgecv.preprocess import default_spec
    from edgecv.runtimes.labels import imagenet_labels

    torch.manual_seed(0)
    model = create_model(name, num_classes=1000).eval()
    if calib is not None:
        model = centred(model, torch.from_numpy(calib))
    export_onnx(model, dest, task="image", input_shape=(3, 224, 224))
    proto = onnx.load(str(dest))
    embed_contract(proto, ModelContract(task="image", labels=list(imagenet_labels()), architecture=name,
                                        preprocess=default_spec(size=224)))
    onnx.save(proto, str(dest))
    return dest


def centred(model: Any, images: Any) -> Any:
    """``model`` with BatchNorm running statistics re-estimated on ``images`` (cumulative mean)
    and a final ``- offset`` layer removing each class's mean logit over them."""
    import torch

    class Centred(torch.nn.Module):
        def __init__(self, net: Any, offset: Any) -> None:
            super().__init__()
            self.net = net
            self.register_buffer("offset", offset)

        def forward(self, x: Any) -> Any:
            return self.net(x) - self.offset

    for bn in (m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)):
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over every batch below
    model.train()
    with torch.no_grad():
        for i in range(0, len(images), 16):
            model(images[i:i + 16])
        model.eval()
        offset = model(images).mean(dim=0)
    return Centred(model, offset).eval()


def quantize(src: Path, dest: Path, calib: Path) -> Path:
    from edgecv.contract import read_contract
    from edgecv.exporters.quantize import quantize_int8_static
    from edgecv.exporters.samples import find_samples

    contract = read_contract(src)
    samples = find_samples(calib, task="image", labels=contract.labels, limit=32)
    quantize_int8_static(src, dest, samples=samples, spec=contract.preprocess)
    return dest


def engines(fp32: Path, int8: Path, threads: int) -> dict[str, Any]:
    from edgecv.runtimes.engines.base import EngineOptions, open_engine

    def on(path: Path, provider: str, precision: str = "auto") -> Any:
        return open_engine(path, EngineOptions(provider=provider, threads=threads, spinning=True,
                                               precision=precision))

    return {"ORT fp32": on(fp32, "cpu"), "OpenVINO default": on(fp32, "openvino"),
            "OpenVINO f32": on(fp32, "openvino", "f32"), "ORT int8": on(int8, "cpu"),
            "OpenVINO int8": on(int8, "openvino")}


def sibling(name: str) -> Any:
    """Another benchmark script of this folder, loaded from its path (this folder is not on
    sys.path, see the top of this file): its timing helpers are reused, not copied."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"edgecv_bench_{name}", _HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def agreement(engs: dict[str, Any], images: np.ndarray, batch: int = 8) -> dict[str, dict[str, Any]]:
    """Every runtime's logits vs ONNX Runtime fp32 on the same preprocessed images."""
    from edgecv.runtimes.profiling.job import compare_outputs

    def outputs(engine: Any) -> list[np.ndarray]:
        return [engine.run(None, {"input": images[i:i + batch]})[0] for i in range(0, len(images), batch)]

    ref = outputs(engs["ORT fp32"])
    top2 = np.sort(np.concatenate(ref), axis=1)[:, -2:]
    spread = {"classes": len(set(np.concatenate(ref).argmax(axis=1).tolist())),
              "margin_p50": float(np.median(top2[:, 1] - top2[:, 0]))}
    return {key: {**compare_outputs(outputs(engine), ref), **spread, "precision": engine.precision}
            for key, engine in engs.items()}


def prepared_images(folder: Path, fp32: Path, limit: int) -> np.ndarray:
    from edgecv.contract import read_contract
    from edgecv.preprocess import load_image, preprocess_image
    from edgecv.runtimes.streaming.sources import collect_images

    spec = read_contract(fp32).preprocess
    return np.stack([preprocess_image(load_image(p), spec) for p in collect_images([folder])[:limit]])


def bench_stream(model: Path, video: Path, *, rounds: int = 5, runs: int = 200) -> dict[str, Any]:
    """The stream loop on OpenVINO at 1 thread: FPS vs 1000 / inference p50 (median of rounds)."""
    import cv2

    from edgecv.runtimes import load
    from edgecv.runtimes.streaming.sources import VideoFileSource
    from edgecv.runtimes.streaming.stream import StreamOptions, run_stream

    clf = load(model, provider="openvino", threads=1)
    cap = cv2.VideoCapture(str(video))
    _, frame = cap.read()
    cap.release()
    inference_p50 = sibling("stream").bench_inference_p50
    per_round = []
    for _ in range(rounds):
        p50 = inference_p50(clf, frame, runs=runs)
        report = run_stream(clf, VideoFileSource(video), StreamOptions(handle_signals=False))
        per_round.append({"inference_p50_ms": p50, "fps": report.fps, "frames": report.frames,
                          "ratio": report.fps * p50 / 1000.0,
                          "in_loop_inference_p50_ms": report.stages["inference"]["p50_ms"],
                          "preprocess_p50_ms": report.stages["preprocess"]["p50_ms"],
                          "decode_p50_ms": report.stages["capture"]["p50_ms"]})
    mid = sorted(per_round, key=lambda r: r["ratio"])[len(per_round) // 2]
    return {**mid, "rounds": per_round, "describe": clf.describe()}


def measure_model(name: str, work: Path, args: argparse.Namespace, calib: Path, evals: Path
                  ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Timing rows (batch x runtime) on the model as exported, and agreement rows (variant x
    runtime) with ONNX Runtime fp32 on the plain and the centred variant."""
    from edgecv.runtimes.profiling.timing import summarize

    interleaved = sibling("runtimes").interleaved  # warm up, alternate in rounds, pool the samples
    print(f"{name}: export, quantize ...", file=sys.stderr, flush=True)
    fp32 = export(name, work / f"{name}.onnx")
    engs = engines(fp32, quantize(fp32, work / f"{name}.int8.onnx", calib), args.threads)
    images = prepared_images(evals, fp32, args.images)
    centred_fp32 = export(name, work / f"{name}.centred.onnx", calib=prepared_images(calib, fp32, 32))
    centred_int8 = quantize(centred_fp32, work / f"{name}.centred.int8.onnx", calib)
    agree = []
    for variant, found in (("as exported", agreement(engs, images)),
                           ("centred", agreement(engines(centred_fp32, centred_int8, args.threads), images))):
        agree += [{"model": name, "variant": variant, "runtime": k, **v} for k, v in found.items() if k != "ORT fp32"]
    rows = []
    for batch in args.batches:
        print(f"{name} batch {batch} ...", file=sys.stderr, flush=True)
        feeds = {"input": np.random.default_rng(batch).standard_normal((batch, 3, 224, 224)).astype(np.float32)}
        samples = interleaved({k: e.runner(feeds) for k, e in engs.items()}, runs=args.runs, rounds=args.rounds,
                              warmup=args.warmup)
        stats = {k: summarize(v, items_per_run=batch) for k, v in samples.items()}
        for key, st in stats.items():
            rows.append({"model": name, "batch": batch, "runtime": key, "precision": engs[key].precision,
                         **st.to_dict(), "vs_ort_fp32": stats["ORT fp32"].p50_ms / st.p50_ms,
                         "vs_ort_int8": stats["ORT int8"].p50_ms / st.p50_ms if "int8" in key else None})
    return rows, agree


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=40, help="minimum timed runs per runtime and configuration")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--images", type=int, default=100, help="images for top-1 agreement")
    parser.add_argument("--video-seconds", type=float, default=20.0, help="stream part: 30 fps 640x480 video")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    args.batches = [int(b) for b in args.batches.split(",")]

    from edgecv.demo.synthetic import make_shapes_dataset, make_shapes_video
    from edgecv.hardware import BF16_FLAGS, cpu_flags
    from edgecv.io import write_json_atomic, write_text_atomic
    from edgecv.runtimes.engines.openvino_engine import import_openvino
    from edgecv.runtimes.profiling import sysinfo

    started, load_before = time.time(), os.getloadavg()
    rows: list[dict[str, Any]] = []
    agree: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="edgecv-ov-bench-") as tmp:
        work = Path(tmp)
        calib = make_shapes_dataset(work / "calib", per_class=8, size=224, seed=1)
        evals = make_shapes_dataset(work / "eval", per_class=-(-args.images // 4), size=224, seed=2)
        for name in args.models.split(","):
            model_rows, model_agree = measure_model(name, work, args, calib, evals)
            rows += model_rows
            agree += model_agree
        print("stream loop ...", file=sys.stderr, flush=True)
        video = make_shapes_video(work / "shapes.mp4", seconds=args.video_seconds, fps=30, size=(640, 480))
        stream = bench_stream(work / "mobilenet_v2.onnx" if "mobilenet_v2" in args.models
                              else work / f"{args.models.split(',')[0]}.onnx", video)
    env = sysinfo.collect(["CPUExecutionProvider"])
    env["versions"]["openvino"] = import_openvino().get_version().split("-")[0]
    env["cpu_flags"] = sorted(set(env["int8_flags"]) | (BF16_FLAGS & (cpu_flags() or frozenset())))
    meta = {"environment": env, "threads": args.threads, "runs": args.runs, "rounds": args.rounds,
            "warmup": args.warmup, "images": args.images, "agreement": agree, "stream": stream,
            "load_average_before": load_before, "load_average_after": os.getloadavg(),
            "seconds": time.time() - started}
    out = Path(args.out)
    write_json_atomic(out / "openvino.json", {"meta": meta, "results": rows})
    text = markdown(rows, meta)
    write_text_atomic(out / "openvino.md", text)
    print(text)
    return 0


COLUMNS = [("model", "model"), ("batch", "batch"), ("runtime", "runtime"), ("precision", "precision"),
           ("p50_ms", "p50 ms"), ("p90_ms", "p90 ms"), ("runs", "runs"), ("throughput", "items/s"),
           ("vs_ort_fp32", "vs ORT fp32"), ("vs_ort_int8", "vs ORT int8")]
AGREE_COLUMNS = [("model", "model"), ("variant", "variant"), ("runtime", "runtime"), ("precision", "precision"),
                 ("classes", "classes hit (fp32)"), ("margin_p50", "top-1 margin p50 (fp32)"),
                 ("max_abs", "max |diff|"), ("top1_agreement", "top-1 vs ORT fp32"), ("n", "images")]
FORMATS = {"p50_ms": lambda v: f"{v:.2f}", "p90_ms": lambda v: f"{v:.2f}", "runs": str, "n": str, "classes": str,
           "throughput": lambda v: f"{v:.1f}", "vs_ort_fp32": lambda v: f"{v:.2f}x",
           "vs_ort_int8": lambda v: "-" if v is None else f"{v:.2f}x",
           "top1_agreement": lambda v: "-" if v is None else f"{100 * v:.1f}%", "max_abs": lambda v: f"{v:.2e}",
           "margin_p50": lambda v: f"{v:.2e}"}


def verdicts(rows: list[dict[str, Any]], meta: dict[str, Any]) -> list[str]:
    """The issue's targets, each with the figures it is judged on (top-1 from the centred variant:
    as exported, every image lands in one class and agreement says nothing)."""
    top1 = {(a["model"], a["runtime"]): a for a in meta["agreement"] if a["variant"] == "centred"}
    out = []
    for r in (r for r in rows if r["runtime"] == "OpenVINO default"):
        a = top1[(r["model"], r["runtime"])]
        fast, same = r["vs_ort_fp32"] >= TARGET_SPEEDUP, (a["top1_agreement"] or 0) >= TARGET_TOP1
        out.append(f"{r['model']} batch {r['batch']}: OpenVINO default ({r['precision']}) {r['vs_ort_fp32']:.2f}x "
                   f"ORT fp32 (target >= {TARGET_SPEEDUP}x: {'met' if fast else 'NOT met'}); top-1 agreement "
                   f"{100 * (a['top1_agreement'] or 0):.1f}% on the centred random-weight variant "
                   f"({'>=' if same else 'below'} {100 * TARGET_TOP1:.0f}%; max |diff| {a['max_abs']:.2e} vs median "
                   f"top-1 margin {a['margin_p50']:.2e}; the target is judged on trained models and real photos "
                   f"by benchmarks/openvino_agreement.py)")
    for r in (r for r in rows if r["runtime"] == "OpenVINO int8"):
        out.append(f"{r['model']} batch {r['batch']}: OpenVINO int8 ({r['precision']}) {r['vs_ort_int8']:.2f}x "
                   f"ORT int8, {r['vs_ort_fp32']:.2f}x ORT fp32")
    s = meta["stream"]
    out.append(f"stream loop on OpenVINO, 1 thread (mobilenet_v2, 640x480 video): {s['fps']:.1f} FPS vs "
               f"1000/{s['inference_p50_ms']:.2f} ms = {1000 / s['inference_p50_ms']:.1f} -> {s['ratio']:.2f} "
               f"(target >= {TARGET_STREAM}: {'met' if s['ratio'] >= TARGET_STREAM else 'NOT met'}; rounds "
               f"{[round(r['ratio'], 2) for r in s['rounds']]}; in-loop inference p50 "
               f"{s['in_loop_inference_p50_ms']:.2f} ms, preprocess {s['preprocess_p50_ms']:.2f} ms, "
               f"decode {s['decode_p50_ms']:.2f} ms per frame)")
    return out


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    from edgecv.table import markdown_table

    env, v = meta["environment"], meta["environment"]["versions"]
    lines = ["# OpenVINO vs ONNX Runtime", "",
             f"- CPU: {env['cpu']}, {env['cores_usable']} usable cores, flags: {', '.join(env['cpu_flags']) or 'none'}",
             f"- openvino {v['openvino']}, onnxruntime {v['onnxruntime']}, onnx {v['onnx']}, numpy {v['numpy']}",
             f"- {meta['threads']} threads on both runtimes (ORT intra-op, spinning on; OpenVINO "
             f"INFERENCE_NUM_THREADS); {meta['warmup']} warm-up runs, then >= {meta['runs']} timed runs per runtime "
             f"in {meta['rounds']} interleaved rounds; p50 of the pooled samples compared",
             "- models: random-init zoo models exported at 224x224; 'precision' is what each engine reported "
             "(OpenVINO: the compiled model's INFERENCE_PRECISION_HINT)",
             "- load average before / after: " + " / ".join(
                 ", ".join(f"{x:.2f}" for x in meta[k]) for k in ("load_average_before", "load_average_after")),
             "", markdown_table(rows, COLUMNS, formatters=FORMATS), "",
             f"Agreement with ONNX Runtime fp32 logits on {meta['images']} synthetic shape images rendered at "
             "224x224 (not the int8 calibration images). 'as exported': the random weights send every image to "
             "one class; 'centred': BatchNorm statistics estimated and each class's mean logit removed on the 32 "
             "calibration images, so predictions spread over many classes -- with the tiny margins of random "
             "weights, a harsher test of rounding than a trained model.", "",
             markdown_table(meta["agreement"], AGREE_COLUMNS, formatters=FORMATS), ""]
    lines += [f"- {line}" for line in verdicts(rows, meta)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
