"""Frames (…, H, W, C) ↔ patches (…, N, p·p·C), padding H and W up to a multiple of p (or of a coarser
``pad_multiple``: Minecraft's 360x640 with 16x16 patches and ``pad_multiple=128`` becomes 384x640, the
paper's 960 patches per frame; plain multiples of 16 would give 368 rows and 920 patches).

Works on numpy arrays and torch tensors alike (only reshape/permute/pad-by-concatenation), so the
tokenizer can call it on GPU tensors. ``unpatchify`` crops the padding back off: the round trip is
lossless.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PatchGrid:
    """How an H×W image maps onto a grid of p×p patches (after bottom/right zero padding)."""

    height: int
    width: int
    patch: int
    pad_multiple: int | None = None  # pad H and W up to a multiple of this (itself a multiple of patch)

    def __post_init__(self) -> None:
        if self.pad_multiple is not None and (self.pad_multiple <= 0 or self.pad_multiple % self.patch):
            raise ValueError(f"pad_multiple {self.pad_multiple} must be a positive multiple of patch {self.patch}")

    @property
    def multiple(self) -> int:
        return self.pad_multiple or self.patch

    @property
    def padded_height(self) -> int:
        return -(-self.height // self.multiple) * self.multiple

    @property
    def padded_width(self) -> int:
        return -(-self.width // self.multiple) * self.multiple

    @property
    def rows(self) -> int:
        return self.padded_height // self.patch

    @property
    def cols(self) -> int:
        return self.padded_width // self.patch

    @property
    def num_patches(self) -> int:
        return self.rows * self.cols


def _pad(frames: Any, pad_h: int, pad_w: int) -> Any:
    """Zero-pad the H and W axes (-3, -2) at the bottom/right, numpy or torch."""
    if pad_h == 0 and pad_w == 0:
        return frames
    try:
        import torch

        if isinstance(frames, torch.Tensor):
            return torch.nn.functional.pad(frames, (0, 0, 0, pad_w, 0, pad_h))
    except ImportError:
        pass
    import numpy as np

    widths = [(0, 0)] * (frames.ndim - 3) + [(0, pad_h), (0, pad_w), (0, 0)]
    return np.pad(frames, widths)


def _permute(array: Any, order: tuple[int, ...]) -> Any:
    return array.permute(*order) if hasattr(array, "permute") else array.transpose(order)


def patchify(frames: Any, patch: int, pad_multiple: int | None = None) -> Any:
    """(…, H, W, C) → (…, rows·cols, p·p·C), patches in row-major grid order."""
    *lead, height, width, channels = frames.shape
    grid = PatchGrid(height, width, patch, pad_multiple)
    frames = _pad(frames, grid.padded_height - height, grid.padded_width - width)
    x = frames.reshape(*lead, grid.rows, patch, grid.cols, patch, channels)
    n = len(lead)
    x = _permute(x, (*range(n), n, n + 2, n + 1, n + 3, n + 4))  # (…, rows, cols, p, p, C)
    return x.reshape(*lead, grid.num_patches, patch * patch * channels)


def unpatchify(patches: Any, grid: PatchGrid) -> Any:
    """(…, rows·cols, p·p·C) → (…, H, W, C), cropping the padding of ``grid``."""
    *lead, num_patches, patch_dim = patches.shape
    p = grid.patch
    if num_patches != grid.num_patches or patch_dim % (p * p):
        raise ValueError(f"patches of shape {tuple(patches.shape)} do not fit {grid}")
    channels = patch_dim // (p * p)
    x = patches.reshape(*lead, grid.rows, grid.cols, p, p, channels)
    n = len(lead)
    x = _permute(x, (*range(n), n, n + 2, n + 1, n + 3, n + 4))  # (…, rows, p, cols, p, C)
    x = x.reshape(*lead, grid.padded_height, grid.padded_width, channels)
    return x[..., : grid.height, : grid.width, :]
