"""Data-parallel training and sample-parallel sampling on ``torch.distributed``.

Launched by ``torchrun`` (which sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and
``MASTER_ADDR``/``MASTER_PORT``), every process (*rank*) runs the same command:

- **Training** (DistributedDataParallel): rank ``r`` draws its own random windows
  from a generator seeded ``seed + 1_000_003·r``, so the ranks see distinct
  batches; after ``backward`` the gradients are averaged over ranks
  (``g = (1/R) Σ_r g_r``), which for equal per-rank batches ``B`` is the gradient of
  the mean loss over one batch of ``R·B`` windows. The effective batch is ``R·B`` at
  the same learning rate. Rank 0 alone validates, logs and writes checkpoints.
- **Sampling**: ``N`` samples are split into contiguous shards
  ``n_r = ⌊N/R⌋ + [r < N mod R]``; rank ``r`` samples its shard with seed
  ``seed + r`` on its own device, and rank 0 gathers the shards in rank order. The
  result equals concatenating single-process runs of sizes ``n_r`` and seeds
  ``seed + r``.

NCCL on CUDA devices (one GPU per rank: ``cuda:LOCAL_RANK``), gloo on CPUs. Every
collective has a timeout, so a rank that dies does not leave the others hanging.
Without ``torchrun`` (``WORLD_SIZE`` unset or 1) nothing here does anything.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Optional

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "env_world_size", "init_from_env", "current", "shard_sizes", "shard_of",
           "gather_samples", "any_rank", "barrier", "shutdown", "rank_seed", "rank_device", "run_sharded",
           "DistributedError"]

#: seconds a collective waits for the other ranks before the job fails with a message
DEFAULT_TIMEOUT_S = float(os.environ.get("SDA_DIST_TIMEOUT", "300"))
_SEED_STRIDE = 1_000_003


class DistributedError(RuntimeError):
    """The process group could not be formed or a rank went away; one line for the user."""


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_world_size() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def current() -> DistInfo:
    """The process group this process belongs to (a single process when there is none)."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank())))
    return DistInfo()


def init_from_env(device: str = "cpu", timeout_s: float = DEFAULT_TIMEOUT_S,
                  init_method: Optional[str] = None) -> DistInfo:
    """Joins the process group ``torchrun`` describes; a no-op for one process.

    ``device`` picks the backend (``nccl`` for CUDA, else ``gloo``); for CUDA each
    rank takes ``cuda:LOCAL_RANK``. ``init_method`` overrides the environment
    (tests use ``file://…``, with ``RANK``/``WORLD_SIZE`` set).
    """
    world = env_world_size()
    if world <= 1:
        return DistInfo()
    if dist.is_initialized():
        return current()
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    cuda = str(device).startswith("cuda") or (str(device) == "auto" and torch.cuda.is_available())
    backend = "nccl" if cuda else "gloo"
    if cuda:
        torch.cuda.set_device(local)
    try:
        dist.init_process_group(backend, init_method=init_method or "env://", rank=rank, world_size=world,
                                timeout=datetime.timedelta(seconds=timeout_s))
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a rendezvous that fails
        raise DistributedError(f"rank {rank} could not join the {world}-process group ({backend}): "
                               f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    return DistInfo(rank, world, local)


def rank_device(device, info: DistInfo) -> torch.device:
    """``cuda:LOCAL_RANK`` for a CUDA run with several ranks, else ``device`` itself."""
    device = torch.device(device)
    if info.enabled and device.type == "cuda":
        return torch.device("cuda", info.local_rank)
    return device


def rank_seed(seed: int, info: DistInfo, stride: int = _SEED_STRIDE) -> int:
    return int(seed) + stride * info.rank


def shard_sizes(n: int, world_size: int) -> list[int]:
    base, extra = divmod(int(n), int(world_size))
    return [base + (r < extra) for r in range(world_size)]


def shard_of(n: int, info: DistInfo) -> int:
    return shard_sizes(n, info.world_size)[info.rank]


def gather_samples(x: torch.Tensor, n_total: int, info: DistInfo) -> Optional[torch.Tensor]:
    """All ranks' shards concatenated in rank order on rank 0 (CPU); ``None`` elsewhere.

    Shards may differ in size by one: each is padded to the largest before the
    collective (gloo and NCCL gather equal shapes) and trimmed after.
    """
    if not info.enabled:
        return x
    sizes = shard_sizes(n_total, info.world_size)
    pad = max(sizes)
    backend_cuda = dist.get_backend() == "nccl"
    local = x.to("cuda" if backend_cuda else "cpu")
    if local.shape[0] < pad:
        local = torch.cat([local, local.new_zeros((pad - local.shape[0], *local.shape[1:]))])
    # all_gather (not gather) works on both backends; the samples are small next to the run
    parts = [torch.empty_like(local) for _ in range(info.world_size)]
    dist.all_gather(parts, local)
    if not info.is_main:
        return None
    return torch.cat([p[:s].cpu() for p, s in zip(parts, sizes)])


def any_rank(flag: bool, info: DistInfo, device="cpu") -> bool:
    """Whether any rank has ``flag`` set (e.g. one rank hit its time limit: all stop together)."""
    if not info.enabled:
        return bool(flag)
    t = torch.tensor([1.0 if flag else 0.0], device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def run_sharded(fn, n_total: int, seed: int, info: DistInfo) -> Optional[torch.Tensor]:
    """``fn(n_r, seed + r)`` on each rank ``r``, gathered in rank order on rank 0 (``None`` elsewhere).

    With one process this is ``fn(n_total, seed)``. Every rank needs at least one
    sample: ``n_total`` must be ≥ the number of ranks.
    """
    if not info.enabled:
        return fn(int(n_total), int(seed))
    if n_total < info.world_size:
        raise ValueError(f"{n_total} samples cannot be split over {info.world_size} processes: "
                         f"ask for at least {info.world_size}")
    local = fn(shard_of(n_total, info), int(seed) + info.rank)
    return gather_samples(local, n_total, info)
