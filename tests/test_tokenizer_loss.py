"""Eq. 5: MSE + 0.2·LPIPS, each normalised by its running RMS; LPIPS loads its real backbone or says why not."""

import pytest
import torch
import torchvision

from dreamer_model.errors import ModelError
from dreamer_model.tokenizer.loss import RunningRMS, TokenizerLoss, psnr
from dreamer_model.tokenizer.lpips_loss import LPIPS, backbone_weights_path


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch"


@pytest.fixture
def alexnet_in_cache(torch_home):
    """An AlexNet state_dict saved under the exact file name torchvision's hub cache expects."""
    torch.manual_seed(1)
    state = torchvision.models.alexnet().state_dict()
    path = torch_home / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    return state


def test_missing_backbone_weights_is_a_clear_error(torch_home):
    expected = torch_home / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    assert backbone_weights_path("alex") == expected
    with pytest.raises(ModelError) as error:
        TokenizerLoss(lpips_weight=0.2)
    assert str(expected) in str(error.value) and "--lpips-weight 0" in str(error.value)


def test_lpips_loads_the_backbone_from_the_torch_hub_cache(alexnet_in_cache):
    lpips = LPIPS("alex")
    loaded = lpips.net.net.slice1[0].weight  # AlexNet's first conv inside lpips
    assert torch.equal(loaded, alexnet_in_cache["features.0.weight"])
    assert not any(p.requires_grad for p in lpips.parameters())
    images = torch.rand(3, 64, 64, 3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(lpips(images, images), torch.zeros(3))
    assert bool((lpips(images, images.flip(1)) > 0).all())


def test_corrupt_backbone_file_is_a_clear_error(torch_home):
    path = backbone_weights_path("alex")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="unusable alex backbone weights"):
        LPIPS("alex")


def test_running_rms_normalises_each_term_to_unit_scale():
    rms = RunningRMS(decay=0.9)
    first = rms(torch.tensor(4.0))
    assert float(first) == pytest.approx(1.0)  # bias-corrected from the first update
    for _ in range(50):
        out = rms(torch.tensor(4.0))
    assert float(out) == pytest.approx(1.0, rel=1e-6)
    value = torch.tensor(8.0, requires_grad=True)
    out = rms(value)
    assert 1.0 < float(out.detach()) < 2.0  # a jump shows up, slowly absorbed
    out.backward()
    assert float(value.grad) == pytest.approx(1 / rms.rms)  # the normaliser is not back-propagated
    rms.eval()
    before = rms.rms
    rms(torch.tensor(100.0))
    assert rms.rms == before  # eval mode never updates


def test_tokenizer_loss_with_and_without_lpips(alexnet_in_cache):
    target = torch.rand(2, 3, 32, 32, 3, generator=torch.Generator().manual_seed(0))
    recon = (target + 0.1 * torch.randn(target.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    plain = TokenizerLoss(lpips_weight=0.0)
    assert plain.lpips is None
    loss, metrics = plain(recon, target)
    assert float(loss) == pytest.approx(1.0)  # MSE / RMS(MSE) on the first step
    assert set(metrics) == {"mse", "psnr", "loss"}
    full = TokenizerLoss(lpips_weight=0.2)
    loss, metrics = full(recon, target)
    assert float(loss) == pytest.approx(1.2)  # 1 + 0.2 · 1: both terms at unit scale
    assert metrics["lpips"] > 0 and metrics["psnr"] == pytest.approx(psnr(metrics["mse"]))


def test_psnr():
    assert psnr(1e-3) == pytest.approx(30.0)
    assert psnr(0.01) == pytest.approx(20.0)
