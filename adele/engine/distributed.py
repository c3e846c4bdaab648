"""torchrun / DistributedDataParallel helpers. One process = no-ops.

Launch with PyTorch's own launcher, never a home-made one::

    torchrun --nproc_per_node 2 -m adele train --data colin27 --out runs/ddp
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Iterator, Optional

import torch
import torch.distributed as dist

from ..core import multiscale_logits
from ..data.dataset import batch_indices


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.barrier()


def dist_info() -> DistInfo:
    """Read torchrun's environment; initialise the process group once (nccl on CUDA, else gloo)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled:
        t = t.clone()
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def rank_batches(shapes: list, batch_size: int, info: DistInfo) -> Iterator[list[int]]:
    """Indices of this process's share of the images (every ``world_size``-th from its rank), in batches of
    ``batch_size``, or one at a time when the images differ in size: the eval-mode passes over a training set."""
    return batch_indices(shapes, batch_size, info.rank, info.world_size)


def steps_per_epoch(n: int, batch_size: int, world_size: int = 1, fixed: Optional[int] = None) -> int:
    """Optimizer steps in one epoch of ``n`` images: ``fixed`` (``train.steps_per_epoch``, an epoch of a
    planned number of steps), else one pass: each of ``world_size`` processes takes ceil(n / world_size)
    of the images (:class:`EpochSampler`) in batches of ``batch_size``."""
    if fixed is not None:
        return int(fixed)
    per_rank = math.ceil(n / world_size)
    return math.ceil(per_rank / batch_size)


class EpochSampler(torch.utils.data.Sampler):
    """Shuffled indices for one epoch, sharded by rank: a pure function of (seed, epoch, rank, world).

    The permutation is ``randperm(n)`` seeded with ``seed * 100003 + epoch``, padded by
    wrapping to a multiple of the world size; rank ``r`` takes ``perm[r::world]``. With one
    process and batch ``B * world`` the union of each step's batches is the same set of images
    as with ``world`` processes and batch ``B``, so runs compare across world sizes and resume
    exactly.

    With ``steps`` (an epoch of a fixed number of steps, ``train.steps_per_epoch``) each rank takes
    ``steps * batch_size`` indices: the epoch's permutation followed by further permutations (seeded
    from the same epoch) as often as needed, every image once before any image twice.
    """

    def __init__(self, n: int, seed: int, epoch: int, info: "DistInfo", steps: Optional[int] = None, batch_size: int = 1):
        g = torch.Generator().manual_seed(seed * 100003 + epoch)
        perm = torch.randperm(n, generator=g).tolist()
        if steps is None:
            pad = (-len(perm)) % info.world_size
            perm = perm + perm[:pad]
            self.indices = perm[info.rank :: info.world_size]
            return
        need = steps * batch_size * info.world_size
        while len(perm) < need:
            perm += torch.randperm(n, generator=g).tolist()
        self.indices = perm[:need][info.rank :: info.world_size]

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class MultiScaleNet(torch.nn.Module):
    """Wraps a segmentation model so one ``forward`` can run it at several scales.

    DistributedDataParallel must see a single forward per backward; ADELE's
    consistency loss needs the model at scales (1.0, 0.7, 1.5), so the scales
    run inside this module's forward. ``net(x)`` -> logits; ``net(x, scales=...,
    out_size=...)`` -> list of logits resized to ``out_size``.
    """

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x, scales=None, out_size=None):
        if scales is None:
            return self.model(x)
        return multiscale_logits(self.model, x, scales, out_size)
