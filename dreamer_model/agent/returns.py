"""TD(λ) returns (paper eq. 10) over an imagined trajectory, and the weights of its states.

An imagined trajectory holds states s_0 … s_H. Arriving at s_{t+1} (after the action a_t) produces
the reward r_{t+1} and the continuation flag c_{t+1} (0 where the episode ended there: no reward and
no value after it). With values v_t of each state, the λ-return is the recursion

    R^λ_t = r_{t+1} + γ c_{t+1} [ (1 − λ) v_{t+1} + λ R^λ_{t+1} ],      R^λ_H = v_H,

i.e. the exponentially weighted mix (1 − λ) Σ_n λ^{n−1} R^{(n)}_t of the n-step returns of eq. 10,
truncated at the horizon by the bootstrap v_H.
"""

from __future__ import annotations

import torch


def lambda_returns(reward_BH: torch.Tensor, continue_BH: torch.Tensor, value_BH1: torch.Tensor,
                   gamma: float, lam: float) -> torch.Tensor:
    """reward_BH[:, t] = r_{t+1}, continue_BH[:, t] = c_{t+1}, value_BH1[:, t] = v_t (t = 0 … H) → R^λ (B, H)."""
    b, h = reward_BH.shape
    if continue_BH.shape != (b, h) or value_BH1.shape != (b, h + 1):
        raise ValueError(f"lambda_returns: rewards {tuple(reward_BH.shape)}, continues {tuple(continue_BH.shape)}, "
                         f"values {tuple(value_BH1.shape)}; expected (B, H), (B, H), (B, H + 1)")
    returns = []
    next_return_B = value_BH1[:, h]  # R^λ_H = v_H
    for t in reversed(range(h)):
        next_return_B = reward_BH[:, t] + gamma * continue_BH[:, t] * (
            (1 - lam) * value_BH1[:, t + 1] + lam * next_return_B)
        returns.append(next_return_B)
    return torch.stack(returns[::-1], dim=1)


def state_weights(continue_BH: torch.Tensor) -> torch.Tensor:
    """Weight of each state s_0 … s_{H−1}: the probability the episode is still running there,
    w_0 = 1, w_t = Π_{k=1}^{t} c_k. States after an imagined terminal get no policy or value loss."""
    ones_B1 = torch.ones_like(continue_BH[:, :1])
    return torch.cat((ones_B1, continue_BH[:, :-1]), dim=1).cumprod(dim=1)  # (B, H)
