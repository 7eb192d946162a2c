"""DistributedDataParallel plumbing for ``edgecv train`` under ``torchrun``.

torchrun sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; when ``WORLD_SIZE > 1`` training joins
a process group (NCCL on CUDA, gloo on CPU), wraps the model in DDP and shards the data with a
distributed sampler. Metrics are summed across ranks with :func:`all_reduce_sum` so every rank
sees the same numbers, and only rank 0 writes files or prints.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        """True inside a process group (torchrun), even with a single process."""
        return self.backend is not None

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that prints and writes files."""
        return self.rank == 0


def env_world_size() -> int:
    """torchrun's ``WORLD_SIZE``; 1 when unset or malformed, so a stray variable never breaks a plain run."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def launched_by_torchrun() -> bool:
    """torchrun (torch.distributed.run) sets these for every worker it starts."""
    return env_world_size() > 1 or ("TORCHELASTIC_RUN_ID" in os.environ and "LOCAL_RANK" in os.environ)


def init_distributed(device_type: str) -> DistInfo:
    """Join the torchrun process group if launched by torchrun (also with one process, so the
    DDP code path can be checked on a single GPU); plain runs return a default :class:`DistInfo`.
    NCCL needs one GPU per process, so CUDA ranks bind ``cuda:LOCAL_RANK``."""
    world = env_world_size()
    if not launched_by_torchrun():
        return DistInfo()
    import torch
    import torch.distributed as dist

    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistInfo(world_size=world, rank=rank, local_rank=local_rank, backend=backend)


def cleanup_distributed(info: DistInfo, *, succeeded: bool = True) -> None:
    """Leave the process group so every rank exits cleanly.

    A DDP wrapper sits in reference cycles that keep the gloo process group (and its worker
    threads) alive past ``destroy_process_group``; left for interpreter shutdown, those threads
    abort the process ("terminate called without an active exception") on a busy machine, so
    the cycles are collected first. After a successful run the ranks also meet at a barrier, so
    none tears down while rank 0 is still writing plots. After a failure there is no barrier:
    the other ranks may never reach it."""
    if not info.enabled:
        return
    import gc

    import torch.distributed as dist

    gc.collect()
    if dist.is_initialized():
        if succeeded:
            dist.barrier()
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    """Wait for every rank (no-op in a single process), e.g. until rank 0 has written a file."""
    if info.enabled:
        import torch.distributed as dist

        dist.barrier()


def all_reduce_sum(tensor: Any, info: DistInfo) -> Any:
    """Sum a tensor over all ranks in place (no-op in a single process); returns it."""
    if info.enabled:
        import torch.distributed as dist

        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    """Rank 0's ``obj`` on every rank (e.g. a decision taken by reading files)."""
    if not info.enabled:
        return obj
    import torch.distributed as dist

    holder = [obj]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def gather_lists(items: list[Any], info: DistInfo) -> list[Any]:
    """Concatenate every rank's list (rank order); used for the paths of unreadable images."""
    if not info.enabled:
        return list(items)
    import torch.distributed as dist

    parts: list[Any] = [None] * info.world_size
    dist.all_gather_object(parts, list(items))
    return [x for part in parts for x in part]


def unwrap(model: Any) -> Any:
    """The plain module inside a DDP wrapper (state dicts are saved without ``module.``)."""
    return getattr(model, "module", model)
