"""Object fidelity: are the game's small objects drawn, in the right cells? Scored against ground truth.

PSNR hides what a policy needs: breakout's ball is 4 of a 20x20 frame's 400 pixels, so a reconstruction
that paints it over with background loses 1 % of the MSE and all of the game. MinAtar stores hold the
lossless grid (``obs_grid`` (N, 10, 10, C)) and the palette the frames were drawn in, so every drawn
frame (a tokenizer's reconstruction, a world model's imagination) can be scored cell by cell.

The rule, defined once here:
- **truth**: the class a cell shows is the channel the store's draw order shows + 1, 0 (background) where
  none is set (``shown_levels`` in ``dreamer_data.collect.minatar_render``, the rule the frames were drawn by).
- **drawn**: the mean colour of the cell's pixels, classified as the nearest palette entry (background
  or a channel colour) in RGB.
- per channel c: recall = cells drawn c among cells showing c; precision = cells showing c among cells
  drawn c. Counts add over batches (``CellCounts``), so rates are over all cells, not means of means.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dreamer_data.collect.minatar_render import GRID, LEGACY_DRAW_ORDER, palette, shown_levels, top_channels

GRID_FIELD = "obs_grid"  # the store field holding MinAtar's lossless grid (dreamer_data/sources/minatar.py)


def cell_means(frames: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) pixels → (N, 10, 10, 3) float64 mean colour of each grid cell.

    Pixel (r, x) belongs to cell (r·10 // H, x·10 // W), the inverse of the renderer's nearest-neighbour
    upscale, so cells of unequal pixel counts (64 = 6·6 + 7·4) are handled as drawn."""
    n, height, width, channels = frames.shape
    rows = np.arange(height) * GRID // height  # (H,) cell row of each pixel row
    cols = np.arange(width) * GRID // width
    cell_of_pixel = (rows[:, None] * GRID + cols[None, :]).ravel()  # (H·W,)
    sums = np.zeros((n, GRID * GRID, channels))
    np.add.at(sums, (slice(None), cell_of_pixel), frames.reshape(n, height * width, channels).astype(np.float64))
    counts = np.bincount(cell_of_pixel, minlength=GRID * GRID)[None, :, None]
    return (sums / counts).reshape(n, GRID, GRID, channels)


def drawn_classes(frames: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) pixels (0-255) → (N, 10, 10) int: nearest entry of ``colours`` (C + 1, 3) per cell."""
    means = cell_means(frames)  # (N, 10, 10, 3)
    distances = np.linalg.norm(means[..., None, :] - colours.astype(np.float64), axis=-1)  # (N, 10, 10, C + 1)
    return distances.argmin(axis=-1)


@dataclass
class CellCounts:
    """Per-channel counts over every scored cell: true positives, cells showing c, cells drawn c."""

    channels: list[str]
    colours: np.ndarray  # (C + 1, 3) uint8: background, then each channel's colour
    on_top: tuple[int, ...] = ()  # channels drawn over all others (the store's draw order, ``top_channels``)
    hits: np.ndarray = field(init=False)
    shown: np.ndarray = field(init=False)
    drawn: np.ndarray = field(init=False)

    def __post_init__(self):
        if len(self.colours) != len(self.channels) + 1:
            raise ValueError(f"{len(self.channels)} channels need {len(self.channels) + 1} colours, "
                             f"got {len(self.colours)}")
        self.hits, self.shown, self.drawn = (np.zeros(len(self.channels), dtype=np.int64) for _ in range(3))

    @classmethod
    def for_observation(cls, observation: dict) -> "CellCounts | None":
        """From a store manifest's ``observation`` entry; None when it holds no MinAtar grid."""
        channels = observation.get("grid_channels")
        if not channels:
            return None
        on_top = top_channels(observation.get("game"), list(channels), observation.get("draw_order", LEGACY_DRAW_ORDER))
        return cls(list(channels), palette(len(channels), observation.get("palette", "cubehelix")), on_top)

    def add(self, frames: np.ndarray, grids: np.ndarray) -> None:
        """Score drawn ``frames`` (N, H, W, 3), 0-255 (uint8 or float), against their ``grids`` (N, 10, 10, C)."""
        if len(frames) != len(grids) or grids.shape[1:] != (GRID, GRID, len(self.channels)):
            raise ValueError(f"frames {frames.shape} and grids {grids.shape} do not match "
                             f"({len(self.channels)} channels)")
        truth, drawn = shown_levels(grids, self.on_top).ravel(), drawn_classes(frames, self.colours).ravel()
        for c in range(len(self.channels)):
            shows, draws = truth == c + 1, drawn == c + 1
            self.hits[c] += int(np.sum(shows & draws))
            self.shown[c] += int(shows.sum())
            self.drawn[c] += int(draws.sum())

    def rates(self) -> dict[str, dict[str, float]]:
        """{channel: {recall, precision, cells}}; a rate with nothing to count is NaN (no claim either way)."""
        def ratio(a: int, b: int) -> float:
            return float(a / b) if b else float("nan")

        return {name: {"recall": ratio(self.hits[c], self.shown[c]), "precision": ratio(self.hits[c], self.drawn[c]),
                       "cells": int(self.shown[c])}
                for c, name in enumerate(self.channels)}

    def flat(self, prefix: str = "") -> dict[str, float]:
        """``{prefix}recall/ball: …, {prefix}precision/ball: …`` for logs and JSON."""
        out = {}
        for name, rate in self.rates().items():
            out[f"{prefix}recall/{name}"] = rate["recall"]
            out[f"{prefix}precision/{name}"] = rate["precision"]
        return out
