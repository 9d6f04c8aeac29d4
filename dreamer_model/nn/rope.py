"""Rotary position embedding (RoPE, Su et al. 2021), over one or more position axes.

Each pair of channels (i, i + d/2) of a query/key is rotated by the angle ``position · θ_i``. A dot
product of a rotated query at position m with a rotated key at position n then depends only on
m − n (the relative-position property, tested in tests/test_nn_rope.py). With several axes
(the 2-D patch grid: row, column) the rotated channel pairs are split evenly between the axes.

Temporal layers use one axis (the time step); spatial layers use two (row, column of the patch
grid; tokens that are not patches sit on a virtual row above the image, see ``layout.py``).
"""

from __future__ import annotations

import torch
from torch import nn


class RotaryEmbedding(nn.Module):
    """Angles for ``positions`` (L, n_axes) → (cos, sin), each (L, head_dim / 2)."""

    def __init__(self, head_dim: int, n_axes: int = 1, base: float = 10_000.0):
        super().__init__()
        if head_dim % (2 * n_axes):
            raise ValueError(f"RoPE: head_dim {head_dim} is not divisible by 2 × {n_axes} position axes")
        self.n_axes = n_axes
        per_axis = head_dim // (2 * n_axes)  # rotated channel pairs per axis
        inv_freq = base ** (-torch.arange(per_axis, dtype=torch.float64) / per_axis)  # θ_i
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        positions = positions.reshape(positions.shape[0], -1).to(torch.float64)  # (L, n_axes)
        if positions.shape[1] != self.n_axes:
            raise ValueError(f"RoPE: got {positions.shape[1]} position axes, built for {self.n_axes}")
        angles = (positions[:, :, None] * self.inv_freq.to(positions.device)).reshape(len(positions), -1)
        return angles.cos().float(), angles.sin().float()  # (L, head_dim / 2) each


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs (x_i, x_{i+d/2}) of x (…, L, d) by the angles behind cos/sin (L, d/2)."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
