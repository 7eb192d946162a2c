"""CUDA fp32, CUDA fp16 and TensorRT fp16 against CPU fp32 on generated images: top-1 agreement
and max |diff| of the scores (random weights: agreement, not accuracy, is what can be checked)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import _gpu  # noqa: E402

pytestmark = pytest.mark.gpu

N_IMAGES = 96
# (label, provider, export, options, minimum top-1 agreement with CPU fp32)
CASES = [("CUDA fp32", "cuda", "fp32", {}, 0.98),
         ("CUDA fp16", "cuda", "fp16", {}, 0.90),
         ("TensorRT fp16", "tensorrt", "fp32", {"fp16": True}, 0.90)]


@pytest.mark.parametrize("name", _gpu.ZOO)
def test_gpu_parity_against_cpu_fp32(zoo, tiny, name):
    images = _gpu.shape_images(N_IMAGES)
    reference, _ = _gpu.logits(zoo[name]["fp32"], images, provider="cpu")
    rows, low = [], []
    for label, provider, export, options, minimum in CASES:
        if provider == "tensorrt" and _gpu.provider_gap(_gpu.TRT, str(tiny)):
            rows.append({"run": label, "note": _gpu.provider_gap(_gpu.TRT, str(tiny))})
            continue
        scores, engine = _gpu.logits(zoo[name][export], images, provider=provider, **options)
        assert engine.device == provider, f"{label}: ran on {engine.providers}"
        top1, diff = _gpu.agreement(reference, scores)
        rows.append({"run": label, "precision": engine.precision, "top1": f"{100 * top1:.1f}%", "diff": diff,
                     "note": f"at least {100 * minimum:.0f}% required"})
        if top1 < minimum:
            low.append(f"{label}: top-1 agreement {100 * top1:.1f}% < {100 * minimum:.0f}%")
    _gpu.write_section(f"30-parity-{name}", f"Parity vs CPU fp32: {name}", "\n".join([
        f"{N_IMAGES} generated shape images, random-init weights.", "",
        _gpu.table(rows, [("run", "run"), ("precision", "precision"), ("top1", "top-1 agreement"),
                          ("diff", "max abs diff"), ("note", "note")])]))
    assert not low, "; ".join(low)
