"""The block-causal transformer on (B, T, S, D): T time steps of S tokens laid out by a TokenLayout.

Layer i attends over time when (i + 1) is a multiple of ``time_every`` (every 4th layer), over space
otherwise (paper §3.3: factorised space/time attention). Spatial layers use the layout's (S, S)
read mask and 2-D RoPE; temporal layers let each token slot read its own slot at this and earlier
steps (causal, optionally windowed) with 1-D RoPE over the step index. Nothing in a step ever reads
a later step, so the stack is block-causal in time.

Learned register tokens: if the layout has a group named ``register``, the transformer owns them
(one learned vector per register slot, the same at every step) and fills them in itself.

Precision: with ``bf16`` set (``use_bf16``; the trainers set it, train/precision.py) the layers run under
bfloat16 autocast: matmuls and attention in bf16, the residual stream, norms' statistics and the output in
float32, so the heads, losses and every caller outside the stack see float32 whatever the setting.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Mapping

import torch
from torch import nn

from ..configs import TransformerConfig
from .cache import TimeCache
from .layer import Layer
from .layout import TokenLayout, time_mask
from .norms import RMSNorm
from .rope import RotaryEmbedding

REGISTER = "register"


class BlockCausalTransformer(nn.Module):
    def __init__(self, cfg: TransformerConfig, layout: TokenLayout):
        super().__init__()
        self.cfg, self.layout = cfg, layout
        if REGISTER in layout and layout.group(REGISTER).count != cfg.registers:
            raise ValueError(f"layout has {layout.group(REGISTER).count} registers, config says {cfg.registers}")
        self.time_layers = cfg.time_layers
        self.layers = nn.ModuleList(
            Layer(cfg.dim, cfg.heads, cfg.kv_heads, cfg.head_dim, cfg.hidden,
                  "time" if i in self.time_layers else "space", qk_norm=cfg.qk_norm, soft_cap=cfg.soft_cap)
            for i in range(cfg.depth))
        self.space_rope = RotaryEmbedding(cfg.head_dim, n_axes=2, base=cfg.rope_base_space)
        self.time_rope = RotaryEmbedding(cfg.head_dim, n_axes=1, base=cfg.rope_base_time)
        self.register_buffer("space_positions", layout.space_positions(), persistent=False)  # (S, 2)
        mask = layout.space_mask()
        self.register_buffer("space_mask", None if bool(mask.all()) else mask, persistent=False)  # (S, S)
        self.registers = nn.Parameter(torch.randn(cfg.registers, cfg.dim) * 0.02) if REGISTER in layout else None
        self.norm = RMSNorm(cfg.dim)
        self.bf16 = False  # run the layers under bfloat16 autocast (a runtime choice, not saved with the weights)
        self._init_weights()

    def _init_weights(self) -> None:
        """Normal(0, 0.02) linears; residual output projections scaled by 1/√(2·depth) (GPT-2)."""
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear):
                std = 0.02 / (2 * self.cfg.depth) ** 0.5 if name.endswith(("to_out", "down")) else 0.02
                nn.init.normal_(module.weight, std=std)

    def init_cache(self, window: int | None = None) -> TimeCache:
        """An empty cache of the temporal layers, keeping ``window`` steps (default: the config's window)."""
        return TimeCache(len(self.time_layers), window or self.cfg.time_window)

    def forward(self, parts: Mapping[str, torch.Tensor], cache: TimeCache | None = None,
                update_cache: bool = False, window: int | None = None) -> dict[str, torch.Tensor]:
        """{group: (B, T, count, D)} for every layout group except registers → the same groups' outputs."""
        parts = dict(parts)
        if self.registers is not None:
            b, t = next(iter(parts.values())).shape[:2]
            parts[REGISTER] = self.registers.to(next(iter(parts.values())).dtype).expand(b, t, -1, -1)
        return self.layout.unpack(self.run(self.layout.pack(parts), cache, update_cache, window))

    def run(self, x: torch.Tensor, cache: TimeCache | None = None, update_cache: bool = False,
            window: int | None = None) -> torch.Tensor:
        """The stack on packed tokens x (B, T, S, D) → (B, T, S, D), final RMSNorm applied.

        With a cache, x holds the steps that follow the cached ones; ``update_cache`` commits them, and the
        temporal layers read the cache's window. Without one, ``window`` (default: the config's) narrows the
        steps a temporal layer reads, as a cache made with ``init_cache(window)`` does."""
        b, t, s, d = x.shape
        if s != self.layout.size or d != self.cfg.dim:
            raise ValueError(f"transformer: expected (B, T, {self.layout.size}, {self.cfg.dim}), got {tuple(x.shape)}")
        space_cos, space_sin = self.space_rope(self.space_positions.to(x.device))  # (S, d_h/2)
        space_mask = self.space_mask.to(x.device) if self.space_mask is not None else None
        first = cache.steps if cache is not None else 0
        steps = torch.arange(first, first + t, device=x.device)  # absolute time index of each step
        time_cos, time_sin = self.time_rope(steps)  # (T, d_h/2)
        window = cache.window if cache is not None else (window or self.cfg.time_window)
        # only entered when on: autocast refuses device types it does not know (the meta device of shape checks)
        with torch.autocast(x.device.type, dtype=torch.bfloat16) if self.bf16 else nullcontext():
            for i, layer in enumerate(self.layers):
                if layer.axis == "space":
                    x, _ = layer(x, space_cos, space_sin, space_mask)
                    continue
                slot = self.time_layers.index(i)
                past = cache.past(slot) if cache is not None else None
                if past is None and (window is None or t <= window):
                    x, kv = layer(x, time_cos, time_sin, None, is_causal=True)
                else:
                    key_steps = torch.cat((cache.past_steps(slot, x.device), steps)) if past is not None else steps
                    x, kv = layer(x, time_cos, time_sin, time_mask(steps, key_steps, window), past)
                if cache is not None and update_cache:
                    cache.append(slot, *kv)
        if cache is not None and update_cache:
            cache.advance(t)
        return self.norm(x.float())


def use_bf16(module: nn.Module, enabled: bool) -> None:
    """Run every block-causal transformer inside ``module`` under bfloat16 autocast (or not)."""
    for part in module.modules():
        if isinstance(part, BlockCausalTransformer):
            part.bf16 = enabled
