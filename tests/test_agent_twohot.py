"""Two-hot / HL-Gauss targets over 255 symlog bins: exact encode/decode, the loss, the range."""

import pytest
import torch

from dreamer_model.agent.twohot import SymlogBins, symexp, symlog


pytestmark = pytest.mark.usefixtures("one_thread")


def test_symlog_symexp_invert_each_other():
    x = torch.tensor([-1e4, -3.5, -1.0, 0.0, 0.25, 1.0, 7.0, 1e5])
    torch.testing.assert_close(symexp(symlog(x)), x, rtol=1e-5, atol=1e-6)
    assert symlog(torch.tensor(1.0)) == torch.log(torch.tensor(2.0))


def test_twohot_puts_mass_on_the_two_neighbouring_bins_and_decodes_exactly():
    bins = SymlogBins(255)
    assert bins.centres_B.shape == (255,) and bins.centres_B[127] == 0.0
    x = torch.tensor([0.0, 1.0, -1.0, 0.37, 12.5, -250.0, 3e4])
    target = bins.twohot(x)
    assert target.shape == (7, 255)
    torch.testing.assert_close(target.sum(-1), torch.ones(7))
    assert ((target > 0).sum(-1) <= 2).all()
    nonzero = [torch.nonzero(row).flatten().tolist() for row in target]
    assert all(len(ix) == 1 or ix[1] == ix[0] + 1 for ix in nonzero)  # neighbours
    # the expected bin equals symlog(x), so decoding gives x back
    torch.testing.assert_close(bins.decode_probs(target), x, rtol=1e-4, atol=1e-5)
    # zero sits exactly on a bin
    assert target[0, 127] == 1.0


def test_hand_computed_twohot_with_five_bins():
    bins = SymlogBins(5, low=-2.0, high=2.0)  # centres -2, -1, 0, 1, 2 in symlog space
    x = symexp(torch.tensor(0.25))  # symlog(x) = 0.25: between bins 0 and 1 → weights 0.75 / 0.25
    torch.testing.assert_close(bins.twohot(x), torch.tensor([0.0, 0.0, 0.75, 0.25, 0.0]))
    # beyond the range: all mass on the last bin
    torch.testing.assert_close(bins.twohot(torch.tensor(1e6)), torch.tensor([0.0, 0.0, 0.0, 0.0, 1.0]))


def test_nll_is_smallest_for_logits_matching_the_target_and_learns_a_value():
    bins = SymlogBins(255)
    x = torch.tensor([4.0])
    logits = torch.zeros(1, 255, requires_grad=True)
    optimizer = torch.optim.Adam([logits], lr=0.5)
    for _ in range(200):
        optimizer.zero_grad()
        bins.nll(logits, x).mean().backward()
        optimizer.step()
    torch.testing.assert_close(bins.decode(logits.detach()), x, rtol=1e-2, atol=1e-2)
    assert bins.nll(logits.detach(), x) < bins.nll(torch.zeros(1, 255), x)


def test_hlgauss_is_a_smooth_distribution_centred_on_the_value():
    bins = SymlogBins(255, target="hlgauss", sigma_bins=0.75)
    x = torch.tensor([0.0, 2.0, -30.0])
    target = bins.encode(x)
    torch.testing.assert_close(target.sum(-1), torch.ones(3))
    assert ((target > 1e-3).sum(-1) >= 3).all()  # spread over several bins, unlike two-hot
    torch.testing.assert_close(bins.decode_probs(target), x, rtol=1e-3, atol=1e-3)
