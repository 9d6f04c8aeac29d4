"""A video-backed field: frames kept as short mp4 clips inside the store, found through a frame index in zarr.

Layout of field ``frames`` (``--frames-as video``; docs/FORMAT.md, "Video-backed frames"), at the field's path
``data/frames_video``::

    index           zarr (N, 3) int64: per row its clip, frame within the clip, pts (in the clip's time base)
    clip_sha256     zarr (C, 32) uint8: sha256 of each clip file
    clips/<clip:08d>.mp4

Clips never cross an episode and start with a keyframe; a keyframe follows every ``gop`` frames. An
episode's checksum covers its clip files and index rows (``episode_digest``), so ``verify`` covers both.
Clips are written (atomically) before the rows that point at them, and the manifest last: an interrupted
writer leaves clips past the published ones, which the next writer removes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any, Iterable, Iterator

import numpy as np
import zarr
from zarr.codecs import ZstdCodec

from ..errors import StoreError
from ..video.clip_reader import ClipDecoder
from ..video.yuv import yuv420_planes_shape
from .fields import FieldSpec
from .location import StoreLocation

INDEX = "index"
CLIP_SHA256 = "clip_sha256"
CLIPS = "clips"
INDEX_CHUNK_ROWS = 4096
INDEX_CHUNKS_HELD = 64  # per reader: 64 x 4096 rows x 24 bytes = 6 MiB of decoded index


@dataclass
class Clip:
    """One clip of an episode on its way into a store: the mp4 bytes and its rows' (frame, pts)."""

    data: bytes
    index: np.ndarray  # (k, 2) int64: frame within clip, pts


def clip_path(spec: FieldSpec, clip: int) -> str:
    return f"{spec.path}/{CLIPS}/{clip:08d}.mp4"


def add_clip(digest: "hashlib._Hash", clip: Clip) -> None:
    digest.update(clip.data)
    digest.update(np.ascontiguousarray(clip.index, dtype="<i8").tobytes())


def episode_digest(clips: Iterable[Clip]) -> "hashlib._Hash":
    """sha256 over each clip's file bytes followed by its (frame, pts) rows as little-endian int64."""
    digest = hashlib.sha256()
    for clip in clips:
        add_clip(digest, clip)
    return digest


def create_video_field(group: zarr.Group, spec: FieldSpec, compression_level: int) -> None:
    for name, columns, dtype in ((INDEX, 3, "int64"), (CLIP_SHA256, 32, "uint8")):
        group.create_array(f"{spec.path}/{name}", shape=(0, columns), chunks=(INDEX_CHUNK_ROWS, columns), dtype=dtype,
                           compressors=[ZstdCodec(level=compression_level)], fill_value=0, overwrite=True)


def split_clips(index: np.ndarray) -> list[tuple[int, int]]:
    """(first, end) positions in ``index`` rows of each run of one clip."""
    if not len(index):
        return []
    cuts = np.flatnonzero(np.diff(index[:, 0])) + 1
    bounds = [0, *cuts.tolist(), len(index)]
    return list(zip(bounds[:-1], bounds[1:]))


class VideoFieldWriter:
    """Appends committed episodes' clips and index rows; cuts off what an interrupted writer left."""

    def __init__(self, location: StoreLocation, group: zarr.Group, spec: FieldSpec):
        self.location, self.spec = location, spec
        self.index = group[f"{spec.path}/{INDEX}"]
        self.sha = group[f"{spec.path}/{CLIP_SHA256}"]

    def truncate(self, total: int) -> None:
        """Keep the index rows and clips of the first ``total`` rows (the published ones)."""
        clips = int(self.index[total - 1, 0]) + 1 if total else 0
        self.index.resize((total, 3))
        self.sha.resize((clips, 32))
        folder = f"{self.spec.path}/{CLIPS}"
        if self.location.exists(folder):
            for path in self.location.fs.ls(self.location.child(folder), detail=False):
                name = path.rstrip("/").rsplit("/", 1)[-1]
                if name.endswith(".mp4") and name[:-4].isdigit() and int(name[:-4]) >= clips:
                    self.location.remove(f"{folder}/{name}")

    def append(self, clips: Iterable[Clip], start: int, end: int, where: str) -> None:
        first_clip = self.sha.shape[0]
        rows, digests = [], []
        for number, clip in enumerate(clips, start=first_clip):
            self.location.write_bytes_atomic(clip_path(self.spec, number), clip.data)
            rows.append(np.column_stack([np.full(len(clip.index), number), clip.index]).astype(np.int64))
            digests.append(np.frombuffer(hashlib.sha256(clip.data).digest(), dtype=np.uint8))
        index = np.concatenate(rows) if rows else np.zeros((0, 3), np.int64)
        if len(index) != end - start:
            raise StoreError(f"{where}: field {self.spec.name} indexes {len(index)} frames, expected {end - start}")
        self.index.resize((end, 3))
        self.index[start:end] = index
        self.sha.resize((first_clip + len(digests), 32))
        if digests:
            self.sha[first_clip:] = np.stack(digests)


def read_chunk(index: zarr.Array, chunk: int) -> np.ndarray:
    rows = index.chunks[0]
    return np.asarray(index[chunk * rows:(chunk + 1) * rows])


def open_clip(location: StoreLocation, spec: FieldSpec, clip: int) -> tuple[Any, str]:
    """(local path or open file object, name for messages) of a clip."""
    name = clip_path(spec, clip)
    where = f"{location.root.rstrip('/')}/{name}"
    if location.local_path is not None:
        path = location.local_path / name
        if not path.is_file():
            raise StoreError(f"{where}: clip listed in the frame index is missing")
        return str(path), where
    try:
        return location.fs.open(location.child(name), "rb"), where
    except FileNotFoundError:
        raise StoreError(f"{where}: clip listed in the frame index is missing") from None


class VideoFrames:
    """A video-backed field read like an array: ``frames[a:b]`` / ``read(a, b, step)`` give (n, H, W, 3) uint8.

    Open one per process (DataLoader workers do): it holds open decoders.
    """

    def __init__(self, location: StoreLocation, group: zarr.Group, spec: FieldSpec):
        self.location, self.spec = location, spec
        try:
            self.index = group[f"{spec.path}/{INDEX}"]
        except KeyError:
            raise StoreError(f"{location.root}: manifest lists {spec.name!r} as video but "
                             f"{spec.path}/{INDEX} is missing") from None
        # neither holds a reference back to self (no cycle): a dropped reader closes its decoders at once
        self.decoder = ClipDecoder(partial(open_clip, location, spec))
        self.index_chunk = lru_cache(maxsize=INDEX_CHUNKS_HELD)(partial(read_chunk, self.index))
        self.shape = (self.index.shape[0], *spec.shape)
        self.dtype = np.dtype(spec.dtype)
        self.chunks = (spec.chunk_rows, *spec.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, selection: Any) -> np.ndarray:
        if isinstance(selection, (int, np.integer)):
            row = int(selection) + (len(self) if selection < 0 else 0)
            return self.read(row, row + 1)[0]
        if isinstance(selection, slice):
            start, stop, step = selection.indices(len(self))
            if step < 1:
                raise IndexError("video frames read forwards only")
            return self.read(start, max(start, stop), step)
        raise TypeError(f"video frames take an int or a slice, not {type(selection).__name__}")

    def read(self, start: int, stop: int, step: int = 1, format: str = "rgb24") -> np.ndarray:
        """Rows ``start:stop:step`` decoded: per clip, from the keyframe before its first wanted row.

        ``format`` "rgb24" gives (n, H, W, 3); "yuv420p" the codec's planes (n, H*3/2, W) for
        ``video.yuv.yuv420_to_rgb`` on the consumer's device: half the bytes, no conversion here."""
        shape = tuple(self.spec.shape) if format == "rgb24" else yuv420_planes_shape(*self.spec.shape[:2])
        if stop <= start:
            return np.zeros((0, *shape), dtype=self.dtype)
        gop = self.spec.video.gop
        lead = min(start, gop - 1)  # the first row's keyframe is at most gop - 1 rows earlier
        index = self.index_rows(start - lead, stop)
        wanted = np.arange(lead, len(index), step)
        frames = np.empty((len(wanted), *shape), dtype=self.dtype)  # decoded straight into place
        for first, end in split_clips(index[wanted]):
            rows = index[wanted[first:end]]
            keyframe = wanted[first] - int(rows[0, 1]) % gop
            self.decoder.read_into(frames[first:end], int(rows[0, 0]), rows[:, 2], int(index[keyframe, 2]), format)
        return frames

    def index_rows(self, start: int, stop: int) -> np.ndarray:
        """Index rows ``start:stop`` through a small cache of whole zarr chunks (a zarr read per window costs
        more than the window's decoding of small frames)."""
        rows = self.index.chunks[0]
        first = start // rows
        chunks = [self.index_chunk(chunk) for chunk in range(first, (stop - 1) // rows + 1)]
        block = chunks[0] if len(chunks) == 1 else np.concatenate(chunks)
        return block[start - first * rows:stop - first * rows]

    def episode_clips(self, start: int, end: int) -> Iterator[Clip]:
        """The stored clips (bytes, not decoded) of rows ``start:end``, which must be whole clips; one at a time."""
        index = np.asarray(self.index[start:end])
        for first, last in split_clips(index):
            name = clip_path(self.spec, int(index[first, 0]))
            try:
                data = self.location.read_bytes(name)
            except FileNotFoundError:
                raise StoreError(f"{self.location.root.rstrip('/')}/{name}: clip listed in the frame index is "
                                 "missing") from None
            yield Clip(data, index[first:last, 1:])


def verify_video_field(reader: Any, spec: FieldSpec) -> list[str]:
    """One line per clip that is missing or fails its checksum, per episode whose index fails its checksum."""
    where, location = reader.location.root.rstrip("/"), reader.location
    try:
        index_array = reader.group[f"{spec.path}/{INDEX}"]
        sha = reader.group[f"{spec.path}/{CLIP_SHA256}"][:]
    except KeyError:
        return [f"{where}: manifest lists {spec.name!r} as video but {spec.path}/{INDEX} or {CLIP_SHA256} is missing"]
    if index_array.shape[0] < reader.total_frames or index_array.shape[1:] != (3,):
        return [f"{where}: {spec.path}/{INDEX} is {index_array.shape}, manifest says ({reader.total_frames}, 3)"]
    problems = []
    for episode in reader.episodes:
        index = np.asarray(index_array[episode["start"]:episode["end"]])
        digest, intact = hashlib.sha256(), True
        for first, last in split_clips(index):
            rows = index[first:last]
            label = f"{where}/{clip_path(spec, int(rows[0, 0]))}: clip of episode {episode['id']} " \
                    f"(rows {episode['start'] + first}:{episode['start'] + last})"
            problem, data = _check_clip(location, spec, rows, sha)
            if problem:
                problems.append(f"{label} {problem}")
                intact = False
            else:
                add_clip(digest, Clip(data, rows[:, 1:]))
        if intact and f"sha256:{digest.hexdigest()}" != episode["checksums"].get(spec.name):
            problems.append(f"{where}/{spec.path}: clips and index of episode {episode['id']} fail the "
                            f"episode's checksum")
    return problems


def _check_clip(location: StoreLocation, spec: FieldSpec, rows: np.ndarray,
                sha: np.ndarray) -> tuple[str | None, bytes]:
    """(what is wrong with the clip of index ``rows``, or None; its bytes)."""
    number = int(rows[0, 0])
    if not np.array_equal(rows[:, 1], np.arange(len(rows))) or number >= len(sha):
        return "has inconsistent frame index rows", b""
    try:
        data = location.read_bytes(clip_path(spec, number))
    except FileNotFoundError:
        return "is missing", b""
    if hashlib.sha256(data).digest() != sha[number].tobytes():
        return "fails its checksum (corrupt or truncated)", data
    return None, data
