"""Policies an evaluation can run, all behind one batched interface.

    policy.reset(envs, policy_seeds)          a new batch of episodes starts (one env per episode)
    policy.act(frames_B, alive_B) → (B,) int  the actions for every env whose episode is still running

* ``BehaviourPolicy``: the policies that recorded the data (``random``, ``noisy-scripted`` from
  ``dreamer_data.collect.policies``), each episode's randomness from its policy seed; scripted play
  reads the environment's state as it does while collecting.
* ``AgentPolicy``: a trained agent acting on what it would see in deployment: each real frame goes
  through the tokenizer's encoder (its K/V cache carries the frames before), the latent is committed
  to the world model's K/V cache at the context signal level with the previous action, and the
  policy head reads the agent tokens' output h_t. The world model's cache is the agent's memory
  (a sliding window of the trained context). Episodes of a batch run in lock-step; when one ends its
  rows are dropped from both caches.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from dreamer_data.collect.policies import make_policy

from ..agent.model import Agent
from ..dynamics import Sampler
from ..nn import TimeCache
from ..tokenizer import Tokenizer


class EvalPolicy(Protocol):
    name: str

    def reset(self, envs: list, policy_seeds: list[int]) -> None: ...

    def act(self, frames_B: np.ndarray, alive_B: np.ndarray) -> np.ndarray: ...


class BehaviourPolicy:
    def __init__(self, name: str, epsilon: float = 0.1):
        self.name, self.epsilon = name, epsilon
        self.policies: list = []
        self.envs: list = []

    def reset(self, envs: list, policy_seeds: list[int]) -> None:
        self.envs = envs
        self.policies = [make_policy(self.name, env, self.epsilon, np.random.default_rng(seed))
                         for env, seed in zip(envs, policy_seeds)]

    def act(self, frames_B: np.ndarray, alive_B: np.ndarray) -> np.ndarray:
        actions = np.zeros(len(self.envs), np.int64)
        for i in np.flatnonzero(alive_B):
            actions[i] = self.policies[i].act(self.envs[i])
        return actions


def draw(probs_BA: torch.Tensor, generators: list[torch.Generator]) -> torch.Tensor:
    """One action per row of probs (B, A) by inverse-CDF sampling, one uniform per row from that episode's own
    stream: an episode's actions do not depend on which other episodes share its batch."""
    u_B = torch.cat([torch.rand(1, generator=g) for g in generators])
    cdf_BA = probs_BA.cumsum(-1)
    return (u_B[:, None] > cdf_BA).sum(-1).clamp(max=cdf_BA.shape[-1] - 1).long()


def keep_rows(cache: TimeCache, keep: torch.Tensor, tokens_per_step: int) -> None:
    """Drop finished episodes from a temporal K/V cache: keys (B·S, H, P, d) are batch-major."""
    for layer in range(len(cache.keys)):
        if cache.keys[layer] is None:
            continue
        for store in (cache.keys, cache.values):
            x = store[layer]
            x = x.view(x.shape[0] // tokens_per_step, tokens_per_step, *x.shape[1:])[keep]  # (B, S, …); P may be 0
            store[layer] = x.flatten(0, 1)


class AgentPolicy:
    def __init__(self, agent: Agent, tokenizer: Tokenizer, task: str, greedy: bool = False, seed: int = 0,
                 device: torch.device | str = "cpu", name: str = "agent"):
        self.agent = agent.to(device).eval()
        self.tokenizer = tokenizer.to(device).eval()
        self.sampler = Sampler(self.agent.world)
        self.task = agent.task_index(task)
        self.greedy, self.seed, self.device, self.name = greedy, seed, torch.device(device), name
        self.component = agent.space.components[0]
        if not agent.space.is_single_categorical:
            raise NotImplementedError("AgentPolicy acts in Crafter / MinAtar (one categorical action)")

    def reset(self, envs: list, policy_seeds: list[int]) -> None:
        b = len(envs)
        # One random stream per episode (its policy seed): an episode plays the same whatever batch it is in.
        self.generators = [torch.Generator().manual_seed(int(seed) + 1_000_003 * self.seed) for seed in policy_seeds]
        self.rows = torch.arange(b)  # row of each env in the caches (−1 once finished)
        self.tok_cache = self.tokenizer.encoder.init_cache()
        self.wm_cache = self.sampler.init_cache(self.agent.cfg.policy_window)
        self.prev_action = torch.zeros(b, dtype=torch.long)
        self.has_prev = torch.zeros(b, dtype=torch.bool)
        self.tok_tokens = self.tokenizer.encoder.layout.size
        self.wm_tokens = self.agent.world.layout.size

    def _compact(self, alive_B: np.ndarray) -> None:
        live = torch.from_numpy(np.flatnonzero(alive_B))
        current = self.rows[live]
        if bool((current < 0).any()):
            raise RuntimeError("agent policy: an episode came back to life")
        if len(current) == int((self.rows >= 0).sum()):
            return
        keep = current.to(self.device)
        keep_rows(self.tok_cache, keep, self.tok_tokens)
        keep_rows(self.wm_cache, keep, self.wm_tokens)
        self.prev_action, self.has_prev = self.prev_action[current], self.has_prev[current]
        self.rows[:] = -1
        self.rows[live] = torch.arange(len(live))

    @torch.inference_mode()
    def act(self, frames_B: np.ndarray, alive_B: np.ndarray) -> np.ndarray:
        self._compact(alive_B)
        live = np.flatnonzero(alive_B)
        frames = torch.from_numpy(np.ascontiguousarray(frames_B[live])).to(self.device)[:, None]  # (b, 1, H, W, C)
        z = self.tokenizer.encode(frames, cache=self.tok_cache, update_cache=True)  # (b, 1, S_z, D_z)
        b = z.shape[0]
        action_in = {self.component.name: self.prev_action[:, None].to(self.device)}
        has_in = (self.has_prev if self.agent.cfg.policy_sees_actions else torch.zeros_like(self.has_prev))[:, None]
        has_in = has_in.to(self.device)
        task = torch.full((b,), self.task, dtype=torch.long, device=self.device)
        generators = [self.generators[i] for i in live]
        noise = torch.cat([torch.randn((1, *z.shape[1:]), generator=g) for g in generators]).to(self.device)
        out = self.sampler.commit(self.wm_cache, z, action_in, has_in, noise,
                                  agent=self.agent.agent_inputs(task, 1))
        dist = self.agent.act(self.agent.state(out.agent)[:, 0]).parts[self.component.name]  # π(a_t | h_t)
        self.probs = dist.probs.cpu()  # (b, actions): the last step's π, for reports and tests
        if self.greedy:
            action = dist.mode().cpu().long()  # (b,)
        else:
            action = draw(self.probs, generators)
        self.prev_action, self.has_prev = action, torch.ones(b, dtype=torch.bool)
        actions = np.zeros(len(frames_B), np.int64)
        actions[live] = action.numpy()
        return actions
