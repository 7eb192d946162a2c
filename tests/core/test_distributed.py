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

from edgecv.demo.synthetic import make_shapes_dataset  # noqa: E402
from edgecv.models.checkpoint import load_checkpoint  # noqa: E402
from edgecv.training.distributed import DistInfo, all_reduce_sum, gather_lists, init_distributed  # noqa: E402


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


# ----------------------------------------------------------------------------- ranks in lockstep
# Rank 1's first batch holds no readable image. Before the fix rank 1 skipped that step: rank 0's
# third gradient all-reduce waited for a partner that never came (gloo timed out after the 30 s
# set below; the default is 30 minutes), and rank 1's LR schedule fell a step behind.
_LOCKSTEP_SCRIPT = r'''
import datetime, json, sys
import torch, torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from edgecv.training.distributed import DistInfo, cleanup_distributed
from edgecv.training.loop import train_one_epoch
from edgecv.training.setup import WarmupCosine


def run(info):
    # A function, so the DDP wrapper is garbage once it returns (see cleanup_distributed).
    torch.manual_seed(0)  # the same initial weights on both ranks
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(4, 2))
    ddp = DistributedDataParallel(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine(6, 1))
    gen = torch.Generator().manual_seed(100 + info.rank)

    def good():
        return {"x": torch.randn(4, 3, 8, 8, generator=gen), "y": torch.randint(0, 2, (4,), generator=gen),
                "bad": []}

    empty = {"x": None, "y": None, "bad": [f"rank{info.rank}/broken.png"]}
    batches = [empty, good(), good()] if info.rank == 1 else [good(), good(), good()]
    steps = []
    optimizer.register_step_post_hook(lambda *args: steps.append(1))
    result = train_one_epoch(ddp, batches, optimizer=optimizer, scheduler=scheduler, scaler=None,
                             criterion=nn.CrossEntropyLoss(), device=torch.device("cpu"), dist=info, amp=False,
                             grad_clip=None, placeholder=torch.zeros(1, 3, 8, 8), show_progress=False)
    params = torch.cat([p.detach().flatten() for p in model.parameters()])
    return {"rank": info.rank, "scheduler_steps": scheduler.last_epoch, "lr": optimizer.param_groups[0]["lr"],
            "optimizer_steps": len(steps), "params": params.tolist(), "samples": result.samples,
            "bad": result.bad}


dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=30))
info = DistInfo(world_size=2, rank=dist.get_rank(), backend="gloo")
out = run(info)
cleanup_distributed(info)
with open(sys.argv[1] + f".{info.rank}.json", "w") as handle:
    json.dump(out, handle)
'''


def test_ranks_stay_in_lockstep_when_a_batch_has_no_readable_image(tmp_path):
    script = tmp_path / "lockstep.py"
    script.write_text(_LOCKSTEP_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
           str(_free_port()), str(script), str(tmp_path / "result")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr[:1500] + "\n...\n" + proc.stderr[-1500:]
    r0, r1 = (json.loads((tmp_path / f"result.{rank}.json").read_text()) for rank in (0, 1))
    # Both ranks stepped the optimiser and the schedule once per batch: same LR, same weights.
    assert r0["scheduler_steps"] == r1["scheduler_steps"] == 3
    assert r0["optimizer_steps"] == r1["optimizer_steps"] == 3
    assert r0["lr"] == r1["lr"]
    assert r0["params"] == pytest.approx(r1["params"], abs=1e-7)
    # Metrics count only real samples (12 + 8), and both ranks list the unreadable file.
    assert r0["samples"] == r1["samples"] == 20
    assert r0["bad"] == r1["bad"] == ["rank1/broken.png"]


def _tiny_loop_parts():
    from torch import nn

    from edgecv.training.setup import WarmupCosine

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine(4, 0))
    return model, optimizer, scheduler


def _counting(optimizer):
    counts = {"steps": 0}
    optimizer.register_step_post_hook(lambda *args: counts.__setitem__("steps", counts["steps"] + 1))
    return counts


def test_empty_batch_steps_the_schedule_in_a_single_process():
    from edgecv.training.loop import train_one_epoch

    model, optimizer, scheduler = _tiny_loop_parts()
    counts = _counting(optimizer)
    good = {"x": torch.ones(2, 3, 2, 2), "y": torch.tensor([0, 1]), "bad": []}
    empty = {"x": None, "y": None, "bad": ["broken.png"]}
    result = train_one_epoch(model, [good, empty, good, empty], optimizer=optimizer, scheduler=scheduler,
                             scaler=None, criterion=torch.nn.CrossEntropyLoss(), device=torch.device("cpu"),
                             dist=DistInfo(), amp=False, grad_clip=None, show_progress=False)
    assert scheduler.last_epoch == 4  # the schedule ends where it was planned to
    assert counts["steps"] == 2  # alone, an empty batch has nothing to learn from
    assert result.samples == 4 and result.bad == ["broken.png", "broken.png"]


def test_empty_batch_takes_part_in_the_step_under_a_fake_process_group(monkeypatch):
    """With a process group, the empty batch still runs forward/backward/step (with zero weight),
    so the same number of gradient all-reduces and schedule steps happen on every rank."""
    import edgecv.training.loop as loop

    model, optimizer, scheduler = _tiny_loop_parts()
    counts = _counting(optimizer)
    forwards = []
    model.register_forward_hook(lambda module, args, out: forwards.append(args[0].shape[0]))
    collectives = []
    monkeypatch.setattr(loop, "all_reduce_sum", lambda t, info: collectives.append("all_reduce") or t)
    monkeypatch.setattr(loop, "gather_lists", lambda items, info: collectives.append("gather") or list(items))
    empty = {"x": None, "y": None, "bad": ["broken.png"]}
    good = {"x": torch.ones(2, 3, 2, 2), "y": torch.tensor([0, 1]), "bad": []}
    fake = DistInfo(world_size=2, rank=1, backend="gloo")
    result = loop.train_one_epoch(model, [empty, good], optimizer=optimizer, scheduler=scheduler, scaler=None,
                                  criterion=torch.nn.CrossEntropyLoss(), device=torch.device("cpu"), dist=fake,
                                  amp=False, grad_clip=None, placeholder=torch.zeros(1, 3, 2, 2),
                                  show_progress=False)
    assert forwards == [1, 2]  # the placeholder (1 sample), then the real batch
    assert counts["steps"] == 2 and scheduler.last_epoch == 2
    assert collectives == ["all_reduce", "gather"]  # the epoch's metrics, once
    assert result.samples == 2 and result.bad == ["broken.png"]  # the placeholder is not counted


def test_placeholder_step_changes_neither_weights_nor_norm_statistics(monkeypatch):
    """Zero weight: no gradient of its own (plain SGD leaves the weights as they are), and batch
    norm keeps its running statistics instead of averaging in an all-zero image."""
    from torch import nn

    import edgecv.training.loop as loop
    from edgecv.training.setup import WarmupCosine

    monkeypatch.setattr(loop, "all_reduce_sum", lambda t, info: t)  # no process group in this test
    monkeypatch.setattr(loop, "gather_lists", lambda items, info: list(items))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(16, 2))
    model[1].running_mean.fill_(0.5)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine(1, 0))
    counts = _counting(optimizer)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    empty = {"x": None, "y": None, "bad": ["broken.png"]}
    loop.train_one_epoch(model, [empty], optimizer=optimizer, scheduler=scheduler, scaler=None,
                         criterion=nn.CrossEntropyLoss(label_smoothing=0.1), device=torch.device("cpu"),
                         dist=DistInfo(world_size=2, rank=0, backend="gloo"), amp=False, grad_clip=1.0,
                         placeholder=torch.zeros(1, 3, 4, 4), show_progress=False)
    assert counts["steps"] == 1 and scheduler.last_epoch == 1
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert model[1].training  # batch norm is back in training mode


def test_placeholder_input_fits_the_model_input():
    """One sample in the model's own input layout: (1, C, H, W) zeros, or one unknown word."""
    from edgecv.preprocess import default_spec
    from edgecv.tokenizer import UNK_ID
    from edgecv.training.setup import DataBundle, placeholder_input

    image = placeholder_input(DataBundle("image", ["a", "b"], None, None, preprocess=default_spec(size=16)))
    assert image.shape == (1, 3, 16, 16) and image.dtype == torch.float32 and not image.any()
    text = placeholder_input(DataBundle("text", ["a", "b"], None, None))
    assert text.tolist() == [[UNK_ID]] and text.dtype == torch.int64
