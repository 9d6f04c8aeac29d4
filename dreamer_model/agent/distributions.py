"""Policy distributions over one action: categorical, independent Bernoullis, bounded Beta, and products.

Every distribution has batch shape (…) (e.g. (B, T, L+1) with multi-token prediction) and offers
what PMPO (eq. 11) and BC (eq. 9) need, each summed over the parts of one action:

    log_prob(a) (…)   entropy() (…)   kl(prior) (…) = KL[π ‖ π_prior] in closed form
    sample(generator) → action        mode() → action

Actions are dicts {component: tensor}: a categorical component is (…) int64, binary (…, n) in {0, 1},
continuous (…, n) floats inside [low, high]. Continuous actions use a Beta distribution on
[low, high] so the policy stays bounded (PMPO diverges with unbounded continuous policies in some
reproductions); categoricals mix in ``unimix`` of the uniform so no log-probability is ever −∞.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import distributions as D
from torch.nn import functional as F

from ..shards import WHOLE, Shard


def _uniform(shape: torch.Size, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    return torch.rand(shape, generator=generator, device="cpu").to(device) if generator is not None \
        else torch.rand(shape, device=device)


class Categorical:
    """One of n classes; logits (…, n)."""

    def __init__(self, logits: torch.Tensor, unimix: float = 0.0):
        logits = logits.float()
        if unimix > 0:
            probs = (1 - unimix) * torch.softmax(logits, -1) + unimix / logits.shape[-1]
            self.log_probs = probs.log()
        else:
            self.log_probs = torch.log_softmax(logits, -1)

    @property
    def probs(self) -> torch.Tensor:
        return self.log_probs.exp()

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        return self.log_probs.gather(-1, action.long()[..., None]).squeeze(-1)

    def entropy(self) -> torch.Tensor:
        return -(self.probs * self.log_probs).sum(-1)

    def kl(self, prior: "Categorical") -> torch.Tensor:
        return (self.probs * (self.log_probs - prior.log_probs)).sum(-1)

    def sample(self, generator: torch.Generator | None = None, shard: Shard = WHOLE) -> torch.Tensor:
        u = shard.draw(lambda shape: _uniform(shape, generator, self.log_probs.device),
                       self.log_probs.shape[:-1] + (1,))
        cdf = self.probs.cumsum(-1)
        return (u > cdf).sum(-1).clamp(max=self.log_probs.shape[-1] - 1)

    def mode(self) -> torch.Tensor:
        return self.log_probs.argmax(-1)


class Bernoullis:
    """n independent binary variables (e.g. Minecraft's 23 buttons); logits (…, n)."""

    def __init__(self, logits: torch.Tensor):
        self.logits = logits.float()

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        return -F.binary_cross_entropy_with_logits(self.logits, action.float(), reduction="none").sum(-1)

    def entropy(self) -> torch.Tensor:
        p = torch.sigmoid(self.logits)
        return F.binary_cross_entropy_with_logits(self.logits, p, reduction="none").sum(-1)

    def kl(self, prior: "Bernoullis") -> torch.Tensor:
        p = torch.sigmoid(self.logits)
        log_p, log_not_p = F.logsigmoid(self.logits), F.logsigmoid(-self.logits)
        log_q, log_not_q = F.logsigmoid(prior.logits), F.logsigmoid(-prior.logits)
        return (p * (log_p - log_q) + (1 - p) * (log_not_p - log_not_q)).sum(-1)

    def sample(self, generator: torch.Generator | None = None, shard: Shard = WHOLE) -> torch.Tensor:
        u = shard.draw(lambda shape: _uniform(shape, generator, self.logits.device), self.logits.shape)
        return (u < torch.sigmoid(self.logits)).long()

    def mode(self) -> torch.Tensor:
        return (self.logits > 0).long()


class BoundedBeta:
    """n independent Beta variables scaled to [low, high]; raw (…, n, 2) → concentrations 1 + softplus."""

    def __init__(self, raw: torch.Tensor, low: torch.Tensor, high: torch.Tensor):
        concentration = 1.0 + F.softplus(raw.float())  # ≥ 1: unimodal, density bounded
        self.beta = D.Beta(concentration[..., 0], concentration[..., 1])
        self.low, self.high = low.float(), high.float()

    def _unit(self, action: torch.Tensor) -> torch.Tensor:
        eps = 1e-4
        return ((action.float() - self.low) / (self.high - self.low)).clamp(eps, 1 - eps)

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        return (self.beta.log_prob(self._unit(action)) - torch.log(self.high - self.low)).sum(-1)

    def entropy(self) -> torch.Tensor:
        return (self.beta.entropy() + torch.log(self.high - self.low)).sum(-1)

    def kl(self, prior: "BoundedBeta") -> torch.Tensor:
        return D.kl_divergence(self.beta, prior.beta).sum(-1)

    def sample(self, generator: torch.Generator | None = None, shard: Shard = WHOLE) -> torch.Tensor:
        """With a generator: a fixed stream per process (under DDP not the one-process draws: the Gammas of
        other processes' rows would need their concentrations)."""
        if generator is None:
            unit = self.beta.sample()
        else:  # Beta from two Gammas with a fixed stream: x/(x+y), x ~ Γ(a), y ~ Γ(b)
            a, b = self.beta.concentration1, self.beta.concentration0
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)) + shard.rank)
                x, y = torch._standard_gamma(a.cpu()), torch._standard_gamma(b.cpu())
            unit = (x / (x + y)).to(a.device)
        return self.low + (self.high - self.low) * unit

    def mode(self) -> torch.Tensor:
        a, b = self.beta.concentration1, self.beta.concentration0
        unit = torch.where(a + b > 2, (a - 1) / (a + b - 2).clamp_min(1e-6), torch.full_like(a, 0.5))
        return self.low + (self.high - self.low) * unit


class ActionDistribution:
    """The product of one distribution per action component: log-probs, entropies and KLs add."""

    def __init__(self, parts: Mapping[str, Categorical | Bernoullis | BoundedBeta]):
        self.parts = dict(parts)

    def log_prob(self, action: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return sum(part.log_prob(action[name]) for name, part in self.parts.items())

    def entropy(self) -> torch.Tensor:
        return sum(part.entropy() for part in self.parts.values())

    def kl(self, prior: "ActionDistribution") -> torch.Tensor:
        return sum(part.kl(prior.parts[name]) for name, part in self.parts.items())

    def sample(self, generator: torch.Generator | None = None, shard: Shard = WHOLE) -> dict[str, torch.Tensor]:
        """One action per row; ``shard``: this process's rows of the global batch's draws (``shards.py``)."""
        return {name: part.sample(generator, shard) for name, part in self.parts.items()}

    def mode(self) -> dict[str, torch.Tensor]:
        return {name: part.mode() for name, part in self.parts.items()}
