"""Stream frames of a video as fixed-size RGB chunks, never the whole video at once.

PyAV is the baseline: maintained, reads fsspec file objects, and scales in the decoder's own
colour space (swscale) so a 640x360 frame never exists as RGB at full size. decord is an
optional, sometimes faster path; it has known leaks and seek bugs, so it is only ever used for a
single sequential pass.
"""

from __future__ import annotations

from typing import IO, Iterator

import numpy as np

from ..errors import EpisodeError

BACKENDS = ("pyav", "decord")


def _pyav_chunks(source: str | IO, file: str, size: tuple[int, int] | None, threads: int,
                 chunk: int) -> Iterator[np.ndarray]:
    import av

    try:
        container = av.open(source, mode="r")
    except (av.error.FFmpegError, OSError, ValueError) as error:
        raise EpisodeError(file, f"cannot open video ({error})") from None
    with container:
        if not container.streams.video:
            raise EpisodeError(file, "no video stream")
        stream = container.streams.video[0]
        if stream.codec_context is None:  # e.g. an mp4 cut off inside its moov box
            raise EpisodeError(file, "video stream has no codec parameters (truncated or corrupt file)")
        stream.thread_type = "AUTO"  # must be set before the codec opens
        stream.codec_context.thread_count = threads
        reformat = {"format": "rgb24"}
        if size is not None:
            reformat.update(height=size[0], width=size[1], interpolation="AREA")
        buffer: list[np.ndarray] = []
        try:
            for frame in container.decode(stream):
                buffer.append(frame.to_ndarray(**reformat))
                if len(buffer) == chunk:
                    yield np.stack(buffer)
                    buffer = []
        except av.error.FFmpegError as error:
            raise EpisodeError(file, f"undecodable video ({error})") from None
        if buffer:
            yield np.stack(buffer)


def _decord_chunks(source: str | IO, file: str, size: tuple[int, int] | None, threads: int,
                   chunk: int) -> Iterator[np.ndarray]:
    try:
        import decord
    except ImportError:
        raise EpisodeError(file, "decord backend requested but decord is not installed") from None
    kwargs = {"num_threads": threads}
    if size is not None:
        kwargs.update(height=size[0], width=size[1])
    try:
        reader = decord.VideoReader(source, ctx=decord.cpu(0), **kwargs)
    except (decord.DECORDError, RuntimeError) as error:
        raise EpisodeError(file, f"cannot open video ({str(error).splitlines()[0]})") from None
    try:
        for start in range(0, len(reader), chunk):
            indices = list(range(start, min(start + chunk, len(reader))))
            yield reader.get_batch(indices).asnumpy()
    except (decord.DECORDError, RuntimeError) as error:
        if size is not None and "DECORDArrayCopyFromTo" in str(error):  # its scaler cannot emit some widths
            raise EpisodeError(file, f"decord cannot resize to {size[0]}x{size[1]} (a decord limitation); use the "
                                     f"pyav backend or another resolution") from None
        raise EpisodeError(file, f"undecodable video ({str(error).splitlines()[0]})") from None
    finally:
        del reader


def decode_video(source: str | IO, *, file: str, size: tuple[int, int] | None = None,
                 backend: str = "pyav", threads: int = 1, chunk: int = 64) -> Iterator[np.ndarray]:
    """Yield (n, H, W, 3) uint8 chunks in display order, resized to ``size`` = (H, W) if given."""
    if backend == "pyav":
        return _pyav_chunks(source, file, size, threads, chunk)
    if backend == "decord":
        return _decord_chunks(source, file, size, threads, chunk)
    raise ValueError(f"unknown video backend {backend!r}; choose from {BACKENDS}")


def probe_video(source: str | IO, file: str) -> dict:
    """Stream metadata (height, width, fps, frame count if the container knows it)."""
    import av

    try:
        with av.open(source, mode="r") as container:
            stream = container.streams.video[0]
            return {
                "height": stream.codec_context.height,
                "width": stream.codec_context.width,
                "fps": float(stream.average_rate) if stream.average_rate else None,
                "frames": stream.frames or None,
            }
    except (av.error.FFmpegError, OSError, ValueError, IndexError) as error:
        raise EpisodeError(file, f"cannot open video ({error})") from None
