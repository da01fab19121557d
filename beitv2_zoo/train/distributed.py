"""One process or many: read ``torchrun``'s environment, start and stop the process group.

``torchrun`` (``python -m torch.distributed.run``) sets ``RANK``, ``LOCAL_RANK``,
``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``; without them we run as a single process.
GPUs use NCCL (one GPU per local rank), CPUs use gloo.
"""

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits.

    Attributes:
        rank: global rank, 0..world_size-1.
        local_rank: rank on this machine (the GPU index).
        world_size: number of processes.
        device: this process's device.
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that logs and writes checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(device: str | None = None) -> DistEnv:
    """Start the process group when launched by ``torchrun``, and pick the device.

    Args:
        device: ``'cpu'``, ``'cuda'`` or ``None`` (CUDA when available).
    """
    use_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    if "RANK" not in os.environ:
        chosen = torch.device(device or ("cuda" if use_cuda else "cpu"))
        return DistEnv(device=chosen)
    rank, local_rank, world_size = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"]), int(os.environ["WORLD_SIZE"])
    if use_cuda:
        torch.cuda.set_device(local_rank)
        chosen = torch.device("cuda", local_rank)
    else:
        chosen = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", device_id=chosen if use_cuda else None)
    return DistEnv(rank, local_rank, world_size, chosen)


def sync_batchnorm(module: nn.Module, env: DistEnv) -> nn.Module:
    """``module`` with every BatchNorm turned into a :class:`torch.nn.SyncBatchNorm` under DDP on GPUs.

    Batch statistics are then computed over the global batch (the official segmentation configs'
    ``SyncBN``: 8 GPUs × 2 images). SyncBatchNorm runs only on GPUs (NCCL), so on CPU processes
    (gloo) and in a single process the BatchNorms stay as they are: each process normalises with
    its own batch's statistics and keeps its own running averages (the loop does not broadcast
    buffers), and rank 0's are the ones saved. The parameter and buffer names do not change.
    """
    if env.distributed and env.device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return module


def teardown(env: DistEnv) -> None:
    """Destroy the process group started by :func:`setup`."""
    if env.distributed and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_mean(values: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """The mean of ``values`` over all ranks (in place on a copy)."""
    values = values.clone()
    if env.distributed:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
        values /= env.world_size
    return values


def all_reduce_sum(values: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """The sum of ``values`` over all ranks (on a copy)."""
    values = values.clone()
    if env.distributed:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def gather_objects(item: Any, env: DistEnv) -> list[Any]:
    """Every rank's ``item``, in rank order (a pickled collective; small objects only)."""
    if not env.distributed:
        return [item]
    items: list[Any] = [None] * env.world_size
    dist.all_gather_object(items, item)
    return items


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()
