"""Training on the GPU: 2 epochs with mixed precision (AMP) on one GPU, and a DDP run over NCCL
on every GPU present (torchrun)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import _gpu  # noqa: E402

pytestmark = pytest.mark.gpu

TRAIN = ["-m", "edgecv", "train", "--model", "simple_cnn", "--img-size", "32", "--batch-size", "32",
         "--workers", "2", "--device", "cuda", "--quiet"]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    from edgecv.demo.synthetic import make_shapes_dataset

    _gpu.require_torch_cuda()  # skip before generating data that nothing would use
    return make_shapes_dataset(tmp_path_factory.mktemp("shapes"), per_class=64, size=48)


def test_two_epochs_of_amp_training_on_cuda(shapes, tmp_path):
    import json

    out = tmp_path / "amp"
    _gpu.run([sys.executable, *TRAIN[:3], str(shapes), *TRAIN[3:], "--epochs", "2", "--out", str(out)])
    log = (out / "train.log").read_text(encoding="utf-8")
    assert "with mixed precision" in log, log[-2000:]
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    _gpu.write_section("60-amp", "AMP training on CUDA (simple_cnn, 2 epochs)", "\n".join([
        "```", *[line for line in log.splitlines() if "device" in line or "epoch" in line.lower()][:6], "```", "",
        f"summary: `{json.dumps({k: summary[k] for k in list(summary)[:8]}, default=str)}`"]))


def test_nccl_ddp_run_on_every_gpu(shapes, tmp_path):
    torch = _gpu.require_torch_cuda(min_gpus=2)
    n = torch.cuda.device_count()
    out = tmp_path / "ddp"
    _gpu.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(n),
              *TRAIN[:3], str(shapes), *TRAIN[3:], "--epochs", "1", "--out", str(out)],
             env={"OMP_NUM_THREADS": "1"})
    log = (out / "train.log").read_text(encoding="utf-8")
    assert f"{n} process(es) (nccl)" in log, log[-2000:]
    _gpu.write_section("70-nccl", f"NCCL DDP run on {n} GPUs", "```\n" + log[-1500:] + "\n```")
