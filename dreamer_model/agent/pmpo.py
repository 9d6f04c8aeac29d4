"""PMPO policy loss (paper eq. 11): only the sign of the advantage counts, plus a KL to the BC prior.

Split the states by the sign of their advantage A_i = R^λ_i − v_i into D+ (A_i ≥ 0) and D− (A_i < 0):

    L(θ) = (1 − α)/|D−| Σ_{i∈D−} ln π_θ(a_i|s_i)  −  α/|D+| Σ_{i∈D+} ln π_θ(a_i|s_i)
           + β/N Σ_i KL[π_θ(·|s_i) ‖ π_prior(·|s_i)]

Minimising it raises the log-probability of actions that did better than expected (D+) and lowers
it for those that did worse (D−), each set normalised by its own size, so the scale of the rewards
does not matter; the KL keeps the policy near the frozen phase-2 (behaviour-cloned) prior.
Optional per-state weights w_i (e.g. the probability the imagined episode is still running) turn
|D±| and N into weight sums. Under DDP (``reduce``: the mean over processes) the sizes are those of the
global batch, so the mean of the processes' losses is the loss of the whole batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch


@dataclass
class PMPOTerms:
    loss: torch.Tensor  # the total, to minimise
    negative: torch.Tensor  # (1 − α)/|D−| Σ_{D−} ln π
    positive: torch.Tensor  # −α/|D+| Σ_{D+} ln π
    kl: torch.Tensor  # β/N Σ KL[π ‖ π_prior]  (β included)
    frac_positive: torch.Tensor  # |D+| / N

    def scalars(self) -> dict[str, float]:
        return {"policy_loss": float(self.loss), "pmpo_negative": float(self.negative),
                "pmpo_positive": float(self.positive), "pmpo_kl_term": float(self.kl),
                "adv_frac_positive": float(self.frac_positive)}


def pmpo_loss(log_prob_N: torch.Tensor, advantage_N: torch.Tensor, kl_N: torch.Tensor, alpha: float = 0.5,
              beta: float = 0.3, weight_N: torch.Tensor | None = None,
              reduce: Callable[[torch.Tensor], torch.Tensor] | None = None) -> PMPOTerms:
    """Eq. 11 over N states (any shape, flattened): ln π(a_i|s_i), A_i (no gradient), KL_i → PMPOTerms."""
    reduce = reduce or (lambda size: size)
    log_prob_N, kl_N = log_prob_N.reshape(-1), kl_N.reshape(-1)
    advantage_N = advantage_N.detach().reshape(-1)
    weight_N = torch.ones_like(log_prob_N) if weight_N is None else weight_N.detach().reshape(-1).float()
    in_positive_N = (advantage_N >= 0).float() * weight_N  # D+
    in_negative_N = (advantage_N < 0).float() * weight_N  # D−
    size_positive, size_negative = reduce(in_positive_N.sum()), reduce(in_negative_N.sum())
    size = reduce(weight_N.sum())
    negative = (1 - alpha) * (in_negative_N * log_prob_N).sum() / size_negative.clamp_min(1e-8)
    positive = -alpha * (in_positive_N * log_prob_N).sum() / size_positive.clamp_min(1e-8)
    kl = beta * (weight_N * kl_N).sum() / size.clamp_min(1e-8)
    return PMPOTerms(negative + positive + kl, negative.detach(), positive.detach(), kl.detach(),
                     (size_positive / size.clamp_min(1e-8)).detach())
