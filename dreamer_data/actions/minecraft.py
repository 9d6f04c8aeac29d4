"""The Minecraft action space of VPT contractor data: 23 binary buttons + 121 camera classes.

The camera codec matches VPT's ``ActionTransformer`` (camera_maxval=10, camera_binsize=2,
mu-law with mu=10) exactly, including numpy's round-half-to-even.
"""

from __future__ import annotations

import numpy as np

BUTTONS: tuple[str, ...] = (
    "ESC", "back", "drop", "forward",
    *(f"hotbar.{i}" for i in range(1, 10)),
    "inventory", "jump", "left", "right", "sneak", "sprint", "swapHands",
    "attack", "use", "pickItem",
)
BUTTON_INDEX: dict[str, int] = {name: i for i, name in enumerate(BUTTONS)}
N_BUTTONS = len(BUTTONS)  # 23

KEYBOARD_TO_BUTTON: dict[str, str] = {
    "key.keyboard.escape": "ESC",
    "key.keyboard.s": "back",
    "key.keyboard.q": "drop",
    "key.keyboard.w": "forward",
    **{f"key.keyboard.{i}": f"hotbar.{i}" for i in range(1, 10)},
    "key.keyboard.e": "inventory",
    "key.keyboard.space": "jump",
    "key.keyboard.a": "left",
    "key.keyboard.d": "right",
    "key.keyboard.left.shift": "sneak",
    "key.keyboard.left.control": "sprint",
    "key.keyboard.f": "swapHands",
}
MOUSE_TO_BUTTON: dict[int, str] = {0: "attack", 1: "use", 2: "pickItem"}

CAMERA_DEGREES_PER_MOUSE_UNIT = 360.0 / 2400.0
CAMERA_MAXVAL = 10.0
CAMERA_BINSIZE = 2.0
CAMERA_MU = 10.0
CAMERA_BINS_PER_AXIS = int(2 * CAMERA_MAXVAL / CAMERA_BINSIZE) + 1  # 11
N_CAMERA_CLASSES = CAMERA_BINS_PER_AXIS**2  # 121
CAMERA_NULL_CLASS = (CAMERA_BINS_PER_AXIS // 2) * CAMERA_BINS_PER_AXIS + CAMERA_BINS_PER_AXIS // 2  # 60


def camera_to_bins(camera_deg: np.ndarray) -> np.ndarray:
    """(…, 2) pitch/yaw degrees → (…, 2) int64 bins in [0, 11): clip, mu-law, linear quantise."""
    xy = np.clip(np.asarray(camera_deg, dtype=np.float64), -CAMERA_MAXVAL, CAMERA_MAXVAL)
    xy = xy / CAMERA_MAXVAL
    xy = np.sign(xy) * (np.log(1.0 + CAMERA_MU * np.abs(xy)) / np.log(1.0 + CAMERA_MU))
    xy = xy * CAMERA_MAXVAL
    return np.round((xy + CAMERA_MAXVAL) / CAMERA_BINSIZE).astype(np.int64)


def bins_to_camera(bins: np.ndarray) -> np.ndarray:
    """(…, 2) bins → (…, 2) degrees at the bin centres (inverse mu-law)."""
    xy = np.asarray(bins, dtype=np.float64) * CAMERA_BINSIZE - CAMERA_MAXVAL
    xy = xy / CAMERA_MAXVAL
    xy = np.sign(xy) * (1.0 / CAMERA_MU) * ((1.0 + CAMERA_MU) ** np.abs(xy) - 1.0)
    return xy * CAMERA_MAXVAL


def encode_camera(camera_deg: np.ndarray) -> np.ndarray:
    """(…, 2) pitch/yaw degrees → (…,) class in [0, 121): pitch_bin·11 + yaw_bin."""
    bins = camera_to_bins(camera_deg)
    return (bins[..., 0] * CAMERA_BINS_PER_AXIS + bins[..., 1]).astype(np.int16)


def decode_camera(camera_class: np.ndarray) -> np.ndarray:
    """(…,) class → (…, 2) pitch/yaw degrees at the bin centres."""
    camera_class = np.asarray(camera_class, dtype=np.int64)
    if np.any((camera_class < 0) | (camera_class >= N_CAMERA_CLASSES)):
        raise ValueError(f"camera class outside [0, {N_CAMERA_CLASSES})")
    bins = np.stack([camera_class // CAMERA_BINS_PER_AXIS, camera_class % CAMERA_BINS_PER_AXIS], axis=-1)
    return bins_to_camera(bins)


def action_spec() -> dict:
    """The manifest's description of the Minecraft action arrays."""
    return {
        "buttons": {"kind": "binary", "size": N_BUTTONS, "names": list(BUTTONS), "dtype": "uint8"},
        "camera": {
            "kind": "categorical", "size": N_CAMERA_CLASSES, "dtype": "int16", "null_class": CAMERA_NULL_CLASS,
            "encoding": {"scheme": "mu_law", "mu": CAMERA_MU, "maxval_deg": CAMERA_MAXVAL,
                         "binsize": CAMERA_BINSIZE, "bins_per_axis": CAMERA_BINS_PER_AXIS,
                         "class": "pitch_bin * 11 + yaw_bin"},
        },
        "camera_deg": {"kind": "continuous", "size": 2, "names": ["pitch", "yaw"], "dtype": "float32",
                       "units": "degrees", "note": "lossless camera before discretisation"},
    }
