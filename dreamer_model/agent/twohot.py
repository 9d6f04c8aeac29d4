"""Rewards and values as distributions over symlog-spaced bins (DreamerV3 §"Robust predictions"; Dreamer 4 §3.3).

A scalar x is represented in symlog space y = symlog(x) = sign(x)·ln(1 + |x|). The B bins (255 by
default) are evenly spaced in y over [−20, 20], so they cover rewards from tiny to huge with the same
relative resolution. Targets:

* two-hot: the two bins around y share the mass in proportion to closeness, so Σ p_i·b_i = y exactly;
* HL-Gauss (Farebrother et al., 2024; an ablation the design brief names): the mass a Gaussian
  N(y, σ²) puts on each bin's interval, σ = ``sigma_bins`` × bin width.

A head outputs logits (…, B); its loss is the cross-entropy −Σ_i target_i · ln softmax(logits)_i
(= −ln p(x) of eq. 9/10 under the bin distribution) and its prediction is
symexp(Σ_i softmax(logits)_i · b_i).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def symlog(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.log1p(x.abs())


def symexp(y: torch.Tensor) -> torch.Tensor:
    return torch.sign(y) * torch.expm1(y.abs())


class SymlogBins(nn.Module):
    """B bin centres b_i evenly spaced in symlog space over [low, high]; encode / decode / loss."""

    def __init__(self, bins: int = 255, low: float = -20.0, high: float = 20.0, target: str = "twohot",
                 sigma_bins: float = 0.75):
        super().__init__()
        if bins < 2 or not low < high:
            raise ValueError(f"symlog bins: need bins >= 2 and low < high, got {bins}, [{low}, {high}]")
        if target not in ("twohot", "hlgauss"):
            raise ValueError(f"symlog bins: target must be 'twohot' or 'hlgauss', got {target!r}")
        self.bins, self.low, self.high, self.target = bins, float(low), float(high), target
        self.width = (self.high - self.low) / (bins - 1)
        self.sigma = sigma_bins * self.width
        offsets = torch.arange(bins, dtype=torch.float64) - (bins - 1) / 2  # symmetric: 0 is a bin when low = −high
        centres = (self.low + self.high) / 2 + offsets * self.width
        self.register_buffer("centres_B", centres.float(), persistent=False)

    # ----------------------------------------------------------------------------------------- targets

    def twohot(self, x: torch.Tensor) -> torch.Tensor:
        """x (…) real → (…, B) two-hot weights on the bins around symlog(x) (clipped to the range)."""
        y = symlog(x.float()).clamp(self.low, self.high)
        position = (y - self.low) / self.width  # fractional bin index in [0, B − 1]
        below = position.floor().clamp(max=self.bins - 2).long()
        above_weight = (position - below.float()).clamp(0.0, 1.0)
        target = torch.zeros(*y.shape, self.bins, device=y.device)
        target.scatter_(-1, below[..., None], (1.0 - above_weight)[..., None])
        target.scatter_add_(-1, (below + 1)[..., None], above_weight[..., None])
        return target

    def hlgauss(self, x: torch.Tensor) -> torch.Tensor:
        """x (…) → (…, B): mass of N(symlog(x), σ²) on each bin's interval [b_i − w/2, b_i + w/2], renormalised."""
        y = symlog(x.float()).clamp(self.low, self.high)
        edges = torch.cat((self.centres_B - self.width / 2, self.centres_B[-1:] + self.width / 2))  # (B + 1,)
        cdf = 0.5 * (1 + torch.erf((edges - y[..., None]) / (self.sigma * math.sqrt(2))))  # (…, B + 1)
        mass = cdf[..., 1:] - cdf[..., :-1]
        return mass / mass.sum(-1, keepdim=True).clamp_min(1e-12)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x (…) → target distribution (…, B) of the configured kind."""
        return self.twohot(x) if self.target == "twohot" else self.hlgauss(x)

    # ------------------------------------------------------------------------------------ predictions

    def decode(self, logits: torch.Tensor) -> torch.Tensor:
        """logits (…, B) → the predicted scalar symexp(Σ_i p_i·b_i) (…)."""
        probs = torch.softmax(logits.float(), dim=-1)
        return symexp((probs * self.centres_B).sum(-1))

    def decode_probs(self, probs: torch.Tensor) -> torch.Tensor:
        return symexp((probs.float() * self.centres_B).sum(-1))

    def nll(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """−ln p(x) under the bin distribution: cross-entropy of the logits (…, B) with encode(x) → (…)."""
        return -(self.encode(x) * torch.log_softmax(logits.float(), dim=-1)).sum(-1)
