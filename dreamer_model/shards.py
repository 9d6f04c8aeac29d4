"""Random draws of a global batch, of which one process keeps its rows (DDP).

Every rank draws the random numbers of the whole global batch from the same stream and keeps the rows of its
own windows: rank r of w holds global rows r, r + w, r + 2w, … (the order ``WindowSampler`` deals windows in).
A run on w ranks so draws exactly what a one-rank run at the same global batch draws, and its losses match.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

Draws = torch.Tensor | tuple[torch.Tensor, ...]


@dataclass(frozen=True)
class Shard:
    rank: int = 0
    world_size: int = 1

    def draw(self, sample: Callable[[tuple[int, ...]], Draws], shape: tuple[int, ...]) -> Draws:
        """This rank's rows of ``sample(global shape)``; ``shape`` is the local one, batch first."""
        if self.world_size == 1:
            return sample(tuple(shape))
        full = sample((shape[0] * self.world_size, *shape[1:]))
        rows = slice(self.rank, None, self.world_size)
        return tuple(x[rows] for x in full) if isinstance(full, tuple) else full[rows]


WHOLE = Shard()  # one process: every row
