"""The page → server messages, checked before anything acts on them.

The server acts only on these JSON objects: every one has a ``type`` and exactly the keys that type
allows, each of the right JSON type and range. Episodes are named by the store's own episode ids and
frames by index, never by a path; nothing from the page is evaluated or opened. A message that fails
gets a ``MessageError`` whose text goes back to the page; the session carries on.

    {"type": "action", "name": "left", "held": ["fire", "left"]}  discrete: the latest key held (null: none) and
                                                                 all held (optional)
    {"type": "action", "buttons": ["forward"], "camera": [0, 1.5]}  minecraft: held buttons, degrees moved
    {"type": "pause"} · {"type": "resume"} · {"type": "step"} · {"type": "reset"} · {"type": "replay"}
    {"type": "start", "episode": "episodes/000003", "start": 0}
    {"type": "record", "on": true} · {"type": "record", "on": false, "format": "gif"}
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from .controls import CAMERA_LIMIT_DEG, Action, Controls

MAX_MESSAGE_CHARS = 4096
FORMATS = ("gif", "mp4")
KEYS: dict[str, frozenset[str]] = {
    "action": frozenset({"type", "name", "held", "buttons", "camera"}),
    "pause": frozenset({"type"}), "resume": frozenset({"type"}), "step": frozenset({"type"}),
    "reset": frozenset({"type"}), "replay": frozenset({"type"}),
    "start": frozenset({"type", "episode", "start"}),
    "record": frozenset({"type", "on", "format"}),
}


class MessageError(ValueError):
    """A page message the server will not act on (the text goes back to the page)."""


@dataclass(frozen=True)
class Command:
    """A checked message: its type and its checked values."""

    type: str
    action: Action | None = None
    episode: str | None = None
    start: int | None = None
    on: bool | None = None
    format: str | None = None


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MessageError(f"{what} must be an integer, got {json.dumps(value)[:40]}")
    return value


def _action(data: dict, controls: Controls) -> Action:
    if controls.scheme == "minecraft":
        if "name" in data or "held" in data:
            raise MessageError("action: this store's actions are buttons and camera, not a name")
        buttons = data.get("buttons", [])
        if not isinstance(buttons, list) or not all(isinstance(b, str) for b in buttons) or len(buttons) > 32:
            raise MessageError("action: buttons must be a list of button names")
        unknown = sorted(set(buttons) - controls.actions)
        if unknown:
            raise MessageError(f"action: unknown button(s) {', '.join(unknown)[:80]}")
        camera = data.get("camera", [0.0, 0.0])
        if (not isinstance(camera, list) or len(camera) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in camera)
                or not all(math.isfinite(v) and abs(v) <= CAMERA_LIMIT_DEG for v in camera)):
            raise MessageError(f"action: camera must be [pitch, yaw] degrees within ±{CAMERA_LIMIT_DEG:g}")
        return Action(buttons=frozenset(buttons), camera=(float(camera[0]), float(camera[1])))
    if "buttons" in data or "camera" in data:
        raise MessageError("action: this store's actions have no buttons or camera")
    name = data.get("name")
    if name is not None and (not isinstance(name, str) or name not in controls.actions):
        raise MessageError(f"action: unknown action {json.dumps(name)[:40]} (this store's: "
                           f"{', '.join(controls.names) or 'none'})")
    if "held" not in data:
        return Action(name=name)
    held = data["held"]
    if (not isinstance(held, list) or not all(isinstance(h, str) and h in controls.actions for h in held)
            or len(held) > len(controls.names)):
        raise MessageError("action: held must be a list of this store's action names")
    if name not in (held or [None]):
        raise MessageError("action: name must be one of the held actions (null when none is held)")
    return Action(name=name, held=frozenset(held))


def parse(text: str | bytes, controls: Controls) -> Command:
    """One WebSocket text frame → a checked ``Command``, or ``MessageError`` saying what is wrong."""
    if not isinstance(text, str):
        raise MessageError("messages must be JSON text")
    if len(text) > MAX_MESSAGE_CHARS:
        raise MessageError(f"message longer than {MAX_MESSAGE_CHARS} characters")
    try:
        data = json.loads(text)
    except ValueError:
        raise MessageError("message is not JSON") from None
    if not isinstance(data, dict):
        raise MessageError("message must be a JSON object")
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in KEYS:
        raise MessageError(f"unknown message type {json.dumps(kind)[:40]} (known: {', '.join(KEYS)})")
    extra = sorted(set(data) - KEYS[kind])
    if extra:
        raise MessageError(f"{kind}: unexpected key(s) {', '.join(extra)[:80]}")
    if kind == "action":
        return Command(kind, action=_action(data, controls))
    if kind == "start":
        episode = data.get("episode")
        if not isinstance(episode, str) or not 0 < len(episode) <= 256:
            raise MessageError("start: episode must be an episode id (a string)")
        start = _int(data.get("start", 0), "start: start")
        if start < 0:
            raise MessageError(f"start: start must be ≥ 0, got {start}")
        return Command(kind, episode=episode, start=start)
    if kind == "record":
        on = data.get("on")
        if not isinstance(on, bool):
            raise MessageError("record: on must be true or false")
        fmt = data.get("format", "gif")
        if fmt not in FORMATS:
            raise MessageError(f"record: format must be one of {', '.join(FORMATS)}")
        return Command(kind, on=on, format=fmt)
    return Command(kind)
