"""Helpers of the GPU checks (``tests/gpu``, run by ``scripts/gpu_check.sh``).

Every check asks first whether what it needs is really there -- a session that ONNX Runtime
really put on CUDA / TensorRT (``get_providers()``, never ``get_available_providers()``), torch
with CUDA, two GPUs for NCCL -- and skips with the reason otherwise, so a machine without them
ends with skips, not failures. Results go to Markdown sections in ``$EDGECV_GPU_REPORT_DIR``
(nothing is written without it), which ``tests/gpu/report.py`` assembles into ``gpu_report.md``.

Models come from edgecv's own zoo with random weights (``edgecv export --random-init``: no
downloads); "real images" are the generated shapes of ``edgecv.demo.synthetic``.
"""
from __future__ import annotations

import os
import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pytest

ZOO = ("mobilenet_v2", "mobilenet_v3_small", "squeezenet1_1")
# the batch sizes of the latency check; parity asks for the same TensorRT profile, so it reuses
# those engines instead of building its own
PROFILE_BATCHES = (1, 8, 32)
TRT, CUDA, CPU = "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"
ROOT = Path(__file__).resolve().parents[2]


def write_section(key: str, title: str, body: str) -> None:
    """One report section (``key`` orders them); a no-op unless $EDGECV_GPU_REPORT_DIR is set."""
    folder = os.environ.get("EDGECV_GPU_REPORT_DIR")
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    (Path(folder) / f"{key}.md").write_text(f"## {title}\n\n{body.rstrip()}\n", encoding="utf-8")


def tiny_model(path: Path) -> Path:
    """A small conv classifier built with onnx.helper (no torch): enough to ask for a provider."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array((rng.standard_normal((8, 3, 3, 3)) * 0.1).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["input", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("ReduceMean", ["c"], ["logits"], axes=[2, 3], keepdims=0)]  # (N, 8)
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 32, 32])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 8])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def granted(provider: str, model: Path, **options: Any) -> list[str]:
    """What a session asked for ``provider`` really got (``get_providers()``)."""
    from edgecv.runtimes.engines.base import EngineOptions, open_engine

    engine = open_engine(model, EngineOptions(provider=provider, allow_fallback=True, **options))
    return list(engine.providers)


@lru_cache(maxsize=None)
def provider_gap(name: str, model: str) -> str | None:
    """Why ``name`` cannot run here, or None when a session really gets it."""
    import onnxruntime as ort

    from edgecv.runtimes.engines.session import nvidia_gpu_present

    if not nvidia_gpu_present():
        return "no NVIDIA GPU / CUDA device on this machine"
    if name not in ort.get_available_providers():
        return f"this onnxruntime build has no {name}"
    got = granted({TRT: "tensorrt", CUDA: "cuda"}[name], Path(model))
    if got[0] != name:
        libs = "TensorRT libraries (libnvinfer)" if name == TRT else "CUDA / cuDNN libraries"
        return f"{name} is listed but a session gets {', '.join(got)} (missing {libs}?)"
    return None


def require(name: str, model: Path) -> None:
    """Skip the calling test unless ONNX Runtime really grants ``name``."""
    gap = provider_gap(name, str(model))
    if gap:
        pytest.skip(gap)


def require_torch_cuda(min_gpus: int = 1) -> Any:
    """torch with at least ``min_gpus`` CUDA devices, or skip saying what is missing."""
    try:
        import torch
    except ImportError:
        pytest.skip("torch is not installed (pip install '.[train]')")
    if not torch.cuda.is_available():
        pytest.skip(f"torch {torch.__version__} has no usable CUDA device (a CPU-only torch build, or no GPU)")
    if torch.cuda.device_count() < min_gpus:
        pytest.skip(f"{torch.cuda.device_count()} GPU only: NCCL across processes needs {min_gpus} or more")
    return torch


def run(cmd: Sequence[str], *, env: dict[str, str] | None = None, timeout: float = 1800) -> subprocess.CompletedProcess:
    """Run a command from the repository root; a failure shows its output."""
    out = subprocess.run(list(cmd), cwd=ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                         timeout=timeout, check=False)
    assert out.returncode == 0, f"{' '.join(cmd)} exited {out.returncode}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


def export_zoo(folder: Path, names: Sequence[str] = ZOO) -> dict[str, dict[str, Path]]:
    """``{name: {"fp32": path, "fp16": path}}``: random-init exports (verified by the exporter)."""
    out = {}
    for name in names:
        path = folder / f"{name}.onnx"
        if not path.exists():
            run([sys.executable, "-m", "edgecv", "export", "--model", name, "--random-init", "--num-classes",
                 "1000", "-o", str(path), "--fp16"], timeout=900)
        out[name] = {"fp32": path, "fp16": folder / f"{name}.fp16.onnx"}
    return out


def shape_images(n: int, *, size: int = 256, seed: int = 0) -> list[np.ndarray]:
    """``n`` generated BGR images of coloured shapes (``edgecv.demo.synthetic``)."""
    from edgecv.demo.synthetic import SHAPES, render_shape_image

    rng = np.random.default_rng(seed)
    return [render_shape_image(SHAPES[i % len(SHAPES)], size=size, rng=rng) for i in range(n)]


def logits(model: Path, images: Sequence[np.ndarray], *, batch: int = 16, **options: Any) -> tuple[np.ndarray, Any]:
    """(N, C) raw scores of ``model`` on ``images`` through the classifier API, and its engine."""
    from edgecv.runtimes.classifier import load
    from edgecv.runtimes.engines.base import EngineOptions

    clf = load(model, engine=EngineOptions(batch_sizes=PROFILE_BATCHES, **options))
    x = clf.preprocess(list(images))
    parts = [clf.run(x[i:i + batch])[0] for i in range(0, len(x), batch)]
    return np.concatenate(parts).astype(np.float32).reshape(len(x), -1), clf.engine


def agreement(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(top-1 agreement, max |diff|) of two (N, C) score arrays."""
    return float(np.mean(a.argmax(1) == b.argmax(1))), float(np.max(np.abs(a - b)))


def table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """A Markdown table (numbers to 3 decimals)."""
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.2e}" if 0 < abs(value) < 0.01 else f"{value:.3f}"
        return "-" if value is None else str(value)

    head = "| " + " | ".join(h for _, h in columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    return "\n".join([head, rule] + ["| " + " | ".join(cell(r.get(k)) for k, _ in columns) + " |" for r in rows])
