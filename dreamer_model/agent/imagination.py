"""Phase 3's objective (paper §3.3, eqs. 10–11): imagination training inside the frozen world model.

Each step:

1. **Imagine.** B real contexts of C frames (latents from the store, with their actions) are
   committed to the world model's K/V cache at τ_ctx; the agent state of the last real frame is s_0.
   Then for k = 0 … H−1: a_k ~ π(·|s_k); the next frame is generated in K shortcut steps given a_k
   (``Sampler.denoise``) and committed, which gives s_{k+1}; the frozen reward and continuation heads
   give r_{k+1} = E p(r | s_{k+1}) and c_{k+1} = p(continue | s_{k+1}). No gradient flows here.
2. **Returns** (eq. 10): R^λ_k = r_{k+1} + γ c_{k+1} ((1 − λ) v̄_{k+1} + λ R^λ_{k+1}), R^λ_H = v̄_H,
   bootstrapped with the slow (EMA) value head v̄. States after an imagined end weigh
   w_k = Π_{j≤k} c_j.
3. **Value**: −ln p(R^λ_k | s_k) on two-hot targets (distributional), weighted by w_k.
4. **Policy** (eq. 11, PMPO): A_k = R^λ_k − v(s_k); D+ / D− by the sign of A_k;
   (1 − α)/|D−| Σ_{D−} ln π − α/|D+| Σ_{D+} ln π + β/N Σ KL[π ‖ π_prior], π_prior the frozen phase-2 policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from dreamer_data.store.fields import LATENTS

from ..dynamics import Sampler, shift_actions
from ..shards import WHOLE, Shard
from .config import AgentConfig
from .heads import PolicyHead
from .model import Agent
from .pmpo import pmpo_loss
from .returns import lambda_returns, state_weights
from .slow_target import EMATarget
from .tasks import Task


@dataclass
class Imagined:
    """One batch of imagined trajectories (no gradient): states s_0 … s_H, actions a_0 … a_{H−1}."""

    h_BH1D: torch.Tensor  # agent states
    action_BH: dict[str, torch.Tensor]  # a_k per component (B, H, …)
    reward_BH: torch.Tensor  # r_{k+1}
    continue_BH: torch.Tensor  # c_{k+1}
    task_B: torch.Tensor


class Imagination:
    """Imagined rollouts of the agent's world model and the value (eq. 10) and policy (eq. 11) losses on them;
    π_prior is a frozen copy of the policy it starts from, v̄ a slow copy of the value head."""

    def __init__(self, agent: Agent, tasks: list[Task], cfg: AgentConfig):
        self.agent, self.tasks, self.cfg = agent, tasks, cfg
        self.device = next(agent.parameters()).device
        self.sampler = Sampler(agent.world, steps=cfg.sample_steps)
        self.prior: PolicyHead = agent.frozen_policy()  # π_prior: the phase-2 policy
        self.slow_value = EMATarget(agent.value, cfg.slow_value_decay).to(self.device)

    @torch.no_grad()
    def imagine(self, batch: dict[str, torch.Tensor], generator: torch.Generator,
                policy: PolicyHead | None = None, shard: Shard = WHOLE) -> Imagined:
        """Roll the frozen world model forward from real contexts under ``policy`` (default π); ``generator``
        draws tasks, noise and actions for the global batch, of which ``shard`` keeps this process's rows."""
        agent, cfg, sampler = self.agent, self.cfg, self.sampler
        policy = policy or agent.policy
        batch = {key: value.to(self.device) for key, value in batch.items()}
        latents = batch[LATENTS].float()  # (B, C, S_z, D_z)
        b, c, s, dz = latents.shape
        action_in, has_in = shift_actions(batch, agent.world.action_fields)
        task_B = shard.draw(lambda shape: torch.randint(len(self.tasks), shape, generator=generator), (b,))
        ctx_noise = shard.draw(lambda shape: torch.randn(shape, generator=generator), (b, c + cfg.horizon, s, dz))
        start_noise = shard.draw(lambda shape: torch.randn(shape, generator=generator), (b, cfg.horizon, s, dz))
        task_B, ctx_noise, start_noise = task_B.to(self.device), ctx_noise.to(self.device), start_noise.to(self.device)
        cache = sampler.init_cache()
        # A policy blind to actions (actions → null embedding) or with a narrower window reads its own pass of the
        # world model, with its own cache; generation always sees the actions and the whole window.
        own_pass = not cfg.policy_sees_actions or cfg.policy_window is not None
        agent_cache = sampler.init_cache(cfg.policy_window) if own_pass else cache

        def observe(frames, act_in, has, noise, steps):
            """Commit frames to the generation cache (and the agent's); the agent states (B, steps, D)."""
            if agent_cache is cache:
                return agent.state(sampler.commit(cache, frames, act_in, has, noise,
                                                  agent=agent.agent_inputs(task_B, steps)).agent)
            sampler.commit(cache, frames, act_in, has, noise)
            agent_has = has if cfg.policy_sees_actions else torch.zeros_like(has)
            return agent.state(sampler.commit(agent_cache, frames, act_in, agent_has, noise,
                                              agent=agent.agent_inputs(task_B, steps)).agent)

        h = observe(latents, action_in, has_in, ctx_noise[:, :c], c)[:, -1]  # s_0 (B, D): the last real frame
        states, actions = [h], []
        ones = torch.ones(b, 1, dtype=torch.bool, device=self.device)
        for k in range(cfg.horizon):
            a_k = policy(h, first_only=True).sample(generator, shard)  # a_k ~ π(·|s_k)
            act_in = {name: value[:, None] for name, value in a_k.items()}
            x_next = sampler.denoise(cache, act_in, ones, start_noise[:, k:k + 1])  # (B, 1, S_z, D_z)
            h = observe(x_next, act_in, ones, ctx_noise[:, c + k:c + k + 1], 1)[:, 0]  # s_{k+1}
            states.append(h)
            actions.append(a_k)
        h_BH1D = torch.stack(states, dim=1)
        reward_BH = agent.bins.decode(agent.reward(h_BH1D[:, 1:])[..., 0, :])  # r_{k+1}, n = 0
        continue_BH = torch.sigmoid(agent.cont(h_BH1D[:, 1:])[..., 0].float())  # c_{k+1}
        action_BH = {name: torch.stack([a[name] for a in actions], dim=1) for name in actions[0]}
        return Imagined(h_BH1D, action_BH, reward_BH, continue_BH, task_B)

    # ---------------------------------------------------------------------------------------- losses

    def losses(self, traj: Imagined, update_policy: bool, reduce: Callable[[torch.Tensor], torch.Tensor] | None = None
               ) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        """(policy loss, value loss, metrics); ``reduce`` (DDP: the mean over processes) makes the weight sums
        those of the global batch."""
        cfg, agent = self.cfg, self.agent
        total = reduce or (lambda size: size)
        h_BH1D = traj.h_BH1D.detach()
        with torch.no_grad():
            slow_value_BH1 = agent.value_of(h_BH1D, self.slow_value.module)  # v̄(s_0 … s_H)
            returns_BH = lambda_returns(traj.reward_BH, traj.continue_BH, slow_value_BH1, cfg.gamma, cfg.lam)  # eq. 10
            weight_BH = state_weights(traj.continue_BH)
        h_BHD = h_BH1D[:, :-1]
        value_logits = agent.value(h_BHD)[..., 0, :]  # (B, H, bins)
        value_nll_BH = agent.bins.nll(value_logits, returns_BH)  # −ln p(R^λ_k | s_k)
        value_loss = (weight_BH * value_nll_BH).sum() / total(weight_BH.sum())
        with torch.no_grad():
            value_BH = agent.bins.decode(value_logits)
            advantage_BH = returns_BH - value_BH  # A_k = R^λ_k − v(s_k)
        dist = agent.policy(h_BHD, first_only=True)  # π(·|s_k), (B, H)
        with torch.no_grad():
            prior = self.prior(h_BHD, first_only=True)
        log_prob_BH = dist.log_prob(traj.action_BH)
        kl_BH = dist.kl(prior)
        terms = pmpo_loss(log_prob_BH, advantage_BH, kl_BH, cfg.alpha, cfg.beta, weight_BH, reduce)  # eq. 11
        policy_loss = terms.loss if update_policy else terms.loss.detach()
        with torch.no_grad():
            w = weight_BH / weight_BH.sum()
            metrics = {
                **terms.scalars(), "value_loss": float(value_loss),
                "advantage_mean": float((w * advantage_BH).sum()), "advantage_std": float(advantage_BH.std()),
                "advantage_abs_mean": float((w * advantage_BH.abs()).sum()),
                "return_mean": float((w * returns_BH).sum()), "value_mean": float((w * value_BH).sum()),
                "imagined_reward_sum": float(traj.reward_BH.sum(1).mean()),
                "imagined_continue_mean": float(traj.continue_BH.mean()),
                "policy_entropy": float((w * dist.entropy()).sum()), "prior_entropy": float((w * prior.entropy()).sum()),
                "kl_prior": float((w * kl_BH).sum()), "policy_updated": float(update_policy),
            }
        return policy_loss, value_loss, metrics

    @torch.no_grad()
    def imagined_returns(self, batch: dict[str, torch.Tensor], seed: int) -> dict[str, float]:
        """Imagined discounted return from ``batch``'s contexts under π, π_prior and the uniform random policy
        (same noise): where the game orders them too, the quickstart checks that imagination agrees."""
        gamma = self.cfg.gamma
        result = {}
        uniform = lambda h, first_only=True: self.agent.policy.uniform(h)  # noqa: E731
        for name, policy in (("policy", self.agent.policy), ("prior", self.prior), ("random", uniform)):
            traj = self.imagine(batch, torch.Generator().manual_seed(seed), policy)
            alive = state_weights(traj.continue_BH)
            discount = gamma ** torch.arange(traj.reward_BH.shape[1], device=self.device, dtype=torch.float32)
            result[f"imagined_return_{name}"] = float((alive * traj.continue_BH * traj.reward_BH * discount)
                                                      .sum(1).mean())
        return result
