"""LPIPS (Zhang et al. 2018) through the ``lpips`` package, with its backbone from the torch hub cache.

``lpips`` builds torchvision's AlexNet/VGG with ImageNet weights, which torchvision takes from
``$TORCH_HOME/hub/checkpoints/<file>`` and would otherwise download. Nothing can be downloaded on
our training machines, and a silently random backbone would make the perceptual term meaningless,
so the cache file is checked first and its absence is a one-line error that names the path and the
``--lpips-weight 0`` escape. LPIPS's own linear heads ship inside the ``lpips`` package.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import torch
from torch import nn

from ..errors import ModelError

_WEIGHTS = {"alex": "AlexNet_Weights", "vgg": "VGG16_Weights", "squeeze": "SqueezeNet1_1_Weights"}
# The smallest frame side each backbone accepts: below it a pooling layer gets an empty input (AlexNet's
# stride-4 stem and two 3x3/2 max-pools need 31 pixels, VGG's 2x2 pools 16, SqueezeNet's 17; measured).
MIN_SIDE = {"alex": 31, "vgg": 16, "squeeze": 17}


def backbone_weights_path(net: str) -> Path:
    """Where torchvision looks for the ImageNet weights of LPIPS's ``net`` backbone (torch hub cache)."""
    import torchvision.models as tv

    if net not in _WEIGHTS:
        raise ModelError(f"LPIPS: unknown backbone {net!r} (known: {', '.join(_WEIGHTS)})")
    url = getattr(tv, _WEIGHTS[net]).IMAGENET1K_V1.url
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


class LPIPS(nn.Module):
    """Frozen LPIPS distance between images in [0, 1] of shape (…, H, W, C) → one value per image."""

    def __init__(self, net: str = "alex"):
        super().__init__()
        path = backbone_weights_path(net)
        if not path.is_file():
            raise ModelError(f"LPIPS needs the pretrained {net} backbone weights at {path} (the torch hub cache; "
                             f"set TORCH_HOME to point elsewhere) and they cannot be downloaded here: copy the file "
                             f"there, or train without the perceptual term with --lpips-weight 0")
        import lpips

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torchvision's "pretrained is deprecated" notices
                self.net = lpips.LPIPS(net=net, verbose=False)
        except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError) as error:
            raise ModelError(f"{path}: unusable {net} backbone weights ({type(error).__name__}: {error})") from None
        self.net.eval().requires_grad_(False)
        self.name = net

    def train(self, mode: bool = True) -> "LPIPS":
        super().train(mode)
        self.net.eval()  # always frozen (its dropout layers stay off)
        return self

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        height, width = a.shape[-3:-1]
        if min(height, width) < MIN_SIDE[self.name]:
            side = MIN_SIDE[self.name]
            raise ModelError(f"LPIPS ({self.name}) needs frames of at least {side}x{side} pixels, got "
                             f"{height}x{width}: train without the perceptual term with --lpips-weight 0")
        lead = a.shape[:-3]
        to_nchw = lambda x: x.reshape(-1, *x.shape[-3:]).permute(0, 3, 1, 2).float() * 2 - 1  # [−1, 1]
        return self.net(to_nchw(a), to_nchw(b)).reshape(lead)
