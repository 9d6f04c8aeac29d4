"""Video frames by integer position in the file, never by matching float timestamps.

A frame's index is its position in display order from the start of the file. Frame k of a
LeRobot video sits at k / fps seconds on the video's timeline (that is how LeRobot itself finds
frames), so with PyAV every decoded frame's pts is checked to round, in exact rational arithmetic,
to its counted index: a dropped or repeated frame fails the episode instead of silently shifting
every later row. Episodes late in a v3 file (which concatenates many) would otherwise cost a
decode of everything before them, so PyAV seeks to the keyframe before the episode and takes the
index of the first decoded frame from its pts; if that anchor is missing or past the episode, the
file is decoded from its start. decord (sequential only) counts frames without pts checks.
"""

from __future__ import annotations

from fractions import Fraction
from typing import IO, Generator, Iterator

import numpy as np

from ...errors import EpisodeError
from ...video import decode_video
from ..base import ReadOptions

IndexedChunks = Generator[tuple[np.ndarray, np.ndarray], None, None]  # (frame indices, frames)


class _Unanchored(Exception):
    """The seek landed where no frame index can be read; decode from the start instead."""


def _counted(handle: IO, file: str, options: ReadOptions) -> IndexedChunks:
    index = 0
    for chunk in decode_video(handle, file=file, size=options.resolution, backend=options.video_backend,
                              threads=options.decode_threads, chunk=options.frame_chunk_rows):
        yield np.arange(index, index + len(chunk)), chunk
        index += len(chunk)


def _pyav(handle: IO, file: str, first: int, fps: Fraction, seek: bool, options: ReadOptions) -> IndexedChunks:
    """Frames from index ``first`` on, counted from the file start or (``seek``) from a pts-anchored keyframe."""
    import av

    try:
        container = av.open(handle, mode="r")
    except (av.error.FFmpegError, OSError, ValueError) as error:
        raise EpisodeError(file, f"cannot open video ({error})") from None
    with container:
        if not container.streams.video:
            raise EpisodeError(file, "no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # must be set before the codec opens
        stream.codec_context.thread_count = options.decode_threads
        ticks_per_frame = 1 / (fps * stream.time_base)
        reformat = {"format": "rgb24"}
        if options.resolution is not None:
            reformat.update(height=options.resolution[0], width=options.resolution[1], interpolation="AREA")
        indices: list[int] = []
        frames: list[np.ndarray] = []
        index = None
        try:
            if seek:
                container.seek(int(first * ticks_per_frame), backward=True, any_frame=False, stream=stream)
            for frame in container.decode(stream):
                stamped = None if frame.pts is None else round(frame.pts / ticks_per_frame)
                if index is None and seek:
                    if stamped is None or stamped > first:
                        raise _Unanchored
                    index = stamped
                else:
                    index = 0 if index is None else index + 1
                if stamped is not None and stamped != index:
                    raise EpisodeError(file, f"frame {index} has the timestamp of frame {stamped} at {fps} fps "
                                             f"(dropped, repeated or shifted frames); rows cannot be matched to "
                                             f"frames by index")
                if index < first:
                    continue
                indices.append(index)
                frames.append(frame.to_ndarray(**reformat))
                if len(frames) == options.frame_chunk_rows:
                    yield np.array(indices), np.stack(frames)
                    indices, frames = [], []
        except av.error.FFmpegError as error:
            raise EpisodeError(file, f"undecodable video ({error})") from None
        if seek and (index is None or index < first):
            raise _Unanchored  # the seek decoded nothing up to the episode: let a full count decide
        if frames:
            yield np.array(indices), np.stack(frames)


def _pick(chunks: IndexedChunks, wanted: np.ndarray, file: str, rows: int) -> Iterator[np.ndarray]:
    """Frames whose index is in ``wanted`` (sorted), re-chunked to ``rows``; error if the video ends first."""
    taken, seen = 0, 0
    buffer: list[np.ndarray] = []
    buffered = 0
    try:
        for indices, frames in chunks:
            seen = int(indices[-1]) + 1
            positions = np.minimum(np.searchsorted(wanted, indices), len(wanted) - 1)
            hit = wanted[positions] == indices
            if hit.any():
                buffer.append(frames[hit])
                buffered += int(hit.sum())
                taken += int(hit.sum())
            while buffered >= rows:
                block = np.concatenate(buffer)
                yield block[:rows]
                buffer, buffered = [block[rows:]], buffered - rows
            if taken == len(wanted):
                break
    finally:
        chunks.close()  # stop decoding (and close the container) as soon as the episode is complete
    if buffered:
        yield np.concatenate(buffer)
    if taken < len(wanted):
        raise EpisodeError(file, f"video is shorter than the parquet rows: it ends at frame {seen} but row "
                                 f"{taken} needs frame {wanted[taken]} ({len(wanted) - taken} rows have no frame)")


def frames_at(handle: IO, file: str, wanted: np.ndarray, fps: float, options: ReadOptions) -> Iterator[np.ndarray]:
    """Yield the frames at file positions ``wanted`` (strictly increasing) in chunks of ``frame_chunk_rows``."""
    wanted = np.asarray(wanted, dtype=np.int64)
    if len(wanted) == 0:
        return
    rows = options.frame_chunk_rows
    if options.video_backend != "pyav":
        yield from _pick(_counted(handle, file, options), wanted, file, rows)
        return
    first, rate = int(wanted[0]), Fraction(fps)
    if first > 0:
        try:
            yield from _pick(_pyav(handle, file, first, rate, True, options), wanted, file, rows)
            return
        except _Unanchored:
            handle.seek(0)
    yield from _pick(_pyav(handle, file, first, rate, False, options), wanted, file, rows)
