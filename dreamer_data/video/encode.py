"""Encode an episode's frames into short mp4 clips with a fixed keyframe interval, and index every frame.

The index holds, per frame, (clip, frame within clip, pts) with the pts read back from the written file:
readers check decoded frames against it, so a frame is identified by its timestamp, never by counting.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EpisodeError
from ..store.video_spec import CODECS, VideoSettings


def clip_file(folder: Path, clip: int) -> Path:
    return Path(folder) / f"{clip:06d}.mp4"


def read_back(path: Path, file: str) -> tuple[np.ndarray, np.ndarray]:
    """(pts in display order, indices of keyframes among them) of a written clip, from its packets alone."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = [(packet.pts, packet.is_keyframe) for packet in container.demux(stream) if packet.pts is not None]
    pts = np.array(sorted(p for p, _ in packets), dtype=np.int64)
    keys = np.searchsorted(pts, sorted(p for p, key in packets if key))
    if len(np.unique(pts)) != len(pts):
        raise EpisodeError(file, f"encoder wrote two frames with one pts into {path.name}")
    return pts, keys


class ClipEncoder:
    """Frames (n, H, W, 3) uint8 in, clips ``000000.mp4``, ``000001.mp4``, … of ``clip_frames`` frames out.

    ``finish`` returns the index (frames, 3) int64: clip, frame within clip, pts (in the clip's stream
    time base). An encoder that does not put a keyframe exactly every ``gop`` frames fails the episode:
    readers seek to the keyframe ``frame - frame % gop``.
    """

    def __init__(self, folder: Path, settings: VideoSettings, file: str):
        self.folder, self.settings, self.file = Path(folder), settings, file
        self.rate = Fraction(settings.fps).limit_denominator(1001)
        self.index: list[np.ndarray] = []
        self.clips = 0
        self.written = 0  # frames in the open clip
        self._open: tuple[Any, Any] | None = None

    def add(self, frames: np.ndarray) -> None:
        import av

        for image in frames:
            if self._open is None:
                self._start(image.shape)
            container, stream = self._open
            # an area filter for the chroma: swscale's default (bilinear) alone costs ~5 dB PSNR on the round trip;
            # one thread: the same bytes on every machine (swscale's default is a thread per CPU)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format=self.settings.pix_fmt,
                                                                                interpolation="AREA", threads=1)
            frame.pts, frame.time_base = self.written, 1 / self.rate
            for packet in stream.encode(frame):
                container.mux(packet)
            self.written += 1
            if self.written == self.settings.clip_frames:
                self._end()

    def _start(self, shape: tuple[int, ...]) -> None:
        import av

        if self.settings.codec == "av1":
            os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its whole configuration per clip otherwise
        height, width = shape[:2]
        self.folder.mkdir(parents=True, exist_ok=True)
        container = av.open(str(clip_file(self.folder, self.clips)), mode="w")
        try:
            stream = container.add_stream(CODECS[self.settings.codec], rate=self.rate)
            stream.width, stream.height, stream.pix_fmt = width, height, self.settings.pix_fmt
            stream.codec_context.time_base = 1 / self.rate
            stream.options = self.settings.encoder_options()
        except BaseException:
            container.close()
            raise
        self._open = (container, stream)

    def _end(self) -> None:
        container, stream = self._open
        for packet in stream.encode():
            container.mux(packet)
        container.close()
        self._open = None
        path = clip_file(self.folder, self.clips)
        pts, keys = read_back(path, self.file)
        gop = self.settings.gop
        if len(pts) != self.written or not np.array_equal(keys, np.arange(0, self.written, gop)):
            raise EpisodeError(self.file, f"the {self.settings.codec} encoder wrote {len(pts)} frames with keyframes "
                                          f"at {keys[:6].tolist()}… into {path.name}, expected {self.written} "
                                          f"frames with a keyframe every {gop}")
        self.index.append(np.stack([np.full(len(pts), self.clips), np.arange(len(pts)), pts], axis=1))
        self.clips += 1
        self.written = 0

    def finish(self) -> np.ndarray:
        if self._open is not None:
            self._end()
        return np.concatenate(self.index) if self.index else np.zeros((0, 3), dtype=np.int64)

    def close(self) -> None:
        """Drop an unfinished clip (the episode failed)."""
        if self._open is not None:
            self._open[0].close()
            self._open = None
