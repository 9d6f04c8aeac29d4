"""VPT contractor jsonl (one line per video frame) → Minecraft action arrays.

Follows VPT's own data loader: attack stuck down from the first line is ignored until a fresh
press, and a hotbar change reported only in the ``hotbar`` field sets ``hotbar.{n+1}`` on the
line where it changes. Unlike VPT's loader the camera stays lossless (float degrees).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import IO, Iterable

import numpy as np

from ..errors import EpisodeError
from .minecraft import (
    BUTTON_INDEX, CAMERA_DEGREES_PER_MOUSE_UNIT, KEYBOARD_TO_BUTTON, MOUSE_TO_BUTTON, N_BUTTONS, encode_camera,
)

ATTACK_MOUSE_BUTTON = 0


@dataclass
class MinecraftActions:
    """Per-frame action arrays of one episode, all of length N."""

    buttons: np.ndarray  # (N, 23) uint8
    camera_deg: np.ndarray  # (N, 2) float32 pitch, yaw
    is_gui_open: np.ndarray  # (N,) uint8
    cursor_xy: np.ndarray  # (N, 2) float32 mouse x/y in 640x360 GUI pixels

    @property
    def camera(self) -> np.ndarray:  # (N,) int16 class
        return encode_camera(self.camera_deg)

    @property
    def is_null_action(self) -> np.ndarray:  # (N,) uint8: no button and no camera movement
        return ((self.buttons.sum(axis=1) == 0) & np.all(self.camera_deg == 0, axis=1)).astype(np.uint8)

    def __len__(self) -> int:
        return len(self.buttons)

    def truncate(self, n: int) -> "MinecraftActions":
        return MinecraftActions(self.buttons[:n], self.camera_deg[:n], self.is_gui_open[:n], self.cursor_xy[:n])


def _field(record: dict, *path: str):
    value = record
    for key in path:
        if not isinstance(value, dict) or key not in value:
            raise KeyError(".".join(path))
        value = value[key]
    return value


def parse_vpt_jsonl(lines: Iterable[str | bytes], file: str) -> MinecraftActions:
    """Parse every line; a malformed line fails the episode with its line number."""
    buttons: list[np.ndarray] = []
    camera: list[tuple[float, float]] = []
    gui: list[int] = []
    cursor: list[tuple[float, float]] = []
    attack_is_stuck = False
    last_hotbar = 0
    for line_no, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
            mouse = _field(record, "mouse")
            mouse_buttons = list(_field(mouse, "buttons"))
            new_mouse_buttons = list(_field(mouse, "newButtons"))
            keys = _field(record, "keyboard", "keys")
            dx, dy = float(_field(mouse, "dx")), float(_field(mouse, "dy"))
            hotbar = int(record.get("hotbar", last_hotbar))
            gui_open = bool(record.get("isGuiOpen", False))
            x, y = float(mouse.get("x", 0.0)), float(mouse.get("y", 0.0))
            if not 0 <= hotbar <= 8:
                raise ValueError(f"hotbar={hotbar} outside 0..8")
        except json.JSONDecodeError as error:
            raise EpisodeError(file, f"line {line_no}: malformed JSON ({error.msg})") from None
        except (KeyError, TypeError, ValueError) as error:
            raise EpisodeError(file, f"line {line_no}: missing or invalid field {error}") from None

        if len(buttons) == 0:
            attack_is_stuck = new_mouse_buttons == [ATTACK_MOUSE_BUTTON]
        elif attack_is_stuck and ATTACK_MOUSE_BUTTON in new_mouse_buttons:
            attack_is_stuck = False
        if attack_is_stuck:
            mouse_buttons = [b for b in mouse_buttons if b != ATTACK_MOUSE_BUTTON]

        row = np.zeros(N_BUTTONS, dtype=np.uint8)
        for key in keys:
            if key in KEYBOARD_TO_BUTTON:
                row[BUTTON_INDEX[KEYBOARD_TO_BUTTON[key]]] = 1
        for mouse_button in mouse_buttons:
            if mouse_button in MOUSE_TO_BUTTON:
                row[BUTTON_INDEX[MOUSE_TO_BUTTON[mouse_button]]] = 1
        if hotbar != last_hotbar:
            row[BUTTON_INDEX[f"hotbar.{hotbar + 1}"]] = 1
        last_hotbar = hotbar

        buttons.append(row)
        camera.append((dy * CAMERA_DEGREES_PER_MOUSE_UNIT, dx * CAMERA_DEGREES_PER_MOUSE_UNIT))
        gui.append(int(gui_open))
        cursor.append((x, y))
    if not buttons:
        raise EpisodeError(file, "no action lines")
    return MinecraftActions(
        buttons=np.stack(buttons),
        camera_deg=np.asarray(camera, dtype=np.float32),
        is_gui_open=np.asarray(gui, dtype=np.uint8),
        cursor_xy=np.asarray(cursor, dtype=np.float32),
    )


def read_vpt_jsonl(handle: IO, file: str) -> MinecraftActions:
    """Parse an open (binary or text) jsonl file, streaming line by line."""
    try:
        return parse_vpt_jsonl(handle, file)
    except UnicodeDecodeError:
        raise EpisodeError(file, "not UTF-8 text") from None
