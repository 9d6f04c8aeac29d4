"""tokenize: encode every frame of a store with a trained tokenizer; store the latents beside the frames.

``dreamer_data`` never imports the model: it takes the tokenizer through ``FrameEncoder`` below
(``dreamer_model.tokenizer.frame_encoder`` implements it). The encoder sees each episode's frames
in order, in batches, after a ``reset()`` at the episode's start, so a causal tokenizer may carry
context from one batch to the next but never across episodes.

Writing follows the store's rules. The latents (N, S_z, D_z) float16 are written episode by episode
into a new version's array (``data/latents`` the first time, ``data/latents-v<n>-<hash>`` after: see
``store/latents.py``); after each episode a small progress file (checkpoint hash, array path,
per-episode checksums) is replaced atomically, so a rerun with the same checkpoint resumes at the
first unfinished episode. The whole run holds the store's writer lock (``StoreLocation.writing``),
like ingest and merge: a second writer is refused at once and the manifest read at the start is the
one saved at the end. The manifest lists the field (with its checksums, so ``verify`` covers it, and a
``latents`` entry with the version, path, checkpoint hash and latent shape) only once every row is
written. Replacing latents of another checkpoint (``overwrite``) never touches the published array:
readers opened before the swap keep reading it, never a mix; the swap removes older versions.
Encoding may run elsewhere (``encode``: Ray workers in ``cluster/tokenize.py``); writing is always here.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Iterable, Iterator, Protocol

import numpy as np
import zarr

from .errors import StoreError
from .store import latents as versions
from .store.fields import FieldSpec
from .store.location import StoreLocation
from .store.manifest import save_manifest
from .store.reader import StoreReader
from .store.writer import create_field_array, write_rows

LATENTS = "latents"
FRAMES = "frames"
PROGRESS_FILE = "tokenize-progress.json"
DEFAULT_BATCH_FRAMES = 256
LATENT_CHUNK_ROWS = 1024


class FrameEncoder(Protocol):
    """What tokenize needs of a tokenizer."""

    image_size: tuple[int, int]  # (H, W) of the frames it was trained on
    patch_size: int
    latent_shape: tuple[int, int]  # (S_z, D_z)
    checkpoint_hash: str  # "sha256:…" identifying the weights
    description: dict  # recorded in the manifest's latents entry (checkpoint path, preset, step, …)

    def reset(self) -> None:
        """A new episode starts: forget any context from earlier frames."""

    def encode(self, frames: np.ndarray) -> np.ndarray:
        """(n, H, W, C) uint8, consecutive frames of one episode → (n, S_z, D_z) float latents."""


# Encodes episodes (entries of the manifest) of a store; yields each with its float16 latents in row order.
# Episodes may come back in any order; the one writer (``tokenize_store``) writes them. Default: ``encode_here``.
EncodeEpisodes = Callable[[StoreReader, list[dict], int, tuple[int, ...]], Iterator[tuple[dict, Iterable[np.ndarray]]]]


@dataclass
class TokenizeReport:
    episodes: int  # episodes encoded by this run
    frames: int  # frames encoded by this run
    resumed_from: int  # episodes an earlier interrupted run had finished
    seconds: float
    already_done: bool = False
    path: str = ""  # the published latents array

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def check_fits(reader: StoreReader, encoder: FrameEncoder) -> None:
    """Refuse a tokenizer whose frame size, channels or patch size do not fit the store's frames."""
    where = reader.location.root
    if FRAMES not in reader.fields:
        raise StoreError(f"{where}: store has no frames field to tokenize")
    height, width, channels = reader.fields[FRAMES].shape
    if tuple(encoder.image_size) != (height, width):
        raise StoreError(f"{where}: frames are {height}x{width} but the tokenizer checkpoint was trained on "
                         f"{encoder.image_size[0]}x{encoder.image_size[1]} frames; train one at this resolution "
                         f"or ingest the store at --resolution {encoder.image_size[0]}x{encoder.image_size[1]}")
    if channels != 3:
        raise StoreError(f"{where}: frames have {channels} channels, the tokenizer reads RGB (3)")
    if not 1 <= encoder.patch_size <= min(height, width):
        raise StoreError(f"{where}: the tokenizer's patch size {encoder.patch_size} does not fit "
                         f"{height}x{width} frames")


def episode_latents(encoder: FrameEncoder, frames: zarr.Array, episode: dict, batch_frames: int, latent_shape: tuple[int, ...],
                    where: str) -> Iterator[np.ndarray]:
    """One episode's latents batch by batch from a reset encoder: float16, their shape and finiteness checked."""
    encoder.reset()
    for start in range(episode["start"], episode["end"], batch_frames):
        rows = frames[start:min(episode["end"], start + batch_frames)]
        latents = np.asarray(encoder.encode(rows))
        if latents.shape != (len(rows), *latent_shape):
            raise StoreError(f"{where}: the tokenizer returned latents of shape {latents.shape} for "
                             f"{len(rows)} frames, expected {(len(rows), *latent_shape)}")
        latents = latents.astype(np.float16)
        if not np.isfinite(latents).all():
            raise StoreError(f"{where}: the tokenizer produced non-finite latents in episode "
                             f"{episode['id']} (frames {start}..{start + len(rows) - 1})")
        yield latents


def encode_here(encoder: FrameEncoder) -> EncodeEpisodes:
    """Episodes encoded one after another in this process."""
    def run(reader: StoreReader, episodes: list[dict], batch_frames: int,
            latent_shape: tuple[int, ...]) -> Iterator[tuple[dict, Iterable[np.ndarray]]]:
        frames = reader.array(FRAMES)
        for episode in episodes:
            yield episode, episode_latents(encoder, frames, episode, batch_frames, latent_shape, reader.location.root)

    return run


def _digested(batches: Iterable[np.ndarray], digest: "hashlib._Hash") -> Iterator[np.ndarray]:
    for batch in batches:
        digest.update(batch.tobytes())
        yield batch


def _load_progress(location: StoreLocation) -> dict | None:
    if not location.exists(PROGRESS_FILE):
        return None
    try:
        return json.loads(location.read_bytes(PROGRESS_FILE))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None  # a torn or foreign file: start over


def _save_progress(location: StoreLocation, progress: dict) -> None:
    location.write_bytes_atomic(PROGRESS_FILE, (json.dumps(progress) + "\n").encode())


def tokenize_store(store: str, encoder: FrameEncoder, *, batch_frames: int = DEFAULT_BATCH_FRAMES,
                   overwrite: bool = False, compression_level: int = 3,
                   progress: Callable[[int, int, int], None] | None = None,
                   encode: EncodeEpisodes | None = None) -> TokenizeReport:
    """Encode every frame of ``store`` into a new latents version; resumable, published atomically.

    ``progress(episodes_done, episodes_total, frames_done)`` is called once when the work starts (under
    the writer lock; a refused run never calls it) and after each episode. ``encode`` runs the encoder
    (default: ``encoder`` itself, here; ``cluster.tokenize`` passes Ray workers); this process alone writes."""
    if batch_frames < 1:
        raise StoreError(f"batch size must be >= 1, got {batch_frames}")
    began = time.perf_counter()
    location = StoreLocation(store)
    StoreReader(location)  # refuse a path that is not a store before the lock creates anything there
    with location.writing():  # the store's one writer lock, for the whole run; refused at once if held
        return _tokenize_locked(location, encoder, began, batch_frames, overwrite, compression_level, progress,
                                encode or encode_here(encoder))


def _tokenize_locked(location: StoreLocation, encoder: FrameEncoder, began: float, batch_frames: int,
                     overwrite: bool, compression_level: int,
                     progress: Callable[[int, int, int], None] | None, encode: EncodeEpisodes) -> TokenizeReport:
    store = location.root
    reader = StoreReader(location)  # read under the lock: the manifest no other writer can change now
    manifest = reader.manifest
    check_fits(reader, encoder)
    latent_shape = tuple(int(v) for v in encoder.latent_shape)
    current = manifest.get("latents")
    replaced = versions.published(manifest)
    if replaced:
        if current.get("checkpoint_hash") == encoder.checkpoint_hash:
            return TokenizeReport(0, 0, len(reader.episodes), time.perf_counter() - began, already_done=True,
                                  path=replaced[1])
        if not overwrite:
            raise StoreError(f"{store}: already holds latents of checkpoint {current.get('checkpoint_hash')}; "
                             f"pass --overwrite to replace them with this checkpoint's "
                             f"({encoder.checkpoint_hash})")

    version = replaced[0] + 1 if replaced else 1  # the published array is never written again
    spec = FieldSpec(LATENTS, "float16", latent_shape, chunk_rows=LATENT_CHUNK_ROWS,
                     stored_at=versions.version_path(version, encoder.checkpoint_hash))
    total = reader.total_frames
    group = zarr.open_group(location.zarr_store(read_only=False), mode="r+")
    state = _load_progress(location)
    resumable = (state is not None and state.get("checkpoint_hash") == encoder.checkpoint_hash
                 and state.get("shape") == list(latent_shape) and state.get("frames") == total
                 and state.get("path", versions.FIRST_PATH) == spec.path
                 and spec.path in group and tuple(group[spec.path].shape) == (total, *latent_shape))
    if not resumable:  # an unpublished array (an interrupted run's) at this path: no reader holds it
        state = {"checkpoint_hash": encoder.checkpoint_hash, "shape": list(latent_shape), "frames": total,
                 "path": spec.path, "checksums": {}}
        create_field_array(group, spec, total, compression_level)
        _save_progress(location, state)
    array = group[spec.path]
    episodes = reader.episodes
    resumed_from = sum(1 for episode in episodes if episode["id"] in state["checksums"])
    encoded_frames = encoded_episodes = 0
    if progress:  # the lock is held and the work is known: a caller may start its progress display now
        progress(resumed_from, len(episodes), 0)

    todo = [episode for episode in episodes if episode["id"] not in state["checksums"]]
    for episode, batches in encode(reader, todo, batch_frames, latent_shape):
        digest = hashlib.sha256()
        write_rows(array, episode["start"], _digested(batches, digest), spec.chunk_rows)
        state["checksums"][episode["id"]] = f"sha256:{digest.hexdigest()}"
        _save_progress(location, state)
        encoded_episodes += 1
        encoded_frames += episode["length"]
        if progress:
            progress(resumed_from + encoded_episodes, len(episodes), encoded_frames)

    manifest["fields"][LATENTS] = spec.to_json()
    for episode in manifest["episodes"]:
        episode["checksums"][LATENTS] = state["checksums"][episode["id"]]
    manifest["latents"] = {
        "field": LATENTS, "version": version, "path": spec.path, "shape": list(latent_shape), "dtype": spec.dtype,
        "checkpoint_hash": encoder.checkpoint_hash, "image_size": list(encoder.image_size),
        "patch_size": encoder.patch_size, "tokenizer": encoder.description,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    save_manifest(location, manifest)  # the swap: readers opened from now on read this version
    location.remove(PROGRESS_FILE)
    versions.prune(location, {spec.path, *([replaced[1]] if replaced else [])})  # readers opened before: replaced
    return TokenizeReport(encoded_episodes, encoded_frames, resumed_from, time.perf_counter() - began,
                          path=spec.path)
