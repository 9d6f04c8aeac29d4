"""A slow copy of a network, θ̄ ← τ·θ̄ + (1 − τ)·θ after every update (the slow value target).

Phase 3 bootstraps the λ-returns (eq. 10) with the slow value head rather than the one being trained,
as DreamerV3's slow critic does, so the value regression chases a target that moves slowly.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMATarget(nn.Module):
    def __init__(self, online: nn.Module, decay: float = 0.98):
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.module = copy.deepcopy(online).requires_grad_(False)

    @torch.no_grad()
    def update(self, online: nn.Module) -> None:
        for slow, fast in zip(self.module.parameters(), online.parameters()):
            slow.lerp_(fast.detach(), 1.0 - self.decay)
        for slow, fast in zip(self.module.buffers(), online.buffers()):
            slow.copy_(fast)

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)
