"""Frames of one episode: from a video by integer position in the file, or from a parquet image column.

A frame's index is its position in display order from the start of the file. Frame k of a
LeRobot video sits at k / fps seconds on the video's timeline (that is how LeRobot itself finds
frames), so with PyAV every decoded frame's pts is checked to round, in exact rational arithmetic,
to its counted index: a dropped or repeated frame fails the episode instead of silently shifting
every later row. Episodes late in a v3 file (which concatenates many) would otherwise cost a
decode of everything before them, so PyAV seeks to the keyframe before the episode and takes the
index of the first decoded frame from its pts; if that anchor is missing or past the episode, the
file is decoded from its start. decord (sequential only) counts frames without pts checks.

Decoding stops at the episode's last frame, so damage later in a shared v3 file (a truncated
download) costs only the episodes whose frames it holds. A file decord cannot open (AV1, a cut-off
mp4) is read with PyAV (``DecodedVideo``).

Image-in-parquet datasets (feature dtype ``image``) hold each frame in the data rows as a struct
``{bytes, path}`` of PNG or JPEG bytes; those are decoded with PIL and area-resized like the frames
of other non-video sources.
"""

from __future__ import annotations

import io
from fractions import Fraction
from typing import IO, Generator

import numpy as np
import pyarrow as pa
from PIL import Image

from ...errors import EpisodeError
from ...imageops import resize_frames
from ...video.decode import DecodedVideo, decord_chunks, open_pyav, pyav_frames, pyav_reformat
from ..base import ReadOptions

IndexedChunks = Generator[tuple[np.ndarray, np.ndarray], None, None]  # (frame indices, frames)
IMAGE_DECODER = "pil"


class _Unanchored(Exception):
    """The seek landed where no frame index can be read; decode from the start instead."""


def _counted(chunks: Generator[np.ndarray, None, None]) -> IndexedChunks:
    index = 0
    try:
        for chunk in chunks:
            yield np.arange(index, index + len(chunk)), chunk
            index += len(chunk)
    finally:
        chunks.close()


def _pyav(handle: IO, file: str, wanted: np.ndarray, fps: Fraction, seek: bool, options: ReadOptions) -> IndexedChunks:
    """Frames ``wanted``, counted from the file start or (``seek``) from a pts-anchored keyframe; stops at the last."""
    import av

    first, last, needed = int(wanted[0]), int(wanted[-1]), set(wanted.tolist())
    container, stream = open_pyav(handle, file, options.decode_threads)
    with container:
        ticks_per_frame = 1 / (fps * stream.time_base)
        reformat = pyav_reformat(options.resolution)
        indices: list[int] = []
        frames: list[np.ndarray] = []
        index = None
        try:
            if seek:
                container.seek(int(first * ticks_per_frame), backward=True, any_frame=False, stream=stream)
            for frame in pyav_frames(container, stream):
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
                if index in needed:
                    indices.append(index)
                    frames.append(frame.to_ndarray(**reformat))
                    if len(frames) == options.frame_chunk_rows:
                        yield np.array(indices), np.stack(frames)
                        indices, frames = [], []
                if index >= last:
                    break
        except av.error.FFmpegError as error:
            after = "" if index is None else f" after frame {index}"
            raise EpisodeError(file, f"undecodable video{after} ({error})") from None
        if seek and (index is None or index < first):
            raise _Unanchored  # the seek decoded nothing up to the episode: let a full count decide
        if frames:
            yield np.array(indices), np.stack(frames)
        if index is None or index < last:
            raise _short_video(file, 0 if index is None else index + 1, wanted)


def _pyav_anchored(handle: IO, file: str, wanted: np.ndarray, fps: Fraction, options: ReadOptions) -> IndexedChunks:
    if wanted[0] > 0:
        try:
            yield from _pyav(handle, file, wanted, fps, True, options)
            return
        except _Unanchored:  # raised before any frame is out
            handle.seek(0)
    yield from _pyav(handle, file, wanted, fps, False, options)


def _pick(chunks: IndexedChunks, wanted: np.ndarray, file: str, rows: int) -> Generator[np.ndarray, None, None]:
    """Frames whose index is in ``wanted`` (sorted), re-chunked to ``rows``; error if the video ends first."""
    taken, seen = 0, 0
    buffer: list[np.ndarray] = []
    buffered = 0
    try:
        for indices, frames in chunks if len(wanted) else ():  # no rows: open nothing
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
        raise _short_video(file, seen, wanted)


def _short_video(file: str, end: int, wanted: np.ndarray) -> EpisodeError:
    """The video has frames [0, end) only; ``wanted`` needs more."""
    row = int(np.searchsorted(wanted, end))
    return EpisodeError(file, f"video is shorter than the parquet rows: it ends at frame {end} but row {row} needs "
                              f"frame {wanted[row]} ({len(wanted) - row} rows have no frame)")


def frames_at(handle: IO, file: str, wanted: np.ndarray, fps: float, options: ReadOptions) -> DecodedVideo:
    """The frames at file positions ``wanted`` (strictly increasing) in chunks of ``frame_chunk_rows``.

    Iterate it, then read ``.backend`` for the decoder that read them.
    """
    wanted = np.asarray(wanted, dtype=np.int64)
    rows = options.frame_chunk_rows

    def read(backend: str) -> Generator[np.ndarray, None, None]:
        if backend == "pyav":
            return _pick(_pyav_anchored(handle, file, wanted, Fraction(fps), options), wanted, file, rows)
        stop = int(wanted[-1]) + 1 if len(wanted) else 0
        chunks = decord_chunks(handle, file, options.resolution, options.decode_threads, rows, stop)
        return _pick(_counted(chunks), wanted, file, rows)

    return DecodedVideo(handle, file, options.video_backend, read)


def image_frames(column: pa.ChunkedArray, key: str, file: str,
                 options: ReadOptions) -> Generator[np.ndarray, None, None]:
    """(n, H, W, 3) uint8 chunks of an image column's rows (struct of PNG/JPEG ``bytes`` and ``path``)."""
    column = column.combine_chunks()
    if not pa.types.is_struct(column.type) or column.type.get_field_index("bytes") < 0:
        raise EpisodeError(file, f"column {key!r} has type {column.type}, expected an image struct {{bytes, path}}")
    data = column.field("bytes").to_pylist()
    paths = column.field("path").to_pylist() if column.type.get_field_index("path") >= 0 else [None] * len(data)
    valid = column.is_valid().to_numpy(zero_copy_only=False)
    rows = options.frame_chunk_rows
    for start in range(0, len(data), rows):
        frames = []
        for row in range(start, min(start + rows, len(data))):
            if not valid[row] or data[row] is None:
                where = f" (only a path, {paths[row]!r}: images must be embedded)" if valid[row] and paths[row] else ""
                raise EpisodeError(file, f"column {key!r} row {row} has no image bytes{where}")
            try:
                with Image.open(io.BytesIO(data[row])) as image:
                    frame = np.asarray(image.convert("RGB"))
            except (OSError, ValueError, Image.DecompressionBombError) as error:
                raise EpisodeError(file, f"column {key!r} row {row} is not a readable image ({error})") from None
            frames.append(frame if options.resolution is None else resize_frames(frame[None], options.resolution)[0])
        if len({f.shape for f in frames}) > 1:
            raise EpisodeError(file, f"column {key!r} rows {start}..{start + len(frames) - 1} hold images of "
                                     f"different sizes")
        yield np.stack(frames)
