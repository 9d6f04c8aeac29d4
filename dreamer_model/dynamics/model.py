"""The interactive dynamics model (paper §3.2, eq. 6): x̂_t = f(z̃_t, τ_t, d_t, a_{<t}, z̃_{<t}).

Each time step t holds the token layout

    action ×1 | shortcut ×1 | register ×R | latent ×S | (agent ×A)

* ``action``: the action that led to frame t (``actions.py``; learned null where unknown);
* ``shortcut``: the signal level τ_t and step size d_t of frame t (eq. 4) as one token: an embedding
  of τ on the grid of d_min (linearly interpolated between grid points, so the inference context
  level τ_ctx = 0.9 is defined too) plus an embedding of log₂(1/d). The same vector is also added
  to each of the frame's latent tokens (broadcast conditioning, as DiT-style shortcut models do): with
  the token alone the bootstrap frames (most frames under eq. 4) pulled the d_min predictions along
  and a tiny model lost the ability to denoise at all (tests/test_dynamics_learning.py);
  with ``action_to_latents`` the action token is added to each latent token the same way;
* ``register``: learned registers (owned by the transformer);
* ``latent``: the noised latents z̃_t = (1 − τ_t)·ε + τ_t·z_t of the store's S_z × D_z latents,
  regrouped ``pack`` tokens at a time (S = S_z / pack tokens of pack·D_z dims), linearly embedded;
* ``agent`` (only when ``agent_tokens`` > 0): a hidden group: it reads every token while no
  token reads it, so the world model's predictions do not depend on it.

Convention (the paper's): τ = 1 is clean data, τ = 0 is pure noise. Every frame of
a window has its own (τ_t, d_t) (diffusion forcing). The block-causal transformer never lets step t
read a later step, so predictions of past frames never depend on future frames or actions.

Output: x-prediction, x̂_t = W_out · h_t(latent) regrouped back to (S_z, D_z).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Mapping, NamedTuple

import torch
from torch import nn

from ..errors import ModelError
from ..nn import BlockCausalTransformer, TimeCache, TokenGroup, TokenLayout
from .actions import ActionEmbedding, ActionField
from .config import DynamicsConfig

ACTION, SHORTCUT, REGISTER, LATENT, AGENT = "action", "shortcut", "register", "latent", "agent"


def dynamics_layout(cfg: DynamicsConfig) -> TokenLayout:
    groups = [TokenGroup(ACTION, 1), TokenGroup(SHORTCUT, 1)]
    if cfg.transformer.registers:
        groups.append(TokenGroup(REGISTER, cfg.transformer.registers))
    groups.append(TokenGroup(LATENT, cfg.tokens))
    if cfg.agent_tokens:
        groups.append(TokenGroup(AGENT, cfg.agent_tokens, hidden=True))
    return TokenLayout(groups)


class DynamicsOutput(NamedTuple):
    x_pred: torch.Tensor  # (B, T, S_z, D_z) predicted clean latents x̂
    agent: torch.Tensor | None  # (B, T, A, D) agent token outputs (None without agent tokens)


class ShortcutEmbedding(nn.Module):
    """(τ, d) (B, T) → one token (B, T, 1, D).

    τ: a learned table over the k_max + 1 grid points τ = i / k_max, linearly interpolated between
    neighbours (exact on the grid every training τ lies on). d: a learned table over the
    log₂(k_max) + 1 step sizes d = 2^−j."""

    def __init__(self, k_max: int, dim: int):
        super().__init__()
        self.k_max = k_max
        self.levels = int(round(math.log2(k_max))) + 1
        self.tau_table = nn.Parameter(torch.randn(k_max + 1, dim) * 0.02)
        self.step_table = nn.Parameter(torch.randn(self.levels, dim) * 0.02)

    def step_index(self, d: torch.Tensor) -> torch.Tensor:
        """d (B, T) → j with d = 2^−j."""
        j = torch.round(-torch.log2(d.float())).long()
        if bool(((j < 0) | (j >= self.levels)).any()) or not torch.allclose(torch.exp2(-j.float()), d.float()):
            raise ModelError(f"dynamics: step sizes must be 1, 1/2, …, 1/{self.k_max}; got {d.unique().tolist()[:8]}")
        return j

    def forward(self, tau: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        position = tau.float().clamp(0.0, 1.0) * self.k_max  # (B, T) in [0, k_max]
        low = position.floor().long().clamp(max=self.k_max - 1)  # (B, T)
        frac = (position - low)[..., None]  # (B, T, 1)
        tau_emb = (1 - frac) * self.tau_table[low] + frac * self.tau_table[low + 1]  # (B, T, D)
        step_emb = self.step_table[self.step_index(d)]  # (B, T, D)
        return (tau_emb + step_emb)[:, :, None]  # (B, T, 1, D)


class DynamicsModel(nn.Module):
    def __init__(self, cfg: DynamicsConfig, actions: list[ActionField]):
        super().__init__()
        self.cfg = cfg
        self.action_fields = list(actions)
        dim = cfg.transformer.dim
        self.layout = dynamics_layout(cfg)
        self.action_embed = ActionEmbedding(self.action_fields, dim)
        self.shortcut_embed = ShortcutEmbedding(cfg.k_max, dim)
        self.latent_in = nn.Linear(cfg.token_dim, dim)
        self.transformer = BlockCausalTransformer(cfg.transformer, self.layout)
        self.latent_out = nn.Linear(dim, cfg.token_dim)
        self.agent_queries = nn.Parameter(torch.randn(cfg.agent_tokens, dim) * 0.02) if cfg.agent_tokens else None

    @property
    def latent_shape(self) -> tuple[int, int]:
        return self.cfg.latent_tokens, self.cfg.latent_dim

    def with_agent_tokens(self, count: int) -> "DynamicsModel":
        """A copy of this world model with ``count`` hidden agent tokens per step, sharing no
        tensors with this one; the world model's weights are copied, the agent queries are new."""
        model = DynamicsModel(replace(self.cfg, agent_tokens=count), self.action_fields)
        missing, unexpected = model.load_state_dict(self.state_dict(), strict=False)
        if unexpected or any(not name.startswith("agent_") for name in missing):
            raise ModelError(f"dynamics: cannot copy weights (missing {missing}, unexpected {unexpected})")
        return model.to(next(self.parameters()).device)

    def init_cache(self, window: int | None = None) -> TimeCache:
        """An empty K/V cache of the temporal layers (see ``sampler.py`` for the denoise / commit use), keeping
        ``window`` frames (default: the world model's)."""
        return self.transformer.init_cache(window)

    def pack(self, z: torch.Tensor) -> torch.Tensor:
        """(B, T, S_z, D_z) → (B, T, S_z / pack, pack · D_z): consecutive latent tokens side by side."""
        b, t, s, d = z.shape
        return z.reshape(b, t, s // self.cfg.pack, self.cfg.pack * d)

    def unpack(self, z: torch.Tensor) -> torch.Tensor:
        b, t = z.shape[:2]
        return z.reshape(b, t, self.cfg.latent_tokens, self.cfg.latent_dim)

    def forward(self, z_noisy: torch.Tensor, tau: torch.Tensor, d: torch.Tensor,
                action_in: Mapping[str, torch.Tensor], has_action_in: torch.Tensor,
                agent: torch.Tensor | None = None, cache: TimeCache | None = None,
                update_cache: bool = False, window: int | None = None) -> DynamicsOutput:
        """Eq. 6. z_noisy (B, T, S_z, D_z) at signal levels tau (B, T) labelled with step sizes d (B, T);
        action_in / has_action_in: the action that led to each frame (``actions.shift_actions``);
        agent (B, T, A, D) optional agent-token inputs (default: learned queries).

        With a cache, the T steps follow the cached ones; ``update_cache`` commits them. ``window`` (no cache)
        narrows the frames each step reads, as ``init_cache(window)`` does (the agent's ``policy_window``)."""
        b, t, s, dz = z_noisy.shape
        if (s, dz) != self.latent_shape:
            raise ModelError(f"dynamics: latents must be (B, T, {self.cfg.latent_tokens}, {self.cfg.latent_dim}), "
                             f"got {tuple(z_noisy.shape)}")
        if tuple(tau.shape) != (b, t) or tuple(d.shape) != (b, t):
            raise ModelError(f"dynamics: tau and d must be (B, T) = {(b, t)}, got {tuple(tau.shape)}, {tuple(d.shape)}")
        dtype = self.latent_in.weight.dtype
        shortcut = self.shortcut_embed(tau, d).to(dtype)  # (B, T, 1, D)
        action = self.action_embed(action_in, has_action_in).to(dtype)  # (B, T, 1, D)
        latent = self.latent_in(self.pack(z_noisy).to(dtype)) + shortcut  # (B, T, S, D), conditioned on (τ, d)
        if self.cfg.action_to_latents:
            latent = latent + action
        parts = {ACTION: action, SHORTCUT: shortcut, LATENT: latent}
        if self.agent_queries is not None:
            parts[AGENT] = agent if agent is not None else self.agent_queries.to(dtype).expand(b, t, -1, -1)
        elif agent is not None:
            raise ModelError("dynamics: agent tokens given but the model has none (dynamics.agent_tokens = 0)")
        out = self.transformer(parts, cache=cache, update_cache=update_cache, window=window)
        x_pred = self.unpack(self.latent_out(out[LATENT]).float())  # (B, T, S_z, D_z)
        return DynamicsOutput(x_pred, out.get(AGENT))
