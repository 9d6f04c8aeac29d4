"""Few-step generation with the dynamics model (paper §3.2 "inference"), frame by frame with a K/V cache.

Per new frame t:

* **denoise**: start from z ~ N(0, I) at τ = 0 and take K steps of size 1/K (eq. 2 in x-prediction
  form): x̂ = f(z, τ, d), z ← z + (x̂ − z)/(1 − τ) · (1/K), τ ← τ + 1/K. The last step lands on x̂.
  Each call reads the cache and leaves it as is (``update_cache=False``).
* **commit**: the finished frame is re-noised to the context level τ_ctx (0.9: 10 % noise, the
  paper's robustness trick against its own errors), labelled with d_min, and run once with
  ``update_cache=True``, which appends its K/V to the cache.

Context frames (real latents) are committed the same way, all at once. The step size label d is 1/K
for a shortcut model (K must be a power of two ≤ K_max) and d_min for the flow-matching baseline,
which was only trained with d_min.

Cost: a cached call runs the transformer over one step's S tokens; only the temporal layers read the
past, at most ``time_window`` (= the trained context) steps back, so a frame costs the same however
long the rollout (a sliding window beyond the trained context). ``generate(..., use_cache=False)`` is
the reference: it re-runs every kept frame at every denoising step and must give the same frames.

Actions are inputs aligned with frames: ``action_in[:, t]`` is the action that led to frame t
(``actions.shift_actions``).
"""

from __future__ import annotations

from typing import Mapping

import torch

from ..errors import ModelError
from ..nn import TimeCache
from .model import DynamicsModel, DynamicsOutput

Actions = Mapping[str, torch.Tensor]


def take(actions: Actions, start: int, stop: int) -> dict[str, torch.Tensor]:
    return {name: value[:, start:stop] for name, value in actions.items()}


class Sampler:
    def __init__(self, model: DynamicsModel, steps: int | None = None, tau_ctx: float | None = None):
        cfg = model.cfg
        self.model = model
        self.steps = int(steps if steps is not None else cfg.sample_steps)  # K
        self.tau_ctx = float(tau_ctx if tau_ctx is not None else cfg.tau_ctx)
        self.d_min = cfg.d_min
        if self.steps < 1:
            raise ModelError(f"sampler: K must be ≥ 1, got {self.steps}")
        if cfg.objective == "shortcut":
            if self.steps & (self.steps - 1) or self.steps > cfg.k_max:
                raise ModelError(f"sampler: a shortcut model samples with K a power of two ≤ {cfg.k_max}, got {self.steps}")
            self.label = 1.0 / self.steps  # d = 1/K
        else:
            self.label = self.d_min  # the flow baseline only knows d_min

    # -------------------------------------------------------------------------------------- cache API

    def init_cache(self, window: int | None = None) -> TimeCache:
        return self.model.init_cache(window)

    def step(self, cache: TimeCache | None, z_noisy: torch.Tensor, tau: torch.Tensor, d: torch.Tensor,
             action_in: Actions, has_action_in: torch.Tensor, update_cache: bool = False,
             agent: torch.Tensor | None = None) -> DynamicsOutput:
        """One model call on the T steps after the cached ones: z_noisy (B, T, S_z, D_z), tau/d (B, T).
        ``update_cache=True`` commits these steps; ``False`` (denoising) leaves the cache unchanged."""
        return self.model(z_noisy, tau, d, action_in, has_action_in, agent=agent, cache=cache,
                          update_cache=update_cache)

    def renoise(self, latents: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Clean latents (B, T, S, D) → (z at τ_ctx, τ_ctx (B, T), d_min (B, T)): how context is fed."""
        b, t = latents.shape[:2]
        tau = torch.full((b, t), self.tau_ctx, device=latents.device)
        z = (1 - self.tau_ctx) * noise + self.tau_ctx * latents
        return z, tau, torch.full((b, t), self.d_min, device=latents.device)

    def commit(self, cache: TimeCache, latents: torch.Tensor, action_in: Actions, has_action_in: torch.Tensor,
               noise: torch.Tensor, agent: torch.Tensor | None = None) -> DynamicsOutput:
        """Append finished frames (B, T, S, D) to the cache at the context signal level."""
        z, tau, d = self.renoise(latents, noise)
        return self.step(cache, z, tau, d, action_in, has_action_in, update_cache=True, agent=agent)

    def denoise(self, cache: TimeCache, action_in: Actions, has_action_in: torch.Tensor,
                noise: torch.Tensor) -> torch.Tensor:
        """K steps from noise (B, 1, S, D) to a new frame x̂ (B, 1, S, D); the cache is only read."""
        z, b = noise, noise.shape[0]
        x_pred = noise
        for k in range(self.steps):
            tau = torch.full((b, 1), k / self.steps, device=noise.device)
            d = torch.full((b, 1), self.label, device=noise.device)
            x_pred = self.step(cache, z, tau, d, action_in, has_action_in, update_cache=False).x_pred
            z = z + (x_pred - z) / (1 - tau[..., None, None]) / self.steps  # eq. 2: z + v̂·(1/K)
        return x_pred

    # -------------------------------------------------------------------------------------- rollouts

    @torch.no_grad()
    def generate(self, context: torch.Tensor, action_in: Actions, has_action_in: torch.Tensor, horizon: int,
                 generator: torch.Generator | None = None, use_cache: bool = True) -> torch.Tensor:
        """Open-loop rollout: context latents (B, C, S, D) and the actions that led to each of the C + H
        frames (``action_in`` (B, C + H, …), ``has_action_in`` (B, C + H)) → predicted latents (B, H, S, D).

        All noise (context re-noising, each frame's starting noise) is drawn up front from
        ``generator`` on the CPU, so the cached and uncached paths see the same numbers."""
        b, c, s, dz = context.shape
        device = context.device
        if has_action_in.shape[1] < c + horizon:
            raise ModelError(f"sampler: need actions for {c + horizon} frames, got {has_action_in.shape[1]}")
        ctx_noise = torch.randn((b, c + horizon, s, dz), generator=generator).to(device)  # re-noising ε
        start_noise = torch.randn((b, horizon, s, dz), generator=generator).to(device)  # z at τ = 0
        frames = [context[:, i] for i in range(c)]  # finished frames, (B, S, D) each
        predicted = []
        cache = self.init_cache() if use_cache else None
        if use_cache and c:
            self.commit(cache, context, take(action_in, 0, c), has_action_in[:, :c], ctx_noise[:, :c])
        for h in range(horizon):
            t = c + h  # index of the new frame
            act, has = take(action_in, t, t + 1), has_action_in[:, t:t + 1]
            if use_cache:
                x_new = self.denoise(cache, act, has, start_noise[:, h:h + 1])
                self.commit(cache, x_new, act, has, ctx_noise[:, t:t + 1])
            else:
                x_new = self._denoise_uncached(torch.stack(frames, dim=1) if frames else None,
                                               take(action_in, 0, t + 1), has_action_in[:, :t + 1],
                                               ctx_noise[:, :t], start_noise[:, h:h + 1])
            frames.append(x_new[:, 0])
            predicted.append(x_new[:, 0])
        return torch.stack(predicted, dim=1)

    def _denoise_uncached(self, past: torch.Tensor | None, action_in: Actions, has_action_in: torch.Tensor,
                          past_noise: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The reference: every denoising step re-runs all past frames (at τ_ctx) plus the new one."""
        z, b = noise, noise.shape[0]
        x_pred = noise
        for k in range(self.steps):
            tau_new = torch.full((b, 1), k / self.steps, device=noise.device)
            d_new = torch.full((b, 1), self.label, device=noise.device)
            if past is not None:
                z_past, tau_past, d_past = self.renoise(past, past_noise)
                z_all, tau_all, d_all = (torch.cat((z_past, z), 1), torch.cat((tau_past, tau_new), 1),
                                         torch.cat((d_past, d_new), 1))
            else:
                z_all, tau_all, d_all = z, tau_new, d_new
            x_pred = self.step(None, z_all, tau_all, d_all, action_in, has_action_in).x_pred[:, -1:]
            z = z + (x_pred - z) / (1 - tau_new[..., None, None]) / self.steps
        return x_pred
