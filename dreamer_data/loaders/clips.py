"""Windows cut from a stream of clips, the way ``WindowIndex`` cuts them from the zarr arrays.

Shards hold whole episodes with their clips in order, so a window that spans two clips is
stitched from the tail of one and the head of the next: the stream yields exactly the windows
of each episode that a ``WindowDataset`` with the same shape enumerates.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from ..errors import StoreError
from .window_index import WindowShape


class ClipStitcher:
    """Holds the not-yet-windowed rows of the current episode."""

    def __init__(self, shape: WindowShape, where: str):
        self.shape = shape
        self.where = where
        self.episode: str | None = None
        self.rows: dict[str, np.ndarray] = {}
        self.rows_start = 0  # episode frame offset of self.rows' first row
        self.next_start = 0  # episode frame offset of the next window

    def add(self, meta: dict, arrays: dict[str, np.ndarray]) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
        """Take the next clip; yield (window rows, is_first) for every window it completes."""
        lengths = {len(array) for array in arrays.values()}
        if lengths and lengths != {meta["length"]}:
            raise StoreError(f"{self.where}: clip {meta['episode']}/{meta['start']:08d} says {meta['length']} "
                             f"frames but holds {sorted(lengths)}")
        if meta["episode"] != self.episode:
            if meta["start"] != 0:
                raise StoreError(f"{self.where}: episode {meta['episode']} starts at frame {meta['start']}, "
                                 "not 0 (shards must hold whole episodes)")
            self.episode, self.rows, self.rows_start, self.next_start = meta["episode"], arrays, 0, 0
        else:
            held = len(next(iter(self.rows.values()))) if self.rows else 0
            if meta["start"] != self.rows_start + held:
                raise StoreError(f"{self.where}: episode {meta['episode']} jumps to frame {meta['start']} "
                                 f"after frame {self.rows_start + held - 1} (a clip is missing)")
            self.rows = {field: np.concatenate([self.rows[field], array]) for field, array in arrays.items()}
        yield from self._cut()

    def _cut(self) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
        shape = self.shape
        end = self.rows_start + (len(next(iter(self.rows.values()))) if self.rows else 0)
        while self.next_start + shape.span <= end:
            lo = self.next_start - self.rows_start
            window = {field: rows[lo:lo + shape.span:shape.frame_step].copy() for field, rows in self.rows.items()}
            is_first = np.zeros(shape.length, dtype=bool)
            is_first[0] = self.next_start == 0
            yield window, is_first
            self.next_start += shape.stride
        drop = min(self.next_start, end) - self.rows_start
        self.rows = {field: rows[drop:] for field, rows in self.rows.items()}
        self.rows_start += drop
