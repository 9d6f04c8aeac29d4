"""Which slice of the data this process reads: distributed rank, DataLoader worker, start method."""

from __future__ import annotations

import torch
from torch.utils.data import get_worker_info

from ..errors import DreamerDataError
from ..store.location import StoreLocation


def resolve_rank(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """Explicit (rank, world_size), else torch.distributed's when initialised, else (0, 1).

    Resolved when a dataset is built, in the training process: DataLoader workers never have
    torch.distributed initialised.
    """
    if rank is None and world_size is None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1
    if rank is None or world_size is None:
        raise DreamerDataError("give both rank and world_size, or neither")
    if world_size < 1 or not 0 <= rank < world_size:
        raise DreamerDataError(f"need 0 <= rank < world_size, got rank {rank}, world_size {world_size}")
    return int(rank), int(world_size)


def worker_split() -> tuple[int, int]:
    """(worker id, number of workers) of the current DataLoader worker; (0, 1) in the main process."""
    info = get_worker_info()
    return (info.id, info.num_workers) if info is not None else (0, 1)


def multiprocessing_context(location: StoreLocation) -> str | None:
    """DataLoader start method a store needs.

    Async fsspec file systems (s3fs, gcsfs, http) run an event loop on a background thread; a
    forked worker inherits the loop's state but not its thread and can hang on the first read,
    so those stores need 'spawn'. Local and memory:// stores keep the platform default (fork on
    Linux: fastest to start, and the only way workers can see a memory:// store).
    """
    return "spawn" if getattr(location.fs, "async_impl", False) else None
