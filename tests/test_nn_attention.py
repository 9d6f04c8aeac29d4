"""Attention: GQA equals full multi-head attention, the soft-capped path equals SDPA, masks hold."""

import math

import torch
from torch import nn

from dreamer_model.nn.attention import Attention, attend, soft_capped_weights
from dreamer_model.nn.rope import RotaryEmbedding

torch.manual_seed(0)


def no_rotation(length: int, head_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.ones(length, head_dim // 2), torch.zeros(length, head_dim // 2)


def test_mha_matches_torch_multihead_attention():
    dim, heads, length = 32, 4, 7
    ours = Attention(dim, heads, heads, dim // heads, qk_norm=False, soft_cap=None)
    reference = nn.MultiheadAttention(dim, heads, bias=False, batch_first=True)
    with torch.no_grad():
        reference.in_proj_weight.copy_(torch.cat([ours.to_q.weight, ours.to_k.weight, ours.to_v.weight]))
        reference.out_proj.weight.copy_(ours.to_out.weight)
    x = torch.randn(3, length, dim)
    expected, _ = reference(x, x, x, need_weights=False)
    got, _ = ours(x, *no_rotation(length, dim // heads))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_gqa_equals_mha_with_repeated_kv_heads():
    """GQA with 2 K/V heads for 6 query heads is MHA whose K/V weights repeat each group's head."""
    dim, heads, kv_heads, head_dim, length = 48, 6, 2, 8, 5
    rope = RotaryEmbedding(head_dim)
    cos, sin = rope(torch.arange(length))
    for soft_cap in (None, 30.0):
        gqa = Attention(dim, heads, kv_heads, head_dim, qk_norm=True, soft_cap=soft_cap)
        mha = Attention(dim, heads, heads, head_dim, qk_norm=True, soft_cap=soft_cap)
        with torch.no_grad():
            mha.to_q.weight.copy_(gqa.to_q.weight)
            mha.to_out.weight.copy_(gqa.to_out.weight)
            for name in ("to_k", "to_v"):
                w = getattr(gqa, name).weight.view(kv_heads, head_dim, dim)
                getattr(mha, name).weight.copy_(w.repeat_interleave(heads // kv_heads, dim=0).reshape(-1, dim))
            mha.q_norm.weight.copy_(gqa.q_norm.weight)
            mha.k_norm.weight.copy_(gqa.k_norm.weight)
        x = torch.randn(2, length, dim)
        mask = torch.rand(length, length) < 0.7
        mask.fill_diagonal_(True)
        torch.testing.assert_close(gqa(x, cos, sin, mask)[0], mha(x, cos, sin, mask)[0], atol=1e-5, rtol=1e-5)


def test_soft_cap_path_equals_sdpa_when_cap_is_far_away():
    q, k, v = torch.randn(2, 4, 6, 8), torch.randn(2, 2, 9, 8), torch.randn(2, 2, 9, 8)
    mask = torch.rand(6, 9) < 0.6
    mask[:, 0] = True
    sdpa = attend(q, k, v, mask, soft_cap=None)
    capped = attend(q, k, v, mask, soft_cap=1e6)  # c·tanh(x/c) ≈ x for |x| ≪ c
    torch.testing.assert_close(capped, sdpa, atol=1e-5, rtol=1e-5)
    causal_sdpa = attend(q[:, :, :6], k[:, :, :6], v[:, :, :6], None, None, is_causal=True)
    causal_capped = attend(q[:, :, :6], k[:, :, :6], v[:, :, :6], None, 1e6, is_causal=True)
    torch.testing.assert_close(causal_capped, causal_sdpa, atol=1e-5, rtol=1e-5)


def test_soft_cap_bounds_the_logits():
    """With cap c every logit lies in (−c, c), so within a row weights differ by at most e^{2c}."""
    q, k = torch.randn(1, 2, 5, 16) * 50, torch.randn(1, 2, 7, 16) * 50  # raw logits in the hundreds
    for cap in (1.0, 3.0):
        weights = soft_capped_weights(q, k, None, cap)
        ratio = weights.max(dim=-1).values / weights.min(dim=-1).values
        assert float(ratio.max()) <= math.exp(2 * cap) * (1 + 1e-4)
    uncapped = (q @ k.transpose(-1, -2) / 4).softmax(-1)
    assert float((uncapped.max(-1).values / uncapped.min(-1).values).max()) > math.exp(6)


def test_masked_keys_get_no_weight():
    q, k = torch.randn(1, 1, 4, 8), torch.randn(1, 1, 4, 8)
    mask = torch.tensor([[1, 0, 1, 0]] * 4, dtype=torch.bool)
    weights = soft_capped_weights(q, k, mask, 50.0)
    assert torch.all(weights[..., ~mask[0]] == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(1, 1, 4))
