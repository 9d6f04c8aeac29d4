"""Resizing of frames that do not come from a video decoder (npy arrays, environment renders)."""

from __future__ import annotations

import numpy as np
from PIL import Image


def resize_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(n, H, W, 3) uint8 → (n, h, w, 3) uint8 with area averaging (box filter) like the decoder path."""
    height, width = size
    if frames.shape[1:3] == (height, width):
        return frames
    return np.stack([np.asarray(Image.fromarray(f).resize((width, height), Image.BOX)) for f in frames])
