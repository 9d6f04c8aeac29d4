"""Frames out of a store's video clips by presentation timestamp: seek to the keyframe, decode only what is asked.

One ``ClipDecoder`` per process (each DataLoader worker opens its own): it keeps a few clips open, and a
read that continues where the last one stopped (streaming, tokenize) decodes on without seeking again.
Every frame returned is the one whose pts the index names; a frame the decoder skips or repeats is an
error, never a neighbouring frame.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import IO, Any, Callable, Iterator

import numpy as np

from ..errors import StoreError
from .decode import VideoOpenError, open_pyav

MAX_OPEN_CLIPS = 4  # decoders held per process (one per clip; a window touches at most a few)


@dataclass
class _OpenClip:
    container: Any
    stream: Any
    handle: IO | None
    where: str  # the clip, for messages
    frames: Iterator[Any] | None = None  # decoded frames from the last seek on
    last_pts: int | None = None  # pts of the last frame taken from ``frames``

    def close(self) -> None:
        self.container.close()
        if self.handle is not None:
            self.handle.close()


class ClipDecoder:
    """Decodes frames of clips named by number; ``open_clip(n)`` gives (path or file object, name for errors)."""

    def __init__(self, open_clip: Callable[[int], tuple[str | IO, str]], max_open: int = MAX_OPEN_CLIPS):
        self.open_clip = open_clip
        self.max_open = max_open
        self.clips: OrderedDict[int, _OpenClip] = OrderedDict()

    def _clip(self, clip: int) -> _OpenClip:
        if clip in self.clips:
            self.clips.move_to_end(clip)
            return self.clips[clip]
        source, where = self.open_clip(clip)
        try:
            container, stream = open_pyav(source, where, threads=1)  # DataLoader workers are the parallelism
        except VideoOpenError as error:
            if not isinstance(source, str):
                source.close()
            raise StoreError(f"{where}: cannot read clip ({error.reason})") from None
        opened = _OpenClip(container, stream, None if isinstance(source, str) else source, where)
        self.clips[clip] = opened
        while len(self.clips) > self.max_open:
            self.clips.popitem(last=False)[1].close()
        return opened

    def read_into(self, out: np.ndarray, clip: int, pts: np.ndarray, keyframe_pts: int, format: str = "rgb24") -> None:
        """Frames of ``clip`` at the increasing timestamps ``pts`` into ``out`` (one row each); the first one's GOP
        starts at ``keyframe_pts``.

        ``format`` "rgb24" writes (H, W, 3) frames; "yuv420p" the decoder's own planes, (H*3/2, W), unconverted
        and copied once (PyAV's ``to_ndarray`` copies them twice)."""
        import av

        state = self._clip(clip)
        try:
            if state.frames is None or state.last_pts is None or not keyframe_pts <= state.last_pts < int(pts[0]):
                state.container.seek(int(keyframe_pts), stream=state.stream, backward=True, any_frame=False)
                state.frames, state.last_pts = state.container.decode(state.stream), None
            for row, wanted in zip(out, pts.tolist()):
                frame = _decode_to(state, wanted)
                if (frame.height, frame.width) != _frame_size(row, format):
                    raise StoreError(f"{state.where}: frame at pts {wanted} is {frame.height}x{frame.width}, the "
                                     f"manifest says {'x'.join(map(str, _frame_size(row, format)))}")
                if format == "yuv420p":
                    copy_planes(frame, row)
                else:
                    # one swscale thread: its default, a thread per CPU, costs ~10x the conversion of a small frame
                    # in hand-offs on a busy machine
                    row[...] = frame.to_ndarray(format=format, threads=1)
        except av.error.FFmpegError as error:
            state.frames = None
            raise StoreError(f"{state.where}: undecodable clip ({error})") from None
        except StoreError:
            state.frames = None
            raise

    def close(self) -> None:
        while self.clips:
            self.clips.popitem()[1].close()


def _decode_to(state: _OpenClip, wanted: int) -> Any:
    """Decode on to the frame at pts ``wanted``; anything but frames before it on the way is an error."""
    while True:
        frame = next(state.frames, None)
        if frame is None:
            raise StoreError(f"{state.where}: clip ends before the frame at pts {wanted} (truncated clip?)")
        if state.last_pts is None and frame.pts > wanted:
            raise StoreError(f"{state.where}: seeking gave pts {frame.pts}, after the frame wanted at pts {wanted} "
                             f"(damaged clip or index)")
        state.last_pts = frame.pts
        if frame.pts == wanted:
            return frame
        if frame.pts > wanted:
            raise StoreError(f"{state.where}: no frame at pts {wanted} (the decoder went on to pts {frame.pts}); "
                             f"the index does not match the clip")


def _frame_size(row: np.ndarray, format: str) -> tuple[int, int]:
    """(height, width) of the frame that fills ``row`` in ``format``."""
    return (row.shape[0] * 2 // 3, row.shape[1]) if format == "yuv420p" else (row.shape[0], row.shape[1])


def copy_planes(frame: Any, row: np.ndarray) -> None:
    """The frame's Y, U and V planes into ``row`` (H*3/2, W), laid out as PyAV's ``to_ndarray()`` lays them."""
    if frame.format.name != "yuv420p":
        frame = frame.reformat(format="yuv420p", threads=1)
    height, width = frame.height, frame.width
    flat = row.reshape(-1)
    offset = 0
    for plane, (rows, columns) in zip(frame.planes, ((height, width), (height // 2, width // 2),
                                                     (height // 2, width // 2))):
        lines = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)  # lines may be padded
        flat[offset:offset + rows * columns].reshape(rows, columns)[...] = lines[:rows, :columns]
        offset += rows * columns
