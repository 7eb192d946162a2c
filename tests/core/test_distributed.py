"""``edgecv train`` under torchrun: 2 CPU processes (gloo), one set of outputs from rank 0."""
from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from edgecv.models.checkpoint import load_checkpoint  # noqa: E402
from edgecv.training.distributed import DistInfo, all_reduce_sum, gather_lists, init_distributed  # noqa: E402
from edgecv.demo.synthetic import make_shapes_dataset  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_single_process_helpers_are_no_ops(monkeypatch):
    for name in ("WORLD_SIZE", "TORCHELASTIC_RUN_ID", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    info = init_distributed("cpu")
    assert info == DistInfo() and info.is_main and not info.enabled
    t = torch.tensor([1.0, 2.0])
    assert all_reduce_sum(t, info).tolist() == [1.0, 2.0]
    assert gather_lists(["a"], info) == ["a"]


def test_torchrun_two_cpu_processes(tmp_path):
    data = make_shapes_dataset(tmp_path / "shapes", per_class=10, size=20, classes=("circle", "square", "star"))
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
           str(_free_port()), "-m", "edgecv", "train", str(data), "--model", "simple_cnn", "--img-size", "16",
           "--epochs", "2", "--batch-size", "8", "--workers", "0", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    # torchrun's own report comes last; the failing rank's message (e.g. a C++ abort) comes first.
    assert proc.returncode == 0, proc.stderr[:1500] + "\n...\n" + proc.stderr[-1500:]
    assert "2 process(es) (gloo)" in proc.stdout
    # Only rank 0 prints and writes: each epoch line appears once.
    assert proc.stdout.count("epoch 1/2 ") == 1
    log = (out / "train.log").read_text()
    assert log.count("epoch 2/2 ") == 1
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    # Validation metrics are summed over both ranks: the confusion matrix covers all 6 val images.
    cm = list(csv.reader(open(out / "confusion_matrix.csv")))
    assert sum(int(v) for row in cm[1:] for v in row[1:]) == 6
    ckpt = load_checkpoint(out / "last.pt")
    assert not any(k.startswith("module.") for k in ckpt["state_dict"])
    assert json.loads((out / "summary.json").read_text())["epochs_done"] == 2
