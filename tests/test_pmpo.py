"""PMPO (eq. 11): the signs, the set normalisation, and toy bandits whose optimum is known."""

import pytest
import torch

from dreamer_model.agent.distributions import BoundedBeta, Categorical
from dreamer_model.agent.pmpo import pmpo_loss


pytestmark = pytest.mark.usefixtures("one_thread")


def test_gradient_raises_log_prob_on_positive_and_lowers_it_on_negative_advantages():
    log_prob = torch.zeros(4, requires_grad=True)
    advantage = torch.tensor([2.0, 0.1, -0.1, -3.0])
    terms = pmpo_loss(log_prob, advantage, torch.zeros(4), alpha=0.5, beta=0.0)
    terms.loss.backward()
    # descending the loss moves ln π up where the gradient is negative
    assert (log_prob.grad[:2] < 0).all() and (log_prob.grad[2:] > 0).all()
    # only the sign counts: each set is averaged, so |A| does not change the per-sample weight
    torch.testing.assert_close(log_prob.grad, torch.tensor([-0.25, -0.25, 0.25, 0.25]))
    assert float(terms.frac_positive) == 0.5


def test_set_sizes_normalise_each_side_and_alpha_weighs_them():
    log_prob = torch.tensor([-1.0, -2.0, -3.0])
    advantage = torch.tensor([1.0, -1.0, -1.0])
    terms = pmpo_loss(log_prob, advantage, torch.tensor([0.5, 0.1, 0.3]), alpha=0.25, beta=0.6)
    # (1 − α)/|D−| Σ_{D−} ln π = 0.75 · (−5/2); −α/|D+| Σ_{D+} ln π = −0.25 · (−1); β/N Σ KL = 0.6 · 0.3
    torch.testing.assert_close(terms.negative, torch.tensor(-1.875))
    torch.testing.assert_close(terms.positive, torch.tensor(0.25))
    torch.testing.assert_close(terms.kl, torch.tensor(0.18))
    torch.testing.assert_close(terms.loss, torch.tensor(-1.875 + 0.25 + 0.18))
    empty = pmpo_loss(log_prob, torch.ones(3), torch.zeros(3))  # no D−: that term is 0, not NaN
    assert torch.isfinite(empty.loss) and float(empty.negative) == 0.0


def _categorical_bandit(beta: float, prior_logits: torch.Tensor, steps: int = 400) -> torch.Tensor:
    torch.manual_seed(0)
    means = torch.tensor([0.1, 0.5, 0.9, 0.3, 0.2])  # arm 2 is best
    logits = torch.zeros(5, requires_grad=True)
    optimizer = torch.optim.Adam([logits], lr=0.05)
    prior = Categorical(prior_logits)
    for _ in range(steps):
        policy = Categorical(logits.expand(256, 5))
        arms = policy.sample()
        reward = means[arms] + 0.1 * torch.randn(256)
        value = (policy.probs.detach() * means).sum(-1)  # a perfect critic: E_π[r]
        terms = pmpo_loss(policy.log_prob(arms), reward - value, policy.kl(Categorical(prior_logits.expand(256, 5))),
                          alpha=0.5, beta=beta)
        optimizer.zero_grad()
        terms.loss.backward()
        optimizer.step()
    del prior
    return torch.softmax(logits.detach(), -1)


def test_categorical_bandit_converges_to_the_best_arm():
    probs = _categorical_bandit(beta=0.0, prior_logits=torch.zeros(5))
    assert probs.argmax() == 2 and probs[2] > 0.95


def test_kl_to_the_prior_holds_the_policy_back():
    free = _categorical_bandit(beta=0.0, prior_logits=torch.zeros(5))
    held = _categorical_bandit(beta=3.0, prior_logits=torch.zeros(5))
    assert held.argmax() == 2  # still prefers the best arm …
    assert held[2] < free[2] and held.min() > free.min()  # … but stays closer to the uniform prior


def test_bounded_continuous_bandit_converges_to_the_optimum_inside_the_bounds():
    torch.manual_seed(0)
    low, high = torch.tensor([-2.0]), torch.tensor([2.0])
    raw = torch.zeros(1, 2, requires_grad=True)
    optimizer = torch.optim.Adam([raw], lr=0.05)
    for _ in range(500):
        policy = BoundedBeta(raw.expand(256, 1, 2), low, high)
        action = policy.sample()
        assert ((action >= -2) & (action <= 2)).all()
        reward = -(action[:, 0] - 1.2) ** 2
        advantage = reward - reward.mean()
        terms = pmpo_loss(policy.log_prob(action), advantage, torch.zeros(256), alpha=0.5, beta=0.0)
        optimizer.zero_grad()
        terms.loss.backward()
        optimizer.step()
        assert torch.isfinite(raw).all()
    mode = BoundedBeta(raw.detach(), low, high).mode()
    assert abs(float(mode) - 1.2) < 0.15
