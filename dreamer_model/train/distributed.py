"""One process or many (``torchrun --nproc_per_node N``): rank, device, and the few collectives we use.

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK; then the process group starts with NCCL on CUDA and
gloo on CPU, and every rank uses ``cuda:LOCAL_RANK`` (or the CPU).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import ModelError


def set_threads(threads: int) -> None:
    """``train.threads``: torch intra-op threads for this process (0 keeps torch's default)."""
    if threads > 0:
        torch.set_num_threads(threads)


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` → CUDA when present, else CPU; ``cuda`` → this rank's GPU; anything else as given."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ModelError(f"--device {name!r}: not a device (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ModelError(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
        if device.index is None:
            device = torch.device("cuda", local_rank)
    return device


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """Average a tensor over ranks (identity in one process)."""
        if not self.enabled:
            return value
        value = value.clone().to(self.device)
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        return (value / self.world_size).cpu() if value.device.type != "cpu" else value / self.world_size

    def average_gradients(self, parameters: list[torch.nn.Parameter]) -> None:
        """What DDP does for a wrapped module, for trainers whose step calls the model several times: every
        gradient becomes its mean over ranks (one flat all-reduce)."""
        if not self.enabled:
            return
        grads = [p.grad for p in parameters if p.grad is not None]
        if grads:
            flat = torch.cat([g.reshape(-1) for g in grads])
            dist.all_reduce(flat, op=dist.ReduceOp.SUM)
            flat /= self.world_size
            offset = 0
            for g in grads:
                g.copy_(flat[offset:offset + g.numel()].view_as(g))
                offset += g.numel()

    def mean_metrics(self, metrics: dict[str, float]) -> dict[str, float]:
        """Every logged value averaged over ranks (the mean of the ranks' losses is the global batch's loss)."""
        if not self.enabled:
            return metrics
        values = self.mean(torch.tensor([float(v) for v in metrics.values()], dtype=torch.float64))
        return dict(zip(metrics, values.tolist()))

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


def init_distributed(device_name: str) -> Distributed:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_name, local_rank)
    if world_size == 1:
        return Distributed(device=device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size(), local_rank, device)
