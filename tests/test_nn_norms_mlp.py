"""RMSNorm and SwiGLU compute their equations."""

import torch

from dreamer_model.nn.mlp import SwiGLU, swiglu_hidden
from dreamer_model.nn.norms import RMSNorm


def test_rmsnorm_equation():
    norm = RMSNorm(6)
    with torch.no_grad():
        norm.weight.copy_(torch.arange(1.0, 7.0))
    x = torch.randn(4, 6) * 3 + 1
    expected = x / torch.sqrt((x ** 2).mean(-1, keepdim=True) + 1e-6) * torch.arange(1.0, 7.0)
    torch.testing.assert_close(norm(x), expected)


def test_swiglu_equation_and_width():
    mlp = SwiGLU(8, 16)
    x = torch.randn(3, 8)
    expected = mlp.down(torch.nn.functional.silu(mlp.gate(x)) * mlp.up(x))
    torch.testing.assert_close(mlp(x), expected)
    assert swiglu_hidden(128) == 352 and swiglu_hidden(96) == 256
