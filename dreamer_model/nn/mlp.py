"""SwiGLU feed-forward (Shazeer, 2020): W₂ (SiLU(W₁x) ⊙ W₃x)."""

from __future__ import annotations

import torch
from torch import nn


def swiglu_hidden(dim: int, multiple_of: int = 32) -> int:
    """The usual SwiGLU width: 2/3 of 4·dim (same parameter count as a 4·dim GELU MLP), rounded up."""
    hidden = int(8 * dim / 3)
    return -(-hidden // multiple_of) * multiple_of


class SwiGLU(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.gate = nn.Linear(dim, hidden, bias=False)  # W₁
        self.up = nn.Linear(dim, hidden, bias=False)  # W₃
        self.down = nn.Linear(hidden, dim, bias=False)  # W₂

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(nn.functional.silu(self.gate(x)) * self.up(x))
