"""MinAtar episodes from a RAW folder written by ``dreamer-data collect minatar --game G``.

Store fields (row t = observation t, the action after it, what that action produced):
- ``obs_grid`` (N, 10, 10, C) uint8 in {0, 1}: MinAtar's observation, lossless; channel names in
  ``manifest.observation.grid_channels``;
- ``frames`` (N, H, W, 3) uint8: the grid drawn in ``--palette`` colours (default ``vivid``; ``cubehelix``
  is MinAtar's own display) and ``--draw-order`` (default ``objects``: breakout's ball over the bricks and
  its trail; ``minatar``: the highest channel wins, as MinAtar draws it), nearest-neighbour upscaled to
  ``--resolution`` (default 64x64), for pixel tokenizers;
- ``actions/discrete`` (N,) int64 in [0, 6): the agent's action (noop, left, up, right, down, fire);
- ``executed_actions`` (N,) int64: the action MinAtar executed, which differs where the sticky
  action (probability in the notes) repeated the previous one;
- ``rewards``, ``is_terminal`` (a time-limit cut is not a terminal), ``has_action``,
  ``is_null_action`` (noop or no action).
"""

from __future__ import annotations

import numpy as np

from ..collect.minatar_env import ACTION_NAMES
from ..collect.minatar_render import GRID, render_grids, top_channels
from ..collect.source import RawEpisodeSource, check_member, null_action_flags
from ..errors import DreamerDataError, EpisodeError
from ..store.fields import FieldSpec
from .base import DEFAULT_ROW_CHUNK_ROWS

DEFAULT_RENDER_SIZE = (64, 64)
MINATAR_FPS = 20  # nominal: MinAtar's own display shows a state for 50 ms


class MinAtarSource(RawEpisodeSource):
    kind = "minatar"
    observation_member = "obs"

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.options.resolution or DEFAULT_RENDER_SIZE)

    @property
    def grid_channels(self) -> list[str]:
        channels = self.run.get("grid_channels")
        if not channels:
            raise DreamerDataError(f"{self.src}: collect.json lists no grid_channels")
        return list(channels)

    def fields(self) -> dict[str, FieldSpec]:
        rows = DEFAULT_ROW_CHUNK_ROWS
        specs = [
            FieldSpec("frames", "uint8", (*self.size, 3), self.options.frame_chunk_rows),
            FieldSpec("obs_grid", "uint8", (GRID, GRID, len(self.grid_channels)), rows),
            FieldSpec("actions/discrete", "int64", (), rows),
            FieldSpec("executed_actions", "int64", (), rows),
            FieldSpec("rewards", "float32", (), rows),
            FieldSpec("is_terminal", "uint8", (), rows),
            FieldSpec("has_action", "uint8", (), rows),
            FieldSpec("is_null_action", "uint8", (), rows),
        ]
        return {spec.name: spec for spec in specs}

    def observation_spec(self) -> dict:
        height, width = self.size
        return {"height": height, "width": width, "channels": 3, "fps": MINATAR_FPS,
                "native_height": GRID, "native_width": GRID, "game": self.run["game"],
                "grid_channels": self.grid_channels,
                "palette": self.options.palette, "draw_order": self.options.draw_order,
                "resize": f"grid drawn in the {self.options.palette!r} palette, {self.options.draw_order!r} draw order, "
                          "nearest-neighbour",
                "fps_note": "nominal: MinAtar is turn-based"}

    def action_spec(self) -> dict:
        return {"discrete": {"kind": "categorical", "size": len(ACTION_NAMES), "names": list(ACTION_NAMES),
                             "dtype": "int64", "null_class": 0}}

    def check_rows(self, rows: dict[str, np.ndarray], file: str) -> None:
        check_member(rows, "obs", (GRID, GRID, len(self.grid_channels)), "uint8", file)
        check_member(rows, "executed_actions", (), "int64", file)
        if rows["obs"].max(initial=0) > 1:
            raise EpisodeError(file, "obs holds values other than 0 and 1")

    def store_rows(self, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {
            "frames": render_grids(rows["obs"], self.size, self.options.palette,
                                   top_channels(self.run["game"], self.grid_channels, self.options.draw_order)),
            "obs_grid": rows["obs"],
            "actions/discrete": rows["actions"],
            "executed_actions": rows["executed_actions"],
            "rewards": rows["rewards"],
            "is_terminal": rows["is_terminal"],
            "has_action": rows["has_action"],
            "is_null_action": null_action_flags(rows["actions"], rows["has_action"]),
        }
