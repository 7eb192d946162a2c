"""Other int8 recipes for a model whose int8 file loses to fp32 (mobilenet_v3_small by default).

``benchmarks/int8.py`` times what ``edgecv export --int8`` does: static QDQ, per-channel int8
weights, uint8 activations, then the operators without int8 kernels left in float. When that
still loses, is there a recipe that wins? This script quantizes the same fp32 file (random
weights, 224 px, calibrated on 32 generated images) with each recipe below and times every
int8 file against fp32 with the export's own harness (same threads, interleaved blocks, pooled
medians) at batch 1 and 8:

* ``export default``: what ``export --int8`` writes first (every quantizable operator);
* ``float-only ops excluded``: its retry (HardSigmoid/HardSwish and the Mul they feed in float);
* ``QOperator format``: QLinearConv & co. written out instead of QDQ pairs;
* ``+ depthwise convs in float``: the retry, plus every grouped convolution left in float;
* ``1x1 convs and Gemm only``: int8 only where int8 matrix kernels do the most work;
* ``int8 activations``: signed int8 activations (S8S8) instead of uint8;
* ``per-tensor weights``: one scale per weight tensor (the retry's exclusions kept).

    python benchmarks/int8_recipes.py                      # writes benchmarks/results/int8_recipes.{json,md}
    python benchmarks/int8_recipes.py --model mobilenet_v2 --rounds 4
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE))
from int8 import calibration  # noqa: E402 - the calibration images of the int8 benchmark

RESULTS = _HERE / "results"


def _grouped(node: Any) -> bool:
    return node.op_type == "Conv" and any(a.name == "group" and a.i > 1 for a in node.attribute)


def recipes() -> dict[str, dict[str, Any]]:
    """label -> quantize_static settings; ``exclude(model, node, float_only)`` picks float nodes."""
    from onnxruntime.quantization import QuantFormat, QuantType

    def float_only(_m: Any, n: Any, fo: set[str]) -> bool:
        return n.name in fo

    return {
        "export default": {},
        "float-only ops excluded": {"exclude": float_only},
        "QOperator format": {"quant_format": QuantFormat.QOperator},
        "+ depthwise convs in float": {"exclude": lambda m, n, fo: n.name in fo or _grouped(n)},
        "1x1 convs and Gemm only": {"exclude": lambda m, n, fo: n.op_type not in ("Conv", "Gemm") or _grouped(n)
                                    or any(a.name == "kernel_shape" and list(a.ints) != [1, 1] for a in n.attribute)},
        "int8 activations": {"exclude": float_only, "activation_type": QuantType.QInt8},
        "per-tensor weights": {"exclude": float_only, "per_channel": False},
    }


def quantize(fp32: Path, out: Path, samples: Any, spec: Any, settings: dict[str, Any]) -> tuple[Path, int]:
    """One recipe through the exporter's scaffold (ORT pre-processing, then quantize_static)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from edgecv.exporters.quantize import _calibration_reader, _quantize_with, float_only_nodes, name_nodes

    options = {"quant_format": QuantFormat.QDQ, "per_channel": True, "activation_type": QuantType.QUInt8,
               **{k: v for k, v in settings.items() if k != "exclude"}}
    excluded: list[str] = []

    def run(prepared: Path, dest: Path) -> None:
        model = onnx.load(str(prepared))
        name_nodes(model)
        named = dest.with_name("named.onnx")
        onnx.save(model, str(named))
        pick: Callable[..., bool] | None = settings.get("exclude")
        if pick is not None:
            fo = {name for name, _ in float_only_nodes(model)}
            excluded.extend(n.name for n in model.graph.node if pick(model, n, fo))
        quantize_static(str(named), str(dest), _calibration_reader(samples, spec), reduce_range=False,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                        nodes_to_exclude=excluded, **options)

    path, _ = _quantize_with(fp32, out, run, kind="static")
    return path, len(excluded)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="mobilenet_v3_small")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--block", type=float, default=0.1)
    args = ap.parse_args(argv)

    import torch

    from edgecv.exporters.onnx_export import export_onnx
    from edgecv.hardware import read_cpuinfo
    from edgecv.models import create_model
    from edgecv.preprocess import default_spec
    from edgecv.runtimes.profiling.ab_timing import compare_latency

    started = time.time()
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgecv-int8-recipes-") as tmp_name:
        tmp = Path(tmp_name)
        torch.manual_seed(0)
        fp32 = export_onnx(create_model(args.model, num_classes=1000).eval(), tmp / "m.onnx", input_shape=(3, 224, 224))
        samples, spec = calibration(tmp, 224), default_spec(size=224)
        pool = np.random.default_rng(0).standard_normal((8, 3, 224, 224)).astype(np.float32)
        for i, (label, settings) in enumerate(recipes().items()):
            path, n_float = quantize(fp32, tmp / f"r{i}.onnx", samples, spec, settings)
            for pair in compare_latency(fp32, path, lambda b: {"input": pool[:b]}, batches=[1, 8],
                                        threads=args.threads, rounds=args.rounds, block_s=args.block):
                rows.append({"recipe": label, "float_nodes": n_float, "batch": pair.batch,
                             "fp32_p50_ms": pair.a_p50_ms, "int8_p50_ms": pair.b_p50_ms, "speedup": pair.speedup})
                print(f"{label:28s} batch {pair.batch}: fp32 {pair.a_p50_ms:.2f} ms, int8 {pair.b_p50_ms:.2f} ms "
                      f"-> {pair.speedup:.2f}x", flush=True)
    meta = {"model": args.model, "cpu": read_cpuinfo()[0], "threads": args.threads, "rounds": args.rounds,
            "seconds": round(time.time() - started, 1)}
    lines = [f"# int8 recipes for {args.model} (random weights, 224 px, ONNX Runtime CPU)", "",
             f"{meta['cpu']}, {args.threads} threads, {args.rounds} interleaved rounds, p50 of pooled samples; "
             f"{meta['seconds']:.0f} s", "",
             "| recipe | nodes left in float | batch | fp32 p50 ms | int8 p50 ms | int8 speed-up |",
             "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['recipe']} | {r['float_nodes']} | {r['batch']} | {r['fp32_p50_ms']:.2f} | "
              f"{r['int8_p50_ms']:.2f} | **{r['speedup']:.2f}x** |" for r in rows]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "int8_recipes.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    (RESULTS / "int8_recipes.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
