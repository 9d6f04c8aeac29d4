"""Episodes saved by Crafter's own ``crafter.Recorder`` (``save_episode=True``), in our row convention.

A recorder ``.npz`` holds T + 1 entries per key: entry 0 is the reset observation, entry i > 0 the
transition of step i (the action that *led to* ``image[i]``, its reward, ``done``, ``discount``,
``achievement_<name>`` and ``ainventory_<name>`` after it). Keys missing at reset are zero-filled
by the recorder. We shift to row t = frame t, the action taken after it, and what that action
produced; the reset inventory (zero-filled there) is Crafter's initial inventory. Recordings carry
no seed, so these episodes cannot be replayed.
"""

from __future__ import annotations

import numpy as np
from crafter import constants

from ..errors import EpisodeError
from .crafter_env import ACHIEVEMENTS, INVENTORY_ITEMS, NATIVE_SIZE

RECORDER_KEYS = ("image", "action", "reward", "discount")


def is_recorder_episode(keys: list[str]) -> bool:
    return all(key in keys for key in RECORDER_KEYS)


def recorder_rows(arrays: dict[str, np.ndarray], file: str) -> tuple[dict[str, np.ndarray], dict]:
    """(rows, info) of one recorder episode, rows named as in our raw format (see raw.py)."""
    missing = [k for k in (*RECORDER_KEYS, *(f"achievement_{n}" for n in ACHIEVEMENTS),
                           *(f"ainventory_{n}" for n in INVENTORY_ITEMS)) if k not in arrays]
    if missing:
        raise EpisodeError(file, f"not a Crafter recorder episode: missing {', '.join(missing[:4])}"
                                 + (" …" if len(missing) > 4 else ""))
    images = arrays["image"]
    length = len(images)
    if images.shape[1:] != (*NATIVE_SIZE, 3) or images.dtype != np.uint8:
        raise EpisodeError(file, f"image is {images.dtype} {images.shape}, expected (T, 64, 64, 3) uint8")
    if any(len(arrays[k]) != length for k in RECORDER_KEYS) or length < 2:
        raise EpisodeError(file, "recorder arrays disagree on the number of entries (or hold no step)")
    steps = length - 1
    counts = np.stack([arrays[f"achievement_{n}"] for n in ACHIEVEMENTS], axis=1).astype(np.int64)
    inventory = np.stack([arrays[f"ainventory_{n}"] for n in INVENTORY_ITEMS], axis=1)
    inventory[0] = [constants.items[name]["initial"] for name in INVENTORY_ITEMS]
    terminal = np.zeros(length, np.uint8)
    terminal[steps - 1] = arrays["discount"][steps] == 0
    rows = {
        "frames": images,
        "actions": np.append(arrays["action"][1:], 0).astype(np.int64),
        "rewards": np.append(arrays["reward"][1:], 0).astype(np.float32),
        "is_terminal": terminal,
        "has_action": np.append(np.ones(steps), 0).astype(np.uint8),
        "achievements": np.vstack([np.diff(counts, axis=0), np.zeros((1, len(ACHIEVEMENTS)), np.int64)]).astype(
            np.uint8),
        "inventory": inventory.astype(np.uint8),
    }
    info = {"env": "crafter", "layout": "crafter-recorder", "steps": steps, "terminated": bool(terminal.any()),
            "truncated": not terminal.any(), "return": float(rows["rewards"].sum(dtype=np.float64)),
            "achievements_unlocked": [n for n, c in zip(ACHIEVEMENTS, counts[-1]) if c], "replayable": False}
    return rows, info
