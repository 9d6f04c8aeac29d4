"""K/V cache for the temporal layers: all a new time step needs from the past.

Spatial layers only mix tokens of one step, so only temporal layers keep state. For each of them the
cache holds the rotated keys and values of the last committed steps, (B·S, H_kv, P, d). The API the
samplers use (denoise a new frame in K steps, then commit it):

    cache = transformer.init_cache()
    out = transformer(parts, cache=cache, update_cache=False)  # reads the past, leaves the cache as is
    out = transformer(parts, cache=cache, update_cache=True)   # appends these steps' K/V: committed

With a window W only the last W − 1 steps are kept (each step reads at most W steps, itself
included), so a step costs the same however long the episode; RoPE makes the kept keys' absolute
positions harmless (only differences matter).
"""

from __future__ import annotations

import torch


class TimeCache:
    def __init__(self, n_time_layers: int, window: int | None):
        self.window = window
        self.keys: list[torch.Tensor | None] = [None] * n_time_layers
        self.values: list[torch.Tensor | None] = [None] * n_time_layers
        self.steps = 0  # committed steps so far = absolute time index of the next step

    def past(self, layer: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        if self.keys[layer] is None:
            return None
        return self.keys[layer], self.values[layer]

    def past_steps(self, layer: int, device: torch.device | None = None) -> torch.Tensor:
        """Absolute time indices of the cached steps of ``layer`` (oldest first)."""
        kept = 0 if self.keys[layer] is None else self.keys[layer].shape[2]
        return torch.arange(self.steps - kept, self.steps, device=device)

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """Add the K/V (N, H_kv, T, d) of newly committed steps; keep at most window − 1 steps."""
        if self.keys[layer] is not None:
            if self.keys[layer].shape[0] != k.shape[0]:
                raise ValueError(f"time cache: holds {self.keys[layer].shape[0]} sequences, got {k.shape[0]}")
            k, v = torch.cat((self.keys[layer], k), dim=2), torch.cat((self.values[layer], v), dim=2)
        if self.window is not None:
            k, v = k[:, :, -(self.window - 1):] if self.window > 1 else k[:, :, :0], \
                v[:, :, -(self.window - 1):] if self.window > 1 else v[:, :, :0]
        self.keys[layer], self.values[layer] = k, v

    def advance(self, steps: int) -> None:
        self.steps += steps
