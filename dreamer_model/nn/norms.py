"""RMSNorm (Zhang & Sennrich, 2019): the pre-layer norm of every sublayer and the QK-norm."""

from __future__ import annotations

import torch
from torch import nn


class RMSNorm(nn.Module):
    """y = x / sqrt(mean(x²) + ε) · g over the last axis (no mean subtraction, no bias)."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The gain in x's dtype: under bf16 autocast the QK-norm sees bf16 q, k, and a float32 gain would
        # keep rms_norm off its fused kernel (which accumulates in float32 either way).
        return nn.functional.rms_norm(x, (x.shape[-1],), self.weight.to(x.dtype), self.eps)
