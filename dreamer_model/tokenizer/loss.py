"""The tokenizer loss (paper eq. 5): MSE + 0.2 · LPIPS, each term divided by a running RMS of itself.

    L = L_MSE / RMS(L_MSE) + λ · L_LPIPS / RMS(L_LPIPS),    λ = 0.2

Dividing by a running RMS (a slow EMA of the term's square, not back-propagated) keeps both terms
near unit scale whatever their raw magnitudes; reproductions did not converge without it.

Focal weighting (ours, ``focal_gamma`` γ; γ = 0 is the paper's plain MSE): each pixel's squared error
weighs its error relative to the batch's mean error,

    L_MSE = Σ w ⊙ e² / Σ w,    e = ‖x̂ − x‖ per pixel (RMS over channels),    w = (e / mean(e))^γ (not back-propagated)

Plain MSE gives a 2x2-pixel object in a 20x20 frame 1 % of the loss, so the cheapest way down is to
paint the background: a tokenizer that drops breakout's ball in half its cells still reaches ~27 dB.
Whatever the model gets most wrong weighs most: a missed object and a ghost alike (weighting the
pixels off the frame's dominant colour instead drew the ball more often but put ghosts everywhere:
precision 0.35-0.42). The weight comes from the pixels alone (no labels), so it means the same on
Minecraft frames. Measurements: benchmarks/results/tokenizer.md ("Objects").
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from .lpips_loss import LPIPS


class RunningRMS(nn.Module):
    """x / sqrt(EMA[x²]) with a bias-corrected EMA (Adam-style); updated only in training mode.

    ``reduce`` (DDP) averages the value over ranks before the update, so every rank keeps the same
    normaliser."""

    def __init__(self, decay: float = 0.99, eps: float = 1e-8):
        super().__init__()
        self.decay, self.eps = decay, eps
        self.register_buffer("mean_square", torch.zeros((), dtype=torch.float64))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    @property
    def rms(self) -> float:
        if int(self.updates) == 0:
            return 1.0
        return float(torch.sqrt(self.mean_square / (1 - self.decay ** int(self.updates))))

    def forward(self, value: torch.Tensor, reduce: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        if self.training:
            observed = value.detach().to(torch.float64)
            observed = reduce(observed) if reduce is not None else observed
            self.mean_square.mul_(self.decay).add_((1 - self.decay) * observed ** 2)
            self.updates.add_(1)
        return value / max(self.rms, self.eps)


class TokenizerLoss(nn.Module):
    """Eq. 5 on reconstructions and targets (…, H, W, C) in [0, 1]."""

    def __init__(self, lpips_weight: float = 0.2, lpips_net: str = "alex", rms_decay: float = 0.99,
                 focal_gamma: float = 0.0):
        super().__init__()
        self.lpips_weight = lpips_weight
        self.focal_gamma = focal_gamma
        self.lpips = LPIPS(lpips_net) if lpips_weight > 0 else None
        self.mse_rms = RunningRMS(rms_decay)
        self.lpips_rms = RunningRMS(rms_decay)

    def forward(self, recon: torch.Tensor, target: torch.Tensor,
                reduce: Callable[[torch.Tensor], torch.Tensor] | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        squared_error = ((recon.float() - target.float()) ** 2).mean(-1)  # (…, H, W)
        mse = squared_error.mean()
        weighted = mse
        if self.focal_gamma > 0:  # the pixels the model gets most wrong weigh most (missed objects and ghosts)
            error = squared_error.detach().sqrt()  # e (…, H, W)
            weight = (error / error.mean().clamp_min(1e-8)) ** self.focal_gamma
            weighted = (weight * squared_error).sum() / weight.sum().clamp_min(1e-8)
        loss = self.mse_rms(weighted, reduce)
        metrics = {"mse": mse.item(), "psnr": psnr(mse.item())}
        if weighted is not mse:
            metrics["mse_weighted"] = weighted.item()
        if self.lpips is not None:
            perceptual = self.lpips(recon, target).mean()
            loss = loss + self.lpips_weight * self.lpips_rms(perceptual, reduce)
            metrics["lpips"] = perceptual.item()
        metrics["loss"] = loss.item()
        return loss, metrics


def psnr(mse: torch.Tensor | float) -> float:
    """Peak signal-to-noise ratio in dB for pixels in [0, 1]: 10 · log10(1 / MSE)."""
    mse = float(mse)
    return float("inf") if mse <= 0 else -10.0 * math.log10(mse)
