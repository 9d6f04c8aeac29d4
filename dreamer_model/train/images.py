"""Image grids of frames (PNG) for looking at what a model does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from dreamer_data.atomic import replacing


def save_grid(path: str | Path, rows: list[tuple[str, np.ndarray]], scale: int = 2, gap: int = 2) -> Path:
    """rows: (label, frames (n, H, W, 3) uint8) each → one PNG, a labelled row per entry (atomic write)."""
    n, height, width = rows[0][1].shape[:3]
    label_width = 8 * max(len(label) for label, _ in rows) + 8
    cell_h, cell_w = height * scale, width * scale
    canvas = Image.new("RGB", (label_width + n * (cell_w + gap), len(rows) * (cell_h + gap)), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for r, (label, frames) in enumerate(rows):
        top = r * (cell_h + gap)
        draw.text((4, top + cell_h // 2 - 5), label, fill=(0, 0, 0))
        for c, frame in enumerate(frames):
            tile = Image.fromarray(np.asarray(frame, dtype=np.uint8)).resize((cell_w, cell_h), Image.NEAREST)
            canvas.paste(tile, (label_width + c * (cell_w + gap), top))
    path = Path(path)
    with replacing(path, suffix=".png") as tmp:
        canvas.save(tmp)
    return path


def to_uint8(frames) -> np.ndarray:
    """Floats in [0, 1] (torch or numpy) → uint8."""
    array = frames.detach().float().cpu().numpy() if hasattr(frames, "detach") else np.asarray(frames)
    return (np.clip(array, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
