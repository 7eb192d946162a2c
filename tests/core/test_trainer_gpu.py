"""CUDA paths of edgecv.train: mixed precision and DDP with NCCL (skipped without a GPU)."""
from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

import edgecv  # noqa: E402
from edgecv.demo.synthetic import make_shapes_dataset  # noqa: E402
from edgecv.models.checkpoint import load_checkpoint  # noqa: E402

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_shapes_dataset(tmp_path_factory.mktemp("gpu") / "shapes", per_class=300, size=32, seed=0)


def test_cuda_amp_run_learns_and_saves_scaler(shapes, tmp_path):
    result = edgecv.train(str(shapes), model="simple_cnn", img_size=16, epochs=6, batch_size=64, lr=2e-3,
                          model_kwargs={"dropout": 0.0}, min_crop_scale=0.8, device="cuda", quiet=True,
                          out=str(tmp_path / "run"))
    ckpt = load_checkpoint(result.last_checkpoint)
    assert ckpt["scaler"] is not None and "scale" in ckpt["scaler"]  # mixed precision was on
    assert all(t.device.type == "cpu" for t in ckpt["state_dict"].values())
    assert result.best_val_acc >= 0.6
    assert "with mixed precision" in (tmp_path / "run" / "train.log").read_text()


def test_torchrun_nccl_one_gpu(shapes, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "1", "--master-port", str(port),
           "-m", "edgecv", "train", str(shapes), "--model", "simple_cnn", "--img-size", "16", "--epochs", "2",
           "--batch-size", "64", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "1 process(es) (nccl)" in proc.stdout
    assert len(list(csv.DictReader(open(out / "metrics.csv")))) == 2
