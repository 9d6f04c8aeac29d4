"""Webdataset tar shards beside the zarr arrays: fixed-length clips for streaming readers.

Each sample is one clip of ``clip_length`` consecutive frames of one episode (the episode's last
clip may be shorter; its ``.json`` says so). Members: ``<key>.<field>.npy`` with '/' in field names
written as '.', plus ``<key>.json``; a video-backed field has no member (``StreamDataset`` decodes it
from the store's clips). ``__key__`` is ``<episode id>/<start frame:08d>``. Shards hold
whole episodes, so new episodes of a resumed ingest only ever add shards.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from .fields import LATENTS
from .reader import StoreReader

SHARD_DIR = "wds"
DEFAULT_CLIP_LENGTH = 64
DEFAULT_SHARD_BYTES = 256 * 2**20


def member_name(field: str) -> str:
    return f"{field.replace('/', '.')}.npy"


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _add(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    info.mtime = 0  # deterministic shards: same store, same bytes
    tar.addfile(info, io.BytesIO(payload))


class _ShardBuilder:
    """One shard being filled in a local temp file."""

    def __init__(self, scratch: Path):
        fd, self.path = tempfile.mkstemp(suffix=".tar", dir=scratch)
        os.close(fd)
        self.tar = tarfile.open(self.path, "w", format=tarfile.USTAR_FORMAT)
        self.clips = self.frames = 0
        self.episodes: list[str] = []

    def add_clip(self, key: str, rows: dict[str, np.ndarray], meta: dict) -> None:
        for field, array in rows.items():
            _add(self.tar, f"{key}.{member_name(field)}", _npy_bytes(array))
        _add(self.tar, f"{key}.json", json.dumps(meta, sort_keys=True).encode())
        self.clips += 1
        self.frames += meta["length"]

    def size(self) -> int:
        return self.tar.fileobj.tell()

    def close(self) -> bytes:
        self.tar.close()
        return Path(self.path).read_bytes()


def export_shards(reader: StoreReader, clip_length: int = DEFAULT_CLIP_LENGTH,
                  shard_bytes: int = DEFAULT_SHARD_BYTES, progress: Callable[[int, int], None] | None = None) -> dict:
    """Write shards for every episode not yet in one; returns the manifest's ``wds`` entry."""
    entry = reader.manifest.get("wds") or {"clip_length": clip_length, "shards": []}
    if entry["clip_length"] != clip_length:
        raise ValueError(f"{reader.location.root}: shards exist with clip_length {entry['clip_length']}, "
                         f"not {clip_length}")
    covered = sum(len(shard["episodes"]) for shard in entry["shards"])
    episodes = reader.episodes[covered:]
    fields = [name for name, spec in reader.fields.items() if spec.video is None]  # video stays in the store
    # a shard's latents.npy is a copy of the latents published when it was written: record whose they are,
    # so a reader never takes them for a later checkpoint's (tokenize --overwrite does not rewrite shards)
    latents_checkpoint = (reader.manifest.get("latents") or {}).get("checkpoint_hash") if LATENTS in fields else None
    with tempfile.TemporaryDirectory(prefix="dreamer-wds-") as scratch:
        builder: _ShardBuilder | None = None

        def publish(builder: _ShardBuilder) -> None:
            payload = builder.close()
            name = f"{SHARD_DIR}/shard-{len(entry['shards']):06d}.tar"
            reader.location.write_bytes_atomic(name, payload)
            entry["shards"].append({"name": name, "clips": builder.clips, "frames": builder.frames,
                                    "bytes": len(payload), "sha256": hashlib.sha256(payload).hexdigest(),
                                    "episodes": builder.episodes, "latents": latents_checkpoint})

        for done, episode in enumerate(episodes, start=1):
            builder = builder or _ShardBuilder(Path(scratch))
            for start in range(episode["start"], episode["end"], clip_length):
                end = min(start + clip_length, episode["end"])
                rows = {field: reader.array(field)[start:end] for field in fields}
                offset = start - episode["start"]
                meta = {"episode": episode["id"], "start": offset, "length": end - start,
                        "is_first": offset == 0, "is_last": end == episode["end"]}
                builder.add_clip(f"{episode['id']}/{offset:08d}", rows, meta)
            builder.episodes.append(episode["id"])
            if builder.size() >= shard_bytes:
                publish(builder)
                builder = None
            if progress:
                progress(done, len(episodes))
        if builder is not None and builder.clips:
            publish(builder)
    return entry


def add_shards(root: str, clip_length: int = DEFAULT_CLIP_LENGTH) -> dict:
    """Shard every episode of the store at ``root`` not yet in a shard, and publish them in the manifest.

    Takes the store's writer lock; a writer that already holds it (ingest, merge) calls
    ``add_shards_locked`` instead."""
    from .location import StoreLocation

    location = StoreLocation(root)
    StoreReader(location)  # refuse a path that is not a store before the lock creates anything there
    with location.writing():
        return add_shards_locked(location, clip_length)


def add_shards_locked(location, clip_length: int = DEFAULT_CLIP_LENGTH) -> dict:
    """``add_shards`` for a caller that holds the store's writer lock."""
    from .manifest import save_manifest

    reader = StoreReader(location)
    reader.manifest["wds"] = export_shards(reader, clip_length=clip_length)
    save_manifest(reader.location, reader.manifest)
    return reader.manifest["wds"]


def verify_shards(reader: StoreReader) -> list[str]:
    entry = reader.manifest.get("wds")
    problems = []
    for shard in (entry or {}).get("shards", []):
        where = f"{reader.location.root}/{shard['name']}"
        if not reader.location.exists(shard["name"]):
            problems.append(f"{where}: shard missing")
            continue
        if hashlib.sha256(reader.location.read_bytes(shard["name"])).hexdigest() != shard["sha256"]:
            problems.append(f"{where}: fails its checksum")
    return problems
