"""Where fixed-length windows sit in a store: enumerate them, find window i, flag episode starts.

A window is ``length`` rows taken every ``frame_step`` rows; consecutive windows of an episode start
``stride`` rows apart. Windows are grouped in *runs*: consecutive windows whose first row lies in
the same episode, so a sampler can weight episodes without materialising one entry per window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DreamerDataError


@dataclass(frozen=True)
class WindowShape:
    """How many frames a window holds, how far apart they are, and how far apart windows start."""

    length: int = 16
    stride: int = 1
    frame_step: int = 1

    def __post_init__(self) -> None:
        for name in ("length", "stride", "frame_step"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise DreamerDataError(f"window {name} must be a positive integer, got {value!r}")

    @property
    def span(self) -> int:
        """Rows from a window's first frame to its last, inclusive."""
        return (self.length - 1) * self.frame_step + 1

    def count(self, rows: int) -> int:
        """Windows that fit in ``rows`` consecutive rows."""
        return max(0, (rows - self.span) // self.stride + 1)


class WindowIndex:
    """Every window of the selected episodes of a store, in store order.

    Without ``cross_episodes`` each selected episode is cut on its own; with it, maximal runs of
    adjacent selected episodes are cut as one stretch of rows and windows may span a boundary.
    """

    def __init__(self, starts: np.ndarray, ends: np.ndarray, selected: np.ndarray, shape: WindowShape,
                 cross_episodes: bool = False):
        self.shape = shape
        self.episode_starts = np.asarray(starts, dtype=np.int64)
        self.episode_ends = np.asarray(ends, dtype=np.int64)
        first_index, first_row, count, episode = [], [], [], []
        total = 0
        for first, last in self._segments(np.asarray(selected, dtype=bool), cross_episodes):
            segment_start = int(self.episode_starts[first])
            windows = shape.count(int(self.episode_ends[last - 1]) - segment_start)
            for j in range(first, last):
                lo = -(-(int(self.episode_starts[j]) - segment_start) // shape.stride)  # ceil division
                hi = min(windows, -(-(int(self.episode_ends[j]) - segment_start) // shape.stride))
                if hi > lo:
                    first_index.append(total)
                    first_row.append(segment_start + lo * shape.stride)
                    count.append(hi - lo)
                    episode.append(j)
                    total += hi - lo
        self.run_first_index = np.array(first_index, dtype=np.int64)
        self.run_first_row = np.array(first_row, dtype=np.int64)
        self.run_count = np.array(count, dtype=np.int64)
        self.run_episode = np.array(episode, dtype=np.int64)
        self.total = total

    @staticmethod
    def _segments(selected: np.ndarray, cross_episodes: bool) -> list[tuple[int, int]]:
        """(first, last-exclusive) episode indices cut as one stretch of rows."""
        chosen = np.flatnonzero(selected)
        if not cross_episodes:
            return [(int(j), int(j) + 1) for j in chosen]
        segments: list[tuple[int, int]] = []
        for j in chosen:
            if segments and segments[-1][1] == j:
                segments[-1] = (segments[-1][0], int(j) + 1)
            else:
                segments.append((int(j), int(j) + 1))
        return segments

    def __len__(self) -> int:
        return self.total

    def locate(self, index: int) -> tuple[int, int]:
        """(episode index, first row) of window ``index``; the episode is the one the window starts in."""
        if index < 0:
            index += self.total
        if not 0 <= index < self.total:
            raise IndexError(f"window {index} out of range for {self.total} windows")
        run = int(np.searchsorted(self.run_first_index, index, side="right")) - 1
        row = int(self.run_first_row[run] + (index - self.run_first_index[run]) * self.shape.stride)
        return int(self.run_episode[run]), row

    def rows(self, first_row: int) -> np.ndarray:
        """Store rows of the window starting at ``first_row``."""
        return first_row + np.arange(self.shape.length, dtype=np.int64) * self.shape.frame_step

    def is_first(self, rows: np.ndarray) -> np.ndarray:
        """True where a row begins an episode, or (inside a window) belongs to another episode than the row before."""
        episode = np.searchsorted(self.episode_ends, rows, side="right")
        flags = np.empty(len(rows), dtype=bool)
        flags[0] = rows[0] == self.episode_starts[episode[0]]
        flags[1:] = episode[1:] != episode[:-1]
        return flags
