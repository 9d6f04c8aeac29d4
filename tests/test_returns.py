"""TD(λ) returns (eq. 10) against a hand-computed example, and the state weights after terminals."""

import torch

from dreamer_model.agent.returns import lambda_returns, state_weights


def test_lambda_returns_match_a_hand_computed_example():
    gamma, lam = 0.9, 0.5
    reward = torch.tensor([[1.0, 0.0, 2.0]])  # r_1, r_2, r_3
    cont = torch.tensor([[1.0, 1.0, 1.0]])
    value = torch.tensor([[0.5, 1.0, 2.0, 4.0]])  # v_0 … v_3
    # R_3 = v_3 = 4
    # R_2 = 2 + 0.9 (0.5·4 + 0.5·4) = 5.6
    # R_1 = 0 + 0.9 (0.5·2 + 0.5·5.6) = 3.42
    # R_0 = 1 + 0.9 (0.5·1 + 0.5·3.42) = 2.989
    expected = torch.tensor([[2.989, 3.42, 5.6]])
    torch.testing.assert_close(lambda_returns(reward, cont, value, gamma, lam), expected)


def test_lambda_one_is_the_discounted_monte_carlo_return_and_zero_is_one_step_td():
    reward = torch.tensor([[1.0, 2.0, 3.0]])
    cont = torch.ones(1, 3)
    value = torch.tensor([[10.0, 20.0, 30.0, 40.0]])
    mc = lambda_returns(reward, cont, value, 0.5, 1.0)
    torch.testing.assert_close(mc[0, 0], torch.tensor(1 + 0.5 * 2 + 0.25 * 3 + 0.125 * 40))
    td = lambda_returns(reward, cont, value, 0.5, 0.0)
    torch.testing.assert_close(td, torch.tensor([[1 + 0.5 * 20, 2 + 0.5 * 30, 3 + 0.5 * 40]]))


def test_a_terminal_cuts_off_everything_after_it():
    reward = torch.tensor([[1.0, 5.0, 7.0]])  # the episode ends when arriving at s_2 (c_2 = 0)
    cont = torch.tensor([[1.0, 0.0, 1.0]])
    value = torch.tensor([[0.0, 3.0, 100.0, 100.0]])
    returns = lambda_returns(reward, cont, value, 0.9, 0.5)
    # R_1 = r_2 + γ·0·(…) = 5; R_0 = 1 + 0.9 (0.5·3 + 0.5·5) = 4.6 — the 100s after the end never count
    torch.testing.assert_close(returns[0, :2], torch.tensor([4.6, 5.0]))
    torch.testing.assert_close(state_weights(cont), torch.tensor([[1.0, 1.0, 0.0]]))
