"""The tokenizer's pixel term with focal weighting, restated by hand on small frames (tokenizer/loss.py)."""

import math

import pytest
import torch

from dreamer_model.tokenizer.loss import TokenizerLoss


def test_focal_weighting_restated():
    """γ = 1: each pixel's squared error e² weighs e / mean(e), so L = Σ e³ / Σ e."""
    target = torch.zeros(1, 2, 2, 3)
    recon = torch.zeros(1, 2, 2, 3)
    recon[0, 0, 0] = 0.5  # a missed object: error 0.5 on every channel of one pixel
    recon[0, 1, 1] = 0.1  # a faint ghost
    errors = [0.5, 0.0, 0.0, 0.1]  # per pixel: root of the channel-mean squared error
    plain = sum(e * e for e in errors) / 4
    focal = sum(e ** 3 for e in errors) / sum(errors)
    _, plain_metrics = TokenizerLoss(lpips_weight=0.0)(recon, target)
    _, focal_metrics = TokenizerLoss(lpips_weight=0.0, focal_gamma=1.0)(recon, target)
    assert plain_metrics["mse"] == pytest.approx(plain)
    assert "mse_weighted" not in plain_metrics
    assert focal_metrics["mse"] == pytest.approx(plain)  # the logged MSE and PSNR stay the plain ones
    assert focal_metrics["mse_weighted"] == pytest.approx(focal)
    assert focal_metrics["psnr"] == pytest.approx(-10 * math.log10(plain))


def test_focal_weighting_puts_the_gradient_on_the_missed_object():
    """The missed pixel's share of the gradient: e²/Σe² under plain MSE, e³/Σe³ under γ = 1 (e = its error)."""
    target = torch.zeros(1, 10, 10, 3)
    target[0, 4, 4] = 1.0  # one white pixel: the "ball"
    recon = torch.full((1, 10, 10, 3), 0.1)  # background slightly off everywhere, ball not drawn at all
    errors = torch.full((10, 10), 0.1)
    errors[4, 4] = 0.9  # 1.0 − 0.1
    shares = {}
    for gamma in (0.0, 1.0):
        pixels = recon.clone().requires_grad_(True)
        loss, _ = TokenizerLoss(lpips_weight=0.0, focal_gamma=gamma)(pixels, target)
        loss.backward()
        grad = pixels.grad.abs().sum(-1)[0]  # (10, 10)
        shares[gamma] = float(grad[4, 4] / grad.sum())
    assert shares[0.0] == pytest.approx(float(errors[4, 4] / errors.sum()), rel=1e-4)  # |∂e²/∂x| ∝ e
    assert shares[1.0] == pytest.approx(float(errors[4, 4] ** 2 / (errors ** 2).sum()), rel=1e-4)  # ∝ e²·e/ē
    assert shares[1.0] > 5 * shares[0.0]
