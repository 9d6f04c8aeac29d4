"""Fields and rows shared by the Minecraft sources (VPT and MineRL)."""

from __future__ import annotations

import numpy as np

from ..actions.minecraft import N_BUTTONS, action_spec, encode_camera
from ..store.fields import FieldSpec
from .base import DEFAULT_ROW_CHUNK_ROWS, ReadOptions

MINECRAFT_FPS = 20
NATIVE_HEIGHT, NATIVE_WIDTH = 360, 640


def minecraft_fields(options: ReadOptions, native: tuple[int, int]) -> dict[str, FieldSpec]:
    height, width = options.resolution or native
    rows = DEFAULT_ROW_CHUNK_ROWS
    specs = [
        FieldSpec("frames", "uint8", (height, width, 3), options.frame_chunk_rows),
        FieldSpec("actions/buttons", "uint8", (N_BUTTONS,), rows),
        FieldSpec("actions/camera", "int16", (), rows),
        FieldSpec("actions/camera_deg", "float32", (2,), rows),
        FieldSpec("rewards", "float32", (), rows),
        FieldSpec("is_terminal", "uint8", (), rows),
        FieldSpec("has_action", "uint8", (), rows),
        FieldSpec("is_null_action", "uint8", (), rows),
        FieldSpec("is_gui_open", "uint8", (), rows),
        FieldSpec("cursor_xy", "float32", (2,), rows),
    ]
    return {spec.name: spec for spec in specs}


def minecraft_observation(options: ReadOptions, native: tuple[int, int]) -> dict:
    height, width = options.resolution or native
    return {"height": height, "width": width, "channels": 3, "fps": MINECRAFT_FPS,
            "native_height": native[0], "native_width": native[1], "resize": "area, no crop"}


def minecraft_action_spec() -> dict:
    return action_spec()


def minecraft_rows(frames: np.ndarray, buttons: np.ndarray, camera_deg: np.ndarray, *, rewards: np.ndarray,
                   has_action: np.ndarray, is_gui_open: np.ndarray, cursor_xy: np.ndarray,
                   is_terminal: np.ndarray) -> dict[str, np.ndarray]:
    """One chunk of store rows; the null-action flag and camera class are derived here only."""
    is_null = (buttons.sum(axis=1) == 0) & np.all(camera_deg == 0, axis=1)
    return {
        "frames": frames,
        "actions/buttons": buttons,
        "actions/camera": encode_camera(camera_deg),
        "actions/camera_deg": camera_deg.astype(np.float32),
        "rewards": rewards.astype(np.float32),
        "is_terminal": is_terminal.astype(np.uint8),
        "has_action": has_action.astype(np.uint8),
        "is_null_action": (is_null | (has_action == 0)).astype(np.uint8),
        "is_gui_open": is_gui_open.astype(np.uint8),
        "cursor_xy": cursor_xy.astype(np.float32),
    }
