"""The agent: the world model with hidden agent tokens, the task embedding, and the heads on h_t.

    agent tokens (B, T, A, D) = task embedding of the task, at every step
    h_t (B, T, D)             = mean over the A agent tokens' transformer outputs at step t
    π(a_{t+n} | h_t), p(r^in_{t+n} | h_t), p(c^in_{t+n} | h_t)   n = 0 … L    (eq. 9, MTP)
    p(v_t | h_t)                                                               (eq. 10)

The agent tokens read every world-model token while none reads them (``dynamics_layout``:
``hidden=True``), so the world model's predictions are the same with and without them.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, replace
from typing import Mapping

import torch
from torch import nn

from ..dynamics import DynamicsConfig, DynamicsModel
from ..dynamics.actions import ActionField, fields_from_dicts, fields_to_dicts
from ..errors import ModelError
from .actions import ActionSpace
from .config import AgentConfig, saved_agent_config
from .distributions import ActionDistribution
from .heads import BinsHead, ContinueHead, PolicyHead, TaskEmbedding
from .twohot import SymlogBins


class Agent(nn.Module):
    def __init__(self, dynamics: DynamicsConfig, action_fields: list[ActionField], space: ActionSpace,
                 cfg: AgentConfig, tasks: list[str]):
        super().__init__()
        self.cfg, self.space, self.tasks = cfg, space, list(tasks)
        self.world = DynamicsModel(replace(dynamics, agent_tokens=cfg.agent_tokens), action_fields)
        dim = dynamics.transformer.dim
        self.task_embed = TaskEmbedding(len(self.tasks), cfg.agent_tokens, dim)
        self.policy = PolicyHead(space, dim, cfg.head_hidden, cfg.head_layers, cfg.mtp, cfg.unimix)
        self.reward = BinsHead(dim, cfg.head_hidden, cfg.head_layers, cfg.mtp, cfg.bins)
        self.cont = ContinueHead(dim, cfg.head_hidden, cfg.head_layers, cfg.mtp)
        self.value = BinsHead(dim, cfg.head_hidden, cfg.head_layers, 0, cfg.bins)
        self.bins = SymlogBins(cfg.bins, cfg.bins_low, cfg.bins_high, cfg.bins_target)

    @property
    def dynamics_cfg(self) -> DynamicsConfig:
        return self.world.cfg

    def task_index(self, task: str) -> int:
        if task not in self.tasks:
            raise ModelError(f"the agent was trained for tasks {', '.join(self.tasks)}; not {task!r}")
        return self.tasks.index(task)

    def agent_inputs(self, task_B: torch.Tensor, steps: int) -> torch.Tensor:
        return self.task_embed(task_B, steps).to(self.world.latent_in.weight.dtype)  # (B, T, A, D)

    @staticmethod
    def state(agent_out_BTAD: torch.Tensor) -> torch.Tensor:
        """h (B, T, D): the mean of a step's agent-token outputs."""
        return agent_out_BTAD.float().mean(dim=2)

    def act(self, h: torch.Tensor) -> ActionDistribution:
        """π(a_t | h_t): the n = 0 prediction only."""
        return self.policy(h, first_only=True)

    def value_of(self, h: torch.Tensor, head: nn.Module | None = None) -> torch.Tensor:
        """The expected value symexp(E[b]) of p(v | h) (…)."""
        return self.bins.decode((head or self.value)(h)[..., 0, :])

    def describe(self) -> dict:
        """What a checkpoint needs to rebuild this agent (besides the weights)."""
        return {"dynamics": asdict(self.world.cfg), "action_fields": fields_to_dicts(self.world.action_fields),
                "action_space": self.space.to_dict(), "agent": asdict(self.cfg), "tasks": self.tasks}

    @classmethod
    def from_description(cls, description: Mapping, source: str) -> "Agent":
        from ..configs import apply_overrides

        dynamics = apply_overrides(DynamicsConfig(), description["dynamics"], source)
        cfg = apply_overrides(AgentConfig(), saved_agent_config(description["agent"]), source)
        return cls(dynamics, fields_from_dicts(description["action_fields"]),
                   ActionSpace.from_dict(description["action_space"]), cfg, description["tasks"])

    def frozen_policy(self) -> PolicyHead:
        """A frozen copy of the policy head: π_prior of eq. 11."""
        return copy.deepcopy(self.policy).requires_grad_(False)

