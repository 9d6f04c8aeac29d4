"""Shortcut forcing (paper eqs. 1–4, 7–8), written so each line maps to one statement of the equations.

Convention: τ = 1 is clean data, τ = 0 is pure noise (the paper's; the formulas below divide by
1 − τ, which vanishes at the clean end):

    z_τ = (1 − τ)·ε + τ·x,    ε ~ N(0, I)                                   (eq. 1, the straight path)

so dz_τ/dτ = x − ε, and an x-prediction x̂ = f(z_τ, τ, d) implies the velocity

    v̂ = (x̂ − z_τ) / (1 − τ)                                                (x-prediction → velocity)

which equals x − ε when x̂ = x. A sampler step of size d moves z_τ + v̂·d to level τ + d (eq. 2).

Training (diffusion forcing: every (batch, time) element has its own τ and d):

    d ∈ {1, 1/2, …, 1/K_max},  τ ~ U{0, d, 2d, …, 1 − d}                    (eq. 4; K_max = 64)
    d = d_min:  L = w(τ) · ‖x̂ − x‖²                                          (eq. 7, flow term)
    d > d_min:  with the model under stop-gradient, two half steps            (eq. 3 / 7, bootstrap)
        b′ = (f(z_τ, τ, d/2) − z_τ) / (1 − τ)
        z′ = z_τ + b′ · d/2
        b″ = (f(z′, τ + d/2, d/2) − z′) / (1 − (τ + d/2))
        L = w(τ) · (1 − τ)² · ‖v̂ − (b′ + b″)/2‖²
    w(τ) = 0.9 τ + 0.1                                                        (eq. 8, ramp)

‖·‖² is the mean over the frame's S_z × D_z latent entries. τ ≤ 1 − d keeps every 1 − τ ≥ d > 0.
How often d = d_min: eq. 4 draws d uniformly over the 7 levels, so 6 of 7 frames are bootstrap frames
whose targets come from the model itself; a tiny model trained that way on Crafter latents collapsed
to predicting the mean latent (held-out 1-step latent MSE 0.53 after 500 steps, vs 0.07 for the flow
baseline; benchmarks/results/dynamics.md). ``bootstrap_fraction`` (default 0.25 in the configs, as in
the shortcut-models paper) keeps d per (batch, time) element on the same grid but draws d_min with
probability 0.75; ``None`` restores eq. 4's uniform levels.
``context_fraction`` p (default 0: eq. 4 alone) feeds each (batch, time) element, with probability p, as the
sampler feeds finished frames: at τ_ctx with d_min, and leaves it out of the loss (the mean is over the other
frames). Under eq. 4 alone a frame's history is noised at random levels, so few frames learn to predict the
next frame from a history as clean as at inference. Measured on breakout (benchmarks/results/ladder.md, "Why the
world model loses the ball"), p = 0.5 is a small gain, not a fix: ball in the right cell one step ahead 0.20 /
0.33 / 0.46 after 2,000 / 3,000 / 4,000 steps against eq. 4's 0.09 / 0.34 / 0.37; so it stays off by default.
``history_fraction`` p (default 0: eq. 4 alone; the ``quickstart`` preset sets it, ``presets.py``) departs from
eq. 4 per WINDOW: with probability p a window is cut at c ~ U{1 … T − 1}; its frames before c are history, fed
as the sampler feeds finished frames (τ_ctx, d_min, no loss), and its frames from c on are generated at the
levels a K-step sampler denoises from, d = d_min and τ ~ U{0, 1/K, …, 1 − 1/K} (K = ``sample_steps``), with
eq. 7's flow term at weight 1 instead of eq. 8's ramp (the ramp gives τ = 0, the step that decides where a
moving object goes, weight 0.1). The other windows are eq. 4 as above, so the coarser steps the sampler
takes keep their bootstrap training. Why: imagination asks "the next frame from a clean history, from
little signal", and under eqs. 4 + 8 few frames are that question (a frame's history is clean only with
probability p^t under the per-frame ``context_fraction``). Measured on breakout (benchmarks/results/ladder.md,
"The history mix"): p = 0.9 puts the imagined ball in the right cell one step ahead 0.30 of the time after
2,000 steps against eq. 4's 0.09 (p = 0.75: 0.23); a cut at c = T − 1 only, eq. 4's levels after the cut, or
τ = 0 only gain less.
The flow-matching baseline is the same model trained with d = d_min only (``objective="flow"``).
The dynamics loss is the mean of the per-frame terms over all (batch, time) elements, divided by a
running RMS of itself (``RunningRMS``, shared with the tokenizer's loss): L = L̄ / RMS(L̄). One
normaliser for both terms keeps their relative weight as eq. 7 states it; normalising the bootstrap
term on its own blows up its gradient as the model becomes self-consistent, and a model that ignores
its input z is perfectly self-consistent (tests/test_dynamics_actions.py trains into exactly that).

In the bootstrap passes the frames with d = d_min stay at their own (z_τ, τ, d_min), so as context
they look the same to the teacher as to the student.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from ..shards import WHOLE, Shard
from ..tokenizer.loss import RunningRMS
from .config import DynamicsConfig

# f(z_noisy (B, T, S_z, D_z), tau (B, T), d (B, T)) → x̂ (B, T, S_z, D_z)
Predictor = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


# ------------------------------------------------------------------------------------------------ eq. 4

def step_sizes(k_max: int) -> torch.Tensor:
    """The allowed step sizes d = 1, 1/2, …, 1/k_max (float64, coarsest first)."""
    return torch.exp2(-torch.arange(int(round(math.log2(k_max))) + 1, dtype=torch.float64))


def sample_step_and_signal(shape: tuple[int, ...], k_max: int, generator: torch.Generator | None = None,
                           objective: str = "shortcut", bootstrap_fraction: float | None = None
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 4 per element: a step size d on the power-of-two grid, then τ ~ U{0, d, …, 1 − d}.

    d's distribution over {1, …, 1/k_max}: ``bootstrap_fraction`` None is eq. 4's uniform over the
    log₂(k_max) + 1 levels; a number p gives d = d_min with probability 1 − p and otherwise a coarser d
    uniform over the other levels (the shortcut-models recipe, Frans et al. 2024: 1/4 bootstrap).
    ``objective="flow"`` always gives d_min. Returns (d, τ), each float32 of ``shape`` on the CPU
    (exact: powers of two and their multiples)."""
    levels = int(round(math.log2(k_max))) + 1
    finest = torch.full(shape, levels - 1, dtype=torch.long)
    if objective == "flow" or levels == 1:
        j = finest
    elif bootstrap_fraction is None:
        j = torch.randint(0, levels, shape, generator=generator)  # d = 2^−j, j uniform
    else:
        coarse = torch.randint(0, levels - 1, shape, generator=generator)  # d > d_min, uniform over levels
        j = torch.where(torch.rand(shape, generator=generator) < bootstrap_fraction, coarse, finest)
    steps = torch.exp2(j.double())  # 1/d: how many steps of size d fill [0, 1]
    k = torch.floor(torch.rand(shape, generator=generator, dtype=torch.float64) * steps)  # τ = k·d, k < 1/d
    d = 1.0 / steps
    return d.float(), (k * d).float()


def context_frames(d: torch.Tensor, tau: torch.Tensor, is_context: torch.Tensor, tau_ctx: float,
                   d_min: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(d, τ) (B, T) with the frames of ``is_context`` (B, T) set to (d_min, τ_ctx): the level the sampler
    commits finished frames at (``sampler.py``), so a generated frame often reads a history as it will at
    inference. They are context only: the loss skips them (``ShortcutForcingLoss``)."""
    return torch.where(is_context, d_min, d), torch.where(is_context, tau_ctx, tau)


def history_windows(shape: tuple[int, int], p: float, sample_steps: int, generator: torch.Generator | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The history mix's draws for (B, T) windows: (history, generated) bool (B, T) and the generated frames'
    τ (B, T). With probability p a window is cut at c ~ U{1 … T − 1}: frames before c are history, frames from
    c on are generated (at d_min) from τ ~ U{0, 1/K, …, 1 − 1/K}, the levels a K-step sampler denoises from;
    other windows are neither (their τ entries are unused)."""
    b, t = shape
    chosen = torch.rand(b, generator=generator) < p  # (B,)
    cut = torch.randint(1, t, (b,), generator=generator)  # (B,) c: the first generated frame
    before = torch.arange(t)[None, :] < cut[:, None]  # (B, T)
    tau = torch.randint(0, sample_steps, shape, generator=generator).float() / sample_steps
    return chosen[:, None] & before, chosen[:, None] & ~before, tau


# ------------------------------------------------------------------------------------------------ eqs. 1, 2, 8

def noise_latents(x: torch.Tensor, eps: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """Eq. 1: z_τ = (1 − τ)·ε + τ·x; x, ε (B, T, S, D), τ (B, T)."""
    tau = tau[..., None, None]
    return (1 - tau) * eps + tau * x


def implied_velocity(x_pred: torch.Tensor, z: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """v = (x̂ − z_τ) / (1 − τ): the velocity of the straight path through z_τ that ends at x̂."""
    return (x_pred - z) / (1 - tau)[..., None, None]


def ramp_weight(tau: torch.Tensor) -> torch.Tensor:
    """Eq. 8: w(τ) = 0.9 τ + 0.1 (more weight where there is more signal)."""
    return 0.9 * tau + 0.1


# ------------------------------------------------------------------------------------------------ eqs. 3, 7

@torch.no_grad()
def bootstrap_velocity(f: Predictor, z_tau: torch.Tensor, tau: torch.Tensor, d: torch.Tensor,
                       d_min: float) -> torch.Tensor:
    """(b′ + b″)/2 (B, T, S, D): the average velocity of two half steps of the model, under stop-gradient.

    Frames with d = d_min keep (z_τ, τ, d_min) in both passes; their entries are not a target."""
    boot = (d > d_min)[..., None, None]  # (B, T, 1, 1)
    half = torch.where(d > d_min, d / 2, d)  # d/2 (B, T)
    b1 = implied_velocity(f(z_tau, tau, half), z_tau, tau)  # b′ = (f(z_τ, τ, d/2) − z_τ)/(1 − τ)
    z_mid = torch.where(boot, z_tau + b1 * half[..., None, None], z_tau)  # z′ = z_τ + b′·d/2
    tau_mid = torch.where(d > d_min, tau + half, tau)  # τ + d/2
    b2 = implied_velocity(f(z_mid, tau_mid, half), z_mid, tau_mid)  # b″ = (f(z′, τ+d/2, d/2) − z′)/(1 − (τ+d/2))
    return (b1 + b2) / 2


def frame_mse(x_pred: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """‖x̂ − x‖² per frame (B, T): the mean over the frame's S_z × D_z latent entries."""
    return ((x_pred - x) ** 2).mean(dim=(-2, -1))


def flow_loss(x_pred: torch.Tensor, x: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """Eq. 7, d = d_min: w(τ)·‖x̂ − x‖² per frame (B, T)."""
    return ramp_weight(tau) * frame_mse(x_pred, x)


def bootstrap_loss(x_pred: torch.Tensor, z_tau: torch.Tensor, tau: torch.Tensor,
                   v_target: torch.Tensor) -> torch.Tensor:
    """Eq. 7, d > d_min: w(τ)·(1 − τ)²·‖v̂ − v_target‖² per frame (B, T), v̂ = (x̂ − z_τ)/(1 − τ)."""
    v_pred = implied_velocity(x_pred, z_tau, tau)
    return ramp_weight(tau) * (1 - tau) ** 2 * ((v_pred - v_target) ** 2).mean(dim=(-2, -1))


class ShortcutForcingLoss(nn.Module):
    """Eqs. 4 + 7 + 8 on a batch of clean latent windows, normalised by one running RMS."""

    def __init__(self, k_max: int = 64, objective: str = "shortcut", rms_decay: float = 0.99,
                 bootstrap_fraction: float | None = None, context_fraction: float = 0.0, tau_ctx: float = 0.9,
                 history_fraction: float = 0.0, sample_steps: int = 4):
        super().__init__()
        self.k_max, self.objective, self.bootstrap_fraction = k_max, objective, bootstrap_fraction
        self.context_fraction, self.tau_ctx = context_fraction, tau_ctx
        self.history_fraction, self.sample_steps = history_fraction, sample_steps
        self.d_min = 1.0 / k_max
        self.rms = RunningRMS(rms_decay)

    @classmethod
    def from_config(cls, cfg: DynamicsConfig) -> "ShortcutForcingLoss":
        """The loss a world model of ``cfg`` trains with (phase 1, and phase 2 when it fine-tunes the world model)."""
        return cls(cfg.k_max, cfg.objective, cfg.rms_decay, cfg.bootstrap_fraction, cfg.context_fraction, cfg.tau_ctx,
                   cfg.history_fraction, cfg.sample_steps)

    def forward(self, f: Predictor, x: torch.Tensor, generator: torch.Generator | None = None,
                teacher: Predictor | None = None,
                reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
                shard: Shard = WHOLE) -> tuple[torch.Tensor, dict[str, float]]:
        """x (B, T, S_z, D_z) clean latents; f the model with gradients, ``teacher`` (default f) the one
        called under stop-gradient; ``generator`` draws (d, τ) and ε on the CPU (bit-exact resume), for the
        global batch of which ``shard`` keeps this process's rows; ``reduce`` averages the RMS over processes."""
        b, t = x.shape[:2]
        d, tau = shard.draw(lambda shape: sample_step_and_signal(shape, self.k_max, generator, self.objective,
                                                                 self.bootstrap_fraction), (b, t))  # (B, T) each
        is_context = torch.zeros((b, t), dtype=torch.bool)  # (B, T): frames fed as the sampler feeds context
        if self.context_fraction > 0:
            is_context = shard.draw(lambda shape: torch.rand(shape, generator=generator) < self.context_fraction, (b, t))
        generated = torch.zeros((b, t), dtype=torch.bool)  # (B, T): frames the history mix generates
        if self.history_fraction > 0:
            history, generated, tau_gen = shard.draw(
                lambda shape: history_windows(shape, self.history_fraction, self.sample_steps, generator), (b, t))
            is_context = is_context | history
            d, tau = torch.where(generated, self.d_min, d), torch.where(generated, tau_gen, tau)
        if bool(is_context.any()):
            d, tau = context_frames(d, tau, is_context, self.tau_ctx, self.d_min)
        eps = shard.draw(lambda shape: torch.randn(shape, generator=generator, dtype=torch.float32),
                         tuple(x.shape)).to(x.device)  # ε (B, T, S, D)
        d, tau, x = d.to(x.device), tau.to(x.device), x.float()
        z_tau = noise_latents(x, eps, tau)  # (B, T, S, D)
        is_context = is_context.to(x.device)
        is_boot = d > self.d_min  # (B, T)
        is_flow = ~is_boot & ~is_context
        v_target = None
        # the global batch decides (a rank without bootstrap rows still calls the teacher: under FSDP every rank
        # must make the same model calls); rows outside is_boot are unchanged by it
        if bool(is_boot.any()) if reduce is None else bool(reduce(is_boot.any().float()) > 0):
            v_target = bootstrap_velocity(teacher or f, z_tau, tau, d, self.d_min)
        x_pred = f(z_tau, tau, d).float()  # x̂ (B, T, S, D)

        per_frame = flow_loss(x_pred, x, tau)  # (B, T): eq. 7 where d = d_min
        if v_target is not None:  # eq. 7 where d > d_min
            per_frame = torch.where(is_boot, bootstrap_loss(x_pred, z_tau, tau, v_target), per_frame)
        generated = generated.to(x.device)
        if bool(generated.any()):  # the history mix's frames: eq. 7's flow term at weight 1, not eq. 8's ramp
            per_frame = torch.where(generated, frame_mse(x_pred, x), per_frame)
        raw = per_frame.mean()
        if self.context_fraction > 0 or self.history_fraction > 0:  # context frames carry no loss: mean over the rest
            target = (~is_context).float()
            share = target.mean() if reduce is None else reduce(target.mean())  # over the global batch
            raw = (per_frame * target).mean() / share.clamp(min=1.0 / target.numel())
        loss = self.rms(raw, reduce)
        with torch.no_grad():
            metrics = {"loss_raw": raw.item(), "loss_rms": self.rms.rms,
                       "flow": float(per_frame[is_flow].mean()) if bool(is_flow.any()) else float("nan"),
                       "bootstrap": float(per_frame[is_boot].mean()) if bool(is_boot.any()) else float("nan"),
                       "bootstrap_fraction": float(is_boot.float().mean()),
                       "context_fraction": float(is_context.float().mean()),
                       "x_mse": float(((x_pred - x) ** 2).mean()), "loss": loss.item()}
        return loss, metrics
