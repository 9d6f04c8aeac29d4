"""Attention with grouped-query K/V heads (GQA), QK-norm and attention-logit soft-capping.

Two paths compute the same softmax(q·kᵀ/√d) · v:

* ``torch.nn.functional.scaled_dot_product_attention`` (SDPA): flash / memory-efficient kernels on
  GPU, GQA natively (``enable_gqa``), never materialises the L×L logits. Used whenever the
  soft-cap is off.
* the explicit path, needed for the soft-cap ``c · tanh(logits / c)`` (Gemma 2 style; SDPA has no
  hook for it): materialises the (N, H, Lq, Lk) logits.

The trade-off is chosen per preset in ``dreamer_model/configs.py``: the CPU presets (tiny, small:
≤ 100 tokens per step) keep the paper's soft-cap because the explicit path costs about the same as
SDPA there; the GPU presets (base, paper: ~1000 tokens per step) turn it off so every layer runs
on flash kernels — QK-norm already bounds the logits (|q̂·k̂|/√d ≤ √d·|g_q|·|g_k| with RMS-normed
q, k and their gains g), which is the instability the cap guards against.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .norms import RMSNorm
from .rope import apply_rope


def soft_capped_weights(q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor | None,
                        soft_cap: float) -> torch.Tensor:
    """Attention weights softmax(c·tanh(q·kᵀ/(√d·c))) (N, H, Lq, Lk); k already repeated to H heads."""
    logits = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # (N, H, Lq, Lk)
    logits = soft_cap * torch.tanh(logits / soft_cap)
    if mask is not None:
        logits = logits.masked_fill(~mask, float("-inf"))
    return logits.softmax(dim=-1)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
           soft_cap: float | None, is_causal: bool = False) -> torch.Tensor:
    """q (N, H, Lq, d), k/v (N, H_kv, Lk, d), mask (Lq, Lk) bool (True: may attend) → (N, H, Lq, d).

    ``is_causal`` (with mask None, Lq == Lk) is the lower-triangular mask, which SDPA's flash kernel
    applies without a mask tensor."""
    heads, kv_heads = q.shape[1], k.shape[1]
    if soft_cap is None:
        return nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal,
                                                          enable_gqa=heads != kv_heads)
    if is_causal:
        mask = torch.ones(q.shape[2], k.shape[2], dtype=torch.bool, device=q.device).tril()
    group = heads // kv_heads  # query heads sharing one K/V head (GQA)
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    return soft_capped_weights(q, k, mask, soft_cap) @ v


class Attention(nn.Module):
    """Multi-head self-attention over the L axis of x (N, L, D) with n_kv_heads ≤ n_heads K/V heads."""

    def __init__(self, dim: int, heads: int, kv_heads: int, head_dim: int, qk_norm: bool = True,
                 soft_cap: float | None = None):
        super().__init__()
        if heads % kv_heads:
            raise ValueError(f"attention: {heads} heads is not a multiple of {kv_heads} K/V heads")
        self.heads, self.kv_heads, self.head_dim, self.soft_cap = heads, kv_heads, head_dim, soft_cap
        self.to_q = nn.Linear(dim, heads * head_dim, bias=False)
        self.to_k = nn.Linear(dim, kv_heads * head_dim, bias=False)
        self.to_v = nn.Linear(dim, kv_heads * head_dim, bias=False)
        self.to_out = nn.Linear(heads * head_dim, dim, bias=False)
        self.q_norm = RMSNorm(head_dim) if qk_norm else nn.Identity()
        self.k_norm = RMSNorm(head_dim) if qk_norm else nn.Identity()

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor | None = None,
                past: tuple[torch.Tensor, torch.Tensor] | None = None, is_causal: bool = False
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """x (N, L, D); cos/sin (L, d/2) for x's positions; past: cached (k, v) (N, H_kv, P, d) that
        come before x. Returns the output (N, L, D) and x's own rotated (k, v) for a cache."""
        n, length, _ = x.shape
        q = self.to_q(x).view(n, length, self.heads, self.head_dim).transpose(1, 2)  # (N, H, L, d)
        k = self.to_k(x).view(n, length, self.kv_heads, self.head_dim).transpose(1, 2)  # (N, H_kv, L, d)
        v = self.to_v(x).view(n, length, self.kv_heads, self.head_dim).transpose(1, 2)  # (N, H_kv, L, d)
        q, k = apply_rope(self.q_norm(q), cos, sin), apply_rope(self.k_norm(k), cos, sin)
        new_kv = (k, v)
        if past is not None:
            k, v = torch.cat((past[0], k), dim=2), torch.cat((past[1], v), dim=2)  # (N, H_kv, P + L, d)
        out = attend(q, k, v, mask, self.soft_cap, is_causal)  # (N, H, L, d)
        return self.to_out(out.transpose(1, 2).reshape(n, length, self.heads * self.head_dim)), new_kv
