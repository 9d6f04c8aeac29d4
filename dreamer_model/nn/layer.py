"""One pre-norm residual block, attending over space (one step's tokens) or time (one slot's steps).

    x ← x + Attention(RMSNorm(x))        (over S within a step, or over T for one token slot)
    x ← x + SwiGLU(RMSNorm(x))
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from .attention import Attention
from .mlp import SwiGLU
from .norms import RMSNorm

Axis = Literal["space", "time"]


class Layer(nn.Module):
    def __init__(self, dim: int, heads: int, kv_heads: int, head_dim: int, mlp_hidden: int, axis: Axis,
                 qk_norm: bool = True, soft_cap: float | None = None):
        super().__init__()
        self.axis = axis
        self.attn_norm = RMSNorm(dim)
        self.attn = Attention(dim, heads, kv_heads, head_dim, qk_norm=qk_norm, soft_cap=soft_cap)
        self.mlp_norm = RMSNorm(dim)
        self.mlp = SwiGLU(dim, mlp_hidden)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor | None,
                past: tuple[torch.Tensor, torch.Tensor] | None = None, is_causal: bool = False
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        b, t, s, d = x.shape  # (B, T, S, D)
        if self.axis == "space":
            h = x.reshape(b * t, s, d)  # (B·T, S, D): the tokens of one step
        else:
            h = x.transpose(1, 2).reshape(b * s, t, d)  # (B·S, T, D): one token slot over time
        attended, kv = self.attn(self.attn_norm(h), cos, sin, mask, past, is_causal=is_causal)
        h = h + attended
        h = h + self.mlp(self.mlp_norm(h))
        if self.axis == "space":
            return h.view(b, t, s, d), kv
        return h.view(b, s, t, d).transpose(1, 2), kv
