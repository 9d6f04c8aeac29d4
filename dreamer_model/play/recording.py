"""Recording a play session: the frames shown, encoded in memory to a GIF (Pillow) or an mp4 (H.264, PyAV).

The page downloads the bytes; the server writes nothing to disk unless ``--out DIR`` was given, and then
only inside DIR, atomically (temp + rename). While replaying, the recording shows the imagined frames
beside the real ones, as ``dreamer-train rollout`` does (``rollout.compose``).
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np

from dreamer_data.atomic import write_bytes_atomic

from ..rollout import compose

MAX_FRAMES = 3000  # frames kept per recording (2.5 minutes at 20 frames/s); later frames are not recorded


class Recorder:
    def __init__(self) -> None:
        self.frames: list[tuple[np.ndarray, np.ndarray | None]] = []

    @property
    def full(self) -> bool:
        return len(self.frames) >= MAX_FRAMES

    def add(self, image: np.ndarray, real: np.ndarray | None) -> None:
        if not self.full:
            self.frames.append((image, real))

    def panels(self) -> np.ndarray:
        """(T, H', W', 3) uint8: the imagined column, and the real one when any recorded frame has it."""
        imagined = np.stack([image for image, _ in self.frames])
        columns = [("imagined", imagined)]
        if any(real is not None for _, real in self.frames):
            columns.append(("real", np.stack([real if real is not None else np.zeros_like(image)
                                              for image, real in self.frames])))
        return compose(columns)


def encode_video(frames: np.ndarray, fmt: str, fps: float) -> bytes:
    """(T, H, W, 3) uint8 → the bytes of a ``gif`` or ``mp4`` file."""
    buffer = io.BytesIO()
    if fmt == "gif":
        from PIL import Image

        images = [Image.fromarray(frame) for frame in frames]
        images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / fps),
                       loop=0)
    else:
        import av

        with av.open(buffer, mode="w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=max(1, round(fps)))
            stream.height, stream.width = frames.shape[1:3]
            stream.pix_fmt = "yuv420p"
            for frame in frames:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            container.mux(stream.encode())
    return buffer.getvalue()


def save_recording(out: str | Path, data: bytes, fmt: str) -> Path:
    """``data`` as ``out/play-<time>.<fmt>``, written atomically."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"play-{time.strftime('%Y%m%d-%H%M%S')}-{time.monotonic_ns() % 10 ** 6:06d}.{fmt}"
    return write_bytes_atomic(path, data, durable=False)
