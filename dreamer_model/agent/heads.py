"""Heads on the agent tokens' outputs h_t (paper §3.3): policy, reward, continuation and value.

Each head is a small MLP: RMSNorm → (Linear → SiLU) × layers → Linear. With multi-token prediction
(MTP, eq. 9) the policy, reward and continuation heads predict L + 1 steps from one state,
n = 0 … L (L = 8): the action a_{t+n} and the reward / continuation of arriving at step t+n; the
output layer holds L + 1 blocks of outputs, one per distance n. The value head predicts one
distribution (n = 0). Reward and value heads output logits over symlog bins (twohot.py); their
output layers start at zero so the first predictions are 0 (DreamerV3).
"""

from __future__ import annotations

import torch
from torch import nn

from ..nn.norms import RMSNorm
from .actions import ActionSpace
from .distributions import ActionDistribution, Bernoullis, BoundedBeta, Categorical


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int, out: int, layers: int = 2, zero_init: bool = False):
        super().__init__()
        blocks: list[nn.Module] = [RMSNorm(dim)]
        width = dim
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        self.body = nn.Sequential(*blocks)
        self.out = nn.Linear(width, out)
        if zero_init:
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x))


class TaskEmbedding(nn.Module):
    """Learned task vectors → the agent tokens of every step: (n_tasks) → (B, T, n_agent, D)."""

    def __init__(self, n_tasks: int, n_agent: int, dim: int):
        super().__init__()
        self.n_tasks, self.n_agent = n_tasks, n_agent
        self.table = nn.Parameter(torch.randn(n_tasks, n_agent, dim) * 0.02)

    def forward(self, task_B: torch.Tensor, steps: int) -> torch.Tensor:
        return self.table[task_B.long()][:, None].expand(-1, steps, -1, -1)  # (B, T, n_agent, D)


class PolicyHead(nn.Module):
    """h (…, D) → an ActionDistribution with batch shape (…, L + 1) (or (…) with ``mtp=0`` outputs only n = 0)."""

    def __init__(self, space: ActionSpace, dim: int, hidden: int, layers: int, mtp: int, unimix: float = 0.01):
        super().__init__()
        self.space, self.steps, self.unimix = space, mtp + 1, unimix
        self.sizes = [c.params for c in space.components]
        self.mlp = MLP(dim, hidden, self.steps * sum(self.sizes), layers)
        for c in space.components:
            if c.kind == "continuous":
                self.register_buffer(f"low_{c.name}", torch.tensor(c.low), persistent=False)
                self.register_buffer(f"high_{c.name}", torch.tensor(c.high), persistent=False)

    def forward(self, h: torch.Tensor, first_only: bool = False) -> ActionDistribution:
        raw = self.mlp(h).unflatten(-1, (self.steps, sum(self.sizes)))  # (…, L + 1, P)
        if first_only:
            raw = raw[..., 0, :]  # (…, P): the action at n = 0 only (acting)
        return self.distribution(raw)

    def uniform(self, h: torch.Tensor) -> ActionDistribution:
        """π_random at the states h (…, D): every component at zero logits, i.e. uniform over a categorical's
        classes and each button on with probability ½ (a bounded continuous component: its symmetric Beta)."""
        return self.distribution(torch.zeros(*h.shape[:-1], sum(self.sizes), device=h.device))

    def distribution(self, raw: torch.Tensor) -> ActionDistribution:
        """The action distribution of raw head outputs (…, P), one chunk per action component."""
        parts = {}
        for c, chunk in zip(self.space.components, raw.split(self.sizes, dim=-1)):
            if c.kind == "categorical":
                parts[c.name] = Categorical(chunk, self.unimix)
            elif c.kind == "binary":
                parts[c.name] = Bernoullis(chunk)
            else:
                parts[c.name] = BoundedBeta(chunk.unflatten(-1, (c.size, 2)), getattr(self, f"low_{c.name}"),
                                            getattr(self, f"high_{c.name}"))
        return ActionDistribution(parts)


class BinsHead(nn.Module):
    """h (…, D) → logits (…, L + 1, B) over symlog bins (reward with MTP; value with mtp = 0)."""

    def __init__(self, dim: int, hidden: int, layers: int, mtp: int, bins: int):
        super().__init__()
        self.steps, self.bins = mtp + 1, bins
        self.mlp = MLP(dim, hidden, self.steps * bins, layers, zero_init=True)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.mlp(h).unflatten(-1, (self.steps, self.bins))


class ContinueHead(nn.Module):
    """h (…, D) → logits (…, L + 1) of 'the episode goes on after arriving at step t + n'."""

    def __init__(self, dim: int, hidden: int, layers: int, mtp: int):
        super().__init__()
        self.mlp = MLP(dim, hidden, mtp + 1, layers)
        nn.init.zeros_(self.mlp.out.weight)
        nn.init.constant_(self.mlp.out.bias, 4.0)  # start near "continues" (most steps do)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.mlp(h)
