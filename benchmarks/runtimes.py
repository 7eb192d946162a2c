"""Runtime benchmark: PyTorch eager vs ONNX Runtime fp32 vs ONNX Runtime int8 vs OpenCV dnn.

Models: mobilenet_v2, mobilenet_v3_small, squeezenet1_1 (224x224, 1000 classes) and the LSTM and
attention text classifiers (vocabulary 20,000, 64 tokens), all with random weights (latency does
not depend on the values). Batch 1 and 8, 2 intra-op threads, everything in ONE process.

Fairness: every runtime gets the same pre-allocated inputs, the same thread count and the same
timing harness (:mod:`edgecv.runtimes.profiling.timing`). Rounds are interleaved (torch, fp32, int8, cv2,
torch, ...) so that load from other processes on a shared machine hits every runtime alike; the
samples of all rounds are pooled and compared by their medians.

int8: images use static QDQ quantization with per-channel weights, calibrated on a few random
batches (accuracy is not the point here, kernel speed is); text models use dynamic int8
(``edgecv.exporters.quantize.quantize_int8_dynamic``). ``reduce_range`` follows the CPU (7-bit
weights only on x86 without VNNI).

Usage::

    python benchmarks/runtimes.py                    # writes benchmarks/results/runtimes.{json,md}
    python benchmarks/runtimes.py --runs 30 --models mobilenet_v2
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

IMAGE_MODELS = ("mobilenet_v2", "mobilenet_v3_small", "squeezenet1_1")
TEXT_MODELS = ("lstm_classifier", "attention_classifier")
VOCAB, SEQ_LEN, CLASSES = 20000, 64, 1000
RESULTS = Path(__file__).resolve().parent / "results"


def build(name: str) -> tuple[Any, str]:
    """A randomly initialised model in eval mode and its task."""
    import torch

    from edgecv.models import create_model, get_model_spec

    torch.manual_seed(0)
    task = get_model_spec(name).task
    kwargs = {"num_classes": 2, "vocab_size": VOCAB} if task == "text" else {"num_classes": CLASSES}
    return create_model(name, **kwargs).eval(), task


def export(model: Any, task: str, dest: Path) -> Path:
    from edgecv.exporters.onnx_export import export_onnx

    return export_onnx(model, dest, task=task, input_shape=(3, 224, 224) if task == "image" else None)


def quantize(src: Path, dest: Path, task: str, *, calib: np.ndarray | None) -> dict[str, Any]:
    """Per-channel QDQ static int8 (images, random calibration) or dynamic int8 (text)."""
    from edgecv.exporters.quantize import default_reduce_range, quantize_int8_dynamic

    if task == "text":
        return quantize_int8_dynamic(src, dest)
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"input": b} for b in calib])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    prepared = dest.with_suffix(".prep.onnx")
    quant_pre_process(str(src), str(prepared), skip_symbolic_shape=False)
    reduce = default_reduce_range()
    quantize_static(str(prepared), str(dest), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    reduce_range=reduce, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax)
    return {"method": "static QDQ per-channel (random calibration)", "reduce_range": reduce}


def runners(model: Any, fp32: Path, int8: Path | None, feeds: dict[str, np.ndarray], threads: int,
            notes: list[str]) -> dict[str, Callable[[], Any]]:
    """Zero-argument callables per runtime, inputs already bound."""
    import functools

    import cv2
    import torch

    from edgecv.runtimes.engines.session import create_session

    out: dict[str, Callable[[], Any]] = {}
    tensor = torch.from_numpy(next(iter(feeds.values())))

    def torch_run() -> Any:
        with torch.inference_mode():
            return model(tensor)

    out["torch eager"] = torch_run
    # ONNX Runtime's default thread spinning, as `edgecv profile` measures by default (torch's
    # OpenMP pool spins too); the stream loop of `edgecv infer` turns it off instead.
    def ort_run(path: Path) -> Callable[[], Any]:
        session = create_session(path, provider="cpu", threads=threads, spinning=True).session
        return functools.partial(session.run, None, feeds)

    out["ORT fp32"] = ort_run(fp32)
    if int8 is not None:
        out["ORT int8"] = ort_run(int8)
    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        cv2.setNumThreads(threads)
        net = cv2.dnn.readNetFromONNX(str(fp32))
        net.setInput(next(iter(feeds.values())))
        net.forward()
        out["cv2.dnn fp32"] = net.forward
    except cv2.error as exc:
        lines = [ln for ln in str(exc).splitlines() if "error:" in ln] or [str(exc)]
        notes.append(f"{fp32.stem}: cv2.dnn cannot run it ({lines[0].strip()[:160]})")
    return out


def interleaved(fns: dict[str, Callable[[], Any]], *, runs: int, rounds: int, warmup: int) -> dict[str, Any]:
    """Warm every runtime, then alternate them in ``rounds`` blocks and pool each one's samples.

    Each block starts after a 50 ms pause and two untimed runs: the thread pool of the runtime that ran before
    (OpenMP in torch, OpenCV's own pool) may still be spinning and would bill its CPU time to
    the next runtime's first samples.
    """
    from edgecv.runtimes.profiling.timing import time_runs

    counts = {}
    for key, fn in fns.items():
        for _ in range(warmup):
            fn()
        t0 = time.perf_counter_ns()
        fn()
        once_s = (time.perf_counter_ns() - t0) / 1e9
        # sub-millisecond models get more runs (about 0.8 s each), so their medians settle too
        counts[key] = int(min(3000, max(runs, 0.8 / max(once_s, 1e-6))))
    pooled: dict[str, list[np.ndarray]] = {k: [] for k in fns}
    for _ in range(rounds):
        for key, fn in fns.items():
            time.sleep(0.05)  # let the previous runtime's spinning/OpenMP threads go idle
            fn()
            fn()
            pooled[key].append(time_runs(fn, runs=max(1, counts[key] // rounds)))
    return {k: np.concatenate(v) for k, v in pooled.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(IMAGE_MODELS + TEXT_MODELS))
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=60,
                        help="minimum timed runs per runtime and configuration (fast models get more)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)

    import torch

    from edgecv.io import write_json_atomic, write_text_atomic
    from edgecv.runtimes.profiling import sysinfo
    from edgecv.runtimes.profiling.roofline import (
        matmul_peak_gflops,
        model_macs,
        ort_matmul_gflops,
    )
    from edgecv.runtimes.profiling.timing import summarize

    torch.set_num_threads(args.threads)
    env = sysinfo.collect(["CPUExecutionProvider"])
    load_before = os.getloadavg()
    peak = matmul_peak_gflops(threads=args.threads)
    peak_np = matmul_peak_gflops(threads=args.threads, method="numpy")
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    quant: dict[str, Any] = {}
    rng = np.random.default_rng(0)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="edgecv-bench-") as tmp:
        for name in args.models.split(","):
            model, task = build(name)
            fp32 = export(model, task, Path(tmp) / f"{name}.onnx")
            calib = None if task == "text" else rng.standard_normal((4, 8, 3, 224, 224)).astype(np.float32)
            int8 = Path(tmp) / f"{name}.int8.onnx"
            try:
                quant[name] = quantize(fp32, int8, task, calib=calib)
            except Exception as exc:  # report, keep benchmarking the rest
                notes.append(f"{name}: int8 quantization failed ({' '.join(str(exc).split())[:160]})")
                int8 = None
            for batch in (int(b) for b in args.batches.split(",")):
                if task == "text":
                    feeds = {"input_ids": rng.integers(1, VOCAB, size=(batch, SEQ_LEN)).astype(np.int64)}
                else:
                    feeds = {"input": rng.standard_normal((batch, 3, 224, 224)).astype(np.float32)}
                print(f"{name} batch {batch} ...", file=sys.stderr, flush=True)
                fns = runners(model, fp32, int8, feeds, args.threads, notes)
                samples = interleaved(fns, runs=args.runs, rounds=args.rounds, warmup=args.warmup)
                macs = model_macs(fp32, batch=batch, seq_len=SEQ_LEN if task == "text" else None)
                base = summarize(samples["torch eager"]).p50_ms
                fp32_p50 = summarize(samples["ORT fp32"]).p50_ms
                for runtime, s in samples.items():
                    st = summarize(s, items_per_run=batch)
                    gflops = 2.0 * macs / 1e9 / (st.p50_ms / 1e3) if macs else None
                    rows.append({"model": name, "runtime": runtime, "batch": batch, "threads": args.threads,
                                 "seq_len": SEQ_LEN if task == "text" else None, **st.to_dict(),
                                 "speedup_vs_torch": base / st.p50_ms, "speedup_vs_ort_fp32": fp32_p50 / st.p50_ms,
                                 "macs": macs, "gflops": gflops, "load_1min": os.getloadavg()[0],
                                 "pct_peak": None})
            # a ceiling is the best the hardware showed: re-measure between models, keep the max
            peak = max(peak, ort_matmul_gflops(threads=args.threads))
    for r in rows:  # int8 arithmetic vs a float32 ceiling is not a like-for-like ratio
        if r["gflops"] and "int8" not in r["runtime"]:
            r["pct_peak"] = 100.0 * r["gflops"] / peak
    load_after = os.getloadavg()
    meta = {"environment": env, "threads": args.threads, "runs": args.runs, "rounds": args.rounds,
            "warmup": args.warmup, "matmul_peak_gflops_ort": peak, "matmul_peak_gflops_numpy": peak_np,
            "load_average_before": load_before, "load_average_after": load_after,
            "seconds": time.time() - started, "quantization": quant, "notes": notes,
            "vnni_note": sysinfo.vnni_note(env)}
    out = Path(args.out)
    write_json_atomic(out / "runtimes.json", {"meta": meta, "results": rows})
    write_text_atomic(out / "runtimes.md", markdown(rows, meta))
    print(markdown(rows, meta))
    return 0


RESULT_COLUMNS = [("model", "model"), ("batch", "batch"), ("runtime", "runtime"), ("p50_ms", "p50 ms"),
                  ("p90_ms", "p90 ms"), ("p99_ms", "p99 ms"), ("runs", "runs"), ("throughput", "items/s"),
                  ("speedup_vs_torch", "vs torch"), ("speedup_vs_ort_fp32", "vs ORT fp32"), ("gflops", "GFLOP/s"),
                  ("pct_peak", "% peak"), ("load_1min", "load")]
RESULT_FORMATS = {**{k: (lambda v: f"{v:.2f}") for k in ("p50_ms", "p90_ms", "p99_ms")},
                  "runs": str, "throughput": lambda v: f"{v:.1f}", "load_1min": lambda v: f"{v:.1f}",
                  **{k: (lambda v: f"{v:.2f}x") for k in ("speedup_vs_torch", "speedup_vs_ort_fp32")},
                  "gflops": lambda v: "-" if v is None else f"{v:.1f}",
                  "pct_peak": lambda v: "-" if v is None else f"{v:.1f}%"}


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    from edgecv.table import markdown_table

    env = meta["environment"]
    v = env["versions"]
    lines = ["# Runtime benchmark", "",
             f"- CPU: {env['cpu']}, {env['cores_usable']} usable cores, int8 flags: {', '.join(env['int8_flags']) or 'none'}",
             f"- onnxruntime {v['onnxruntime']}, onnx {v['onnx']}, numpy {v['numpy']}, opencv {v['opencv']}, "
             f"torch {__import__('torch').__version__}",
             f"- {meta['threads']} threads; {meta['warmup']} warm-up runs, then at least {meta['runs']} timed runs "
             f"(about 0.8 s) per runtime in {meta['rounds']} interleaved rounds; p50 compared; 'runs' column = samples",
             f"- measured float32 matmul peak at {meta['threads']} threads: {meta['matmul_peak_gflops_ort']:.1f} GFLOP/s "
             f"(ONNX Runtime 768x768 MatMul, best run, re-measured between models), "
             f"{meta['matmul_peak_gflops_numpy']:.1f} GFLOP/s (numpy, measured once)",
             "- load average before / after: " + " / ".join(", ".join(f"{x:.2f}" for x in meta[k])
                                                            for k in ("load_average_before", "load_average_after")),
             f"- {meta['vnni_note']}", ""]
    lines.append(markdown_table(rows, RESULT_COLUMNS, formatters=RESULT_FORMATS))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
