"""The deploy layers never reach torch: every module under ``edgecv.runtimes`` and
``edgecv.graph`` (and the shared core) imports with torch blocked, and ``edgecv profile --torch``
on a torch-free install ends in one clear line instead of a traceback."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtimes"))
from _infer_fixtures import image_model  # noqa: E402

# A sitecustomize on PYTHONPATH blocks torch before anything else runs in the child process.
BLOCK_TORCH = 'import sys\nsys.modules["torch"] = None  # any "import torch" now raises ImportError\n'

WALK = textwrap.dedent(
    """
    import importlib, json, pkgutil, sys
    import edgecv.graph, edgecv.runtimes
    core = ["edgecv", "edgecv.errors", "edgecv.io", "edgecv.table", "edgecv.contract", "edgecv.preprocess",
            "edgecv.postprocess", "edgecv.tokenizer", "edgecv.onnx_file", "edgecv.data", "edgecv.hardware",
            "edgecv.parsing", "edgecv.metrics", "edgecv.cli"]
    names = list(core)
    for pkg in (edgecv.graph, edgecv.runtimes):
        names += [m.name for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + ".")]
    for name in names:
        importlib.import_module(name)
    print(json.dumps({"imported": names, "torch": sys.modules.get("torch") is not None}))
    """
)


def _env(tmp_path: Path) -> dict[str, str]:
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(BLOCK_TORCH, encoding="utf-8")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


def test_every_runtime_and_graph_module_imports_without_torch(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", WALK], capture_output=True, text=True, env=_env(tmp_path),
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not result["torch"]
    imported = set(result["imported"])
    # the walk really reached the subpackages
    assert {"edgecv.runtimes.profiling.job", "edgecv.runtimes.profiling.baselines", "edgecv.runtimes.streaming.stream",
            "edgecv.graph.stats", "edgecv.graph.activations"} <= imported


def test_profile_with_torch_baseline_and_no_torch_is_one_line(tmp_path: Path) -> None:
    model = image_model(tmp_path / "model.onnx")
    ckpt = tmp_path / "best.pt"
    ckpt.write_bytes(b"not needed: torch is missing before the checkpoint is read")
    proc = subprocess.run([sys.executable, "-m", "edgecv", "profile", str(model), "--torch", str(ckpt),
                           "--runs", "3", "--warmup", "0"],
                          capture_output=True, text=True, env=_env(tmp_path), timeout=120)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "torch is not installed" in lines[0] and "--torch" in lines[0] and "pip install" in lines[0]
