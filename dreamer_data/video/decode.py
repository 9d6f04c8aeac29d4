"""Stream frames of a video as fixed-size RGB chunks, never the whole video at once.

PyAV is the baseline: maintained, reads fsspec file objects, and scales in the decoder's own
colour space (swscale) so a 640x360 frame never exists as RGB at full size. decord is an
optional, sometimes faster path; it has known leaks and seek bugs, so it is only ever used for a
single sequential pass. Where decord cannot open a file (its bundled FFmpeg 4 has no AV1, LeRobot's
default codec; it cannot open an mp4 cut short) PyAV reads it, announced in one warning line per
file; ``DecodedVideo.backend`` names the decoder that did. Not the other way round: decord's codecs
are a subset of PyAV's, and decord prints the raw bytes of a file object it cannot open to stderr.
"""

from __future__ import annotations

import functools
import logging
import re
from typing import IO, Any, Callable, Generator, Iterator

import numpy as np

from ..errors import EpisodeError

BACKENDS = ("pyav", "decord")
FALLBACK = {"decord": "pyav"}  # the decoder that reads a file the requested one cannot open
log = logging.getLogger(__name__)


class VideoOpenError(EpisodeError):
    """The decoder could not open the file at all (as opposed to failing part-way): its fallback may."""


def open_pyav(source: str | IO, file: str, threads: int) -> tuple[Any, Any]:
    """(container, first video stream) with threading set before the codec opens; close the container."""
    import av

    try:
        container = av.open(source, mode="r")
    except (av.error.FFmpegError, OSError, ValueError) as error:
        raise VideoOpenError(file, f"cannot open video ({error})") from None
    if not container.streams.video:
        container.close()
        raise VideoOpenError(file, "no video stream")
    stream = container.streams.video[0]
    if stream.codec_context is None:  # e.g. an mp4 cut off inside its moov box
        container.close()
        raise VideoOpenError(file, "video stream has no codec parameters (truncated or corrupt file)")
    stream.thread_type = "AUTO"  # must be set before the codec opens
    stream.codec_context.thread_count = threads
    return container, stream


def pyav_frames(container: Any, stream: Any) -> Iterator[Any]:
    """Decoded frames in display order from the container's position on. Where a packet cannot be decoded
    (a file cut short mid-packet), the frames the decoder already holds (B-frame reordering keeps a few
    back) still come out before the error: damage costs only the frames at and after it."""
    import av

    try:
        for packet in container.demux(stream):
            yield from packet.decode()
    except av.error.FFmpegError:
        try:
            held = stream.decode(None)  # drain
        except av.error.FFmpegError:
            held = []
        yield from held
        raise


def pyav_reformat(size: tuple[int, int] | None) -> dict:
    """``VideoFrame.to_ndarray`` arguments: RGB, area-resized in the decoder's colour space, one swscale thread.

    swscale's default, a thread per CPU, made conversion 1.45x (native 360x640) to 1.6x (to 128x128) slower on
    a 2-core machine (benchmarks/results/video_frames.md); ingest's workers are the parallelism."""
    reformat: dict = {"format": "rgb24", "threads": 1}
    if size is not None:
        reformat.update(height=size[0], width=size[1], interpolation="AREA")
    return reformat


def _pyav_chunks(source: str | IO, file: str, size: tuple[int, int] | None, threads: int, chunk: int,
                 stop: int | None) -> Generator[np.ndarray, None, None]:
    import av

    container, stream = open_pyav(source, file, threads)
    reformat = pyav_reformat(size)
    with container:
        buffer: list[np.ndarray] = []
        decoded = 0
        try:
            for frame in pyav_frames(container, stream):
                buffer.append(frame.to_ndarray(**reformat))
                decoded += 1
                if len(buffer) == chunk or decoded == stop:
                    yield np.stack(buffer)
                    buffer = []
                if decoded == stop:
                    return
        except av.error.FFmpegError as error:
            after = f" after frame {decoded - 1}" if decoded else ""
            raise EpisodeError(file, f"undecodable video{after} ({error})") from None
        if buffer:
            yield np.stack(buffer)


def decord_chunks(source: str | IO, file: str, size: tuple[int, int] | None, threads: int, chunk: int,
                  stop: int | None = None) -> Generator[np.ndarray, None, None]:
    """decord, one sequential pass over frames [0, stop) (the whole file if ``stop`` is None)."""
    try:
        import decord
    except ImportError:
        raise VideoOpenError(file, "decord is not installed") from None
    kwargs = {"num_threads": threads}
    if size is not None:
        kwargs.update(height=size[0], width=size[1])
    try:
        reader = decord.VideoReader(source, ctx=decord.cpu(0), **kwargs)
    except (decord.DECORDError, RuntimeError) as error:
        raise VideoOpenError(file, f"cannot open video ({_first_line(error)})") from None
    end = len(reader) if stop is None else min(stop, len(reader))
    try:
        for start in range(0, end, chunk):
            yield reader.get_batch(list(range(start, min(start + chunk, end)))).asnumpy()
    except (decord.DECORDError, RuntimeError) as error:
        if size is not None and "DECORDArrayCopyFromTo" in str(error):  # its scaler cannot emit some widths
            raise EpisodeError(file, f"decord cannot resize to {size[0]}x{size[1]} (a decord limitation); use the "
                                     f"pyav backend or another resolution") from None
        raise EpisodeError(file, f"undecodable video ({_first_line(error)})") from None
    finally:
        del reader


def _first_line(error: BaseException) -> str:
    """decord's message without its log prefix (``[12:00:00] /path/video_reader.cc:151: ``)."""
    line = str(error).splitlines()[0] if str(error) else type(error).__name__
    return re.sub(r"^\[[\d:]+\] \S+:\d+: ", "", line)


@functools.lru_cache(maxsize=1024)  # bounded: one line per file, not per episode of a many-episode file
def _warn_once(file: str, message: str) -> None:
    log.warning(f"{file}: {message}")


class DecodedVideo:
    """Chunks from ``read(backend)``, or from its ``FALLBACK`` where the requested decoder cannot open the file.

    ``backend`` names the decoder that read the frames (final once the first chunk is out). ``close``
    stops decoding at once, which closes the file's decoder.
    """

    def __init__(self, source: str | IO, file: str, backend: str, read: Callable[[str], Generator]):
        if backend not in BACKENDS:
            raise ValueError(f"unknown video backend {backend!r}; choose from {BACKENDS}")
        self.source, self.file, self.backend, self._read = source, file, backend, read
        self._chunks = self._run()

    def __iter__(self) -> DecodedVideo:
        return self

    def __next__(self):
        return next(self._chunks)

    def close(self) -> None:
        self._chunks.close()

    def _run(self) -> Generator:
        chunks = self._read(self.backend)
        try:
            first = next(chunks, None)
        except VideoOpenError as error:
            other = FALLBACK.get(self.backend)
            if other is None:
                raise
            if hasattr(self.source, "seek"):
                self.source.seek(0)
            chunks = self._read(other)
            try:
                first = next(chunks, None)
            except VideoOpenError:
                raise error from None  # neither opens it: the requested decoder's reason
            except EpisodeError as failure:  # it opened the file, then failed: say which decoder that was
                raise EpisodeError(failure.file, f"{failure.reason} (read with {other}: {self.backend} cannot "
                                                 f"open this video)") from None
            _warn_once(self.file, f"{self.backend} failed ({error.reason}); read with {other} instead")
            self.backend = other
        if first is None:
            return
        try:
            yield first
            yield from chunks
        finally:
            chunks.close()


def decode_video(source: str | IO, *, file: str, size: tuple[int, int] | None = None, backend: str = "pyav",
                 threads: int = 1, chunk: int = 64, stop: int | None = None) -> DecodedVideo:
    """(n, H, W, 3) uint8 chunks in display order of frames [0, stop), resized to ``size`` = (H, W) if given.

    Decoding stops once frame ``stop - 1`` is out, so damage further on is never reached.
    """
    def read(name: str) -> Generator[np.ndarray, None, None]:
        chunks = _pyav_chunks if name == "pyav" else decord_chunks
        return chunks(source, file, size, threads, chunk, stop)

    return DecodedVideo(source, file, backend, read)


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
