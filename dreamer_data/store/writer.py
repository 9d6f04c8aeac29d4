"""The committer: appends staged episodes to the store's arrays, then publishes them in the manifest.

Crash safety comes from ordering: array data is written first (zarr's local store writes every
chunk through temp file + rename), ``meta/episode_ends`` and ``manifest.json`` last. Rows past the
manifest's last episode end are invisible and are cut off when the store is reopened, so a rerun
resumes from exactly what the manifest says.
"""

from __future__ import annotations

import json
import time
from typing import Any, Iterator, Protocol

import numpy as np
import zarr
from zarr.codecs import ZstdCodec

from ..errors import StoreError
from .fields import FieldSpec
from .location import STORE_ATTRIBUTE, StoreLocation, naming_write_errors
from .manifest import MANIFEST_FILE, load_manifest, manifest_fields, save_manifest
from .video_field import Clip, VideoFieldWriter, create_video_field

EPISODE_ENDS = "meta/episode_ends"
# Manifest keys that must match for a rerun to append to an existing store.
COMPATIBILITY_KEYS = ("observation", "actions", "fields")


def first_difference(old: Any, new: Any, where: str = "") -> tuple[str, str, str] | None:
    """The first path at which two JSON values differ, with short renderings of both sides."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [*old, *(key for key in new if key not in old)]:
            path = f"{where}.{key}" if where else str(key)
            if key not in new:
                return path, _short(old[key]), "absent"
            if key not in old:
                return path, "absent", _short(new[key])
            found = first_difference(old[key], new[key], path)
            if found:
                return found
        return None
    return None if old == new else (where, _short(old), _short(new))


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def create_field_array(group: zarr.Group, spec: FieldSpec, rows: int, compression_level: int) -> zarr.Array:
    return group.create_array(
        spec.path, shape=(rows, *spec.shape), chunks=(spec.chunk_rows, *spec.shape), dtype=spec.dtype,
        compressors=[ZstdCodec(level=compression_level)], fill_value=0, overwrite=True,
    )


class EpisodeRows(Protocol):
    """What commit needs of an episode: its info (id, source_file, checksums, notes), rows per field."""

    info: dict
    length: int

    def chunks(self, name: str) -> Iterator[np.ndarray]: ...

    def clips(self, name: str) -> Iterator[Clip]: ...  # video fields (store/video_field.py)

    def remove(self) -> None: ...


def write_rows(array: zarr.Array, start: int, chunks: Iterator[np.ndarray], chunk_rows: int) -> int:
    """Write row chunks from ``start`` in writes aligned to zarr chunks (each chunk compressed once)."""
    buffer: list[np.ndarray] = []
    buffered = 0
    offset = start
    for chunk in chunks:
        buffer.append(chunk)
        buffered += len(chunk)
        aligned_end = (offset + buffered) // chunk_rows * chunk_rows
        if aligned_end > offset:
            block = np.concatenate(buffer)
            array[offset:aligned_end] = block[: aligned_end - offset]
            rest = block[aligned_end - offset:]
            buffer, buffered, offset = [rest], len(rest), aligned_end
    if buffered:
        array[offset:offset + buffered] = np.concatenate(buffer)
        offset += buffered
    return offset


class StoreWriter:
    """Single-process writer of one store; reopening an existing store resumes it."""

    def __init__(self, location: StoreLocation, template: dict[str, Any], compression_level: int = 3,
                 flush_interval_s: float = 5.0):
        self.location = location
        self.compression_level = compression_level
        self.flush_interval_s = flush_interval_s
        self.fields = manifest_fields(template)
        self.pending: list[EpisodeRows] = []
        self.last_flush = time.monotonic()
        if not location.exists(MANIFEST_FILE):
            location.require_new_or_ours()  # before the lock: a refused run creates nothing in a user's folder
        self._lock = location.lock_for_writing()  # held until close(): one writer per store
        try:
            with naming_write_errors(location.root):
                if location.exists(MANIFEST_FILE):
                    self.manifest = load_manifest(location)
                    self._check_compatible(template)
                    self.manifest["part"] = template.get("part")  # a rerun may raise --limit to grow the store
                    self.group = zarr.open_group(location.zarr_store(read_only=False), mode="r+")
                    self._truncate_to_manifest()
                else:
                    location.require_new_or_ours()  # again under the lock: what we resume is ours
                    self.manifest = template
                    self._create()
        except BaseException:  # a refused or broken open lets the next writer in at once
            if self._lock is not None:
                self._lock.release()
            raise
        self.arrays = {name: self.group[spec.path] for name, spec in self.fields.items() if spec.video is None}
        self.videos = {name: VideoFieldWriter(location, self.group, spec)
                       for name, spec in self.fields.items() if spec.video is not None}
        self.committed_ids = {episode["id"] for episode in self.manifest["episodes"]}
        self.total = self.manifest["episodes"][-1]["end"] if self.manifest["episodes"] else 0

    def _create(self) -> None:
        """Create the group, its empty arrays, then the manifest: a kill at any instant leaves a rerun
        something ``require_new_or_ours`` recognises (the group's ``zarr.json`` is written first, with
        our attribute, in one atomic write; arrays have no chunks until the manifest exists)."""
        for folder in ("data", "meta"):  # empty arrays of an interrupted creation (possibly other fields)
            self.location.remove(folder, recursive=True)
        attributes = {"format_version": self.manifest["format_version"], "manifest": MANIFEST_FILE}
        self.group = zarr.open_group(self.location.zarr_store(read_only=False), mode="a",
                                     attributes={STORE_ATTRIBUTE: attributes})
        if self.group.attrs.get(STORE_ATTRIBUTE) != attributes:  # a zarr.json left by an older writer
            self.group.attrs[STORE_ATTRIBUTE] = attributes
        for spec in self.fields.values():
            if spec.video is None:
                create_field_array(self.group, spec, 0, self.compression_level)
            else:
                create_video_field(self.group, spec, self.compression_level)
        self.group.create_array(EPISODE_ENDS, shape=(0,), chunks=(65536,), dtype="int64", overwrite=True)
        save_manifest(self.location, self.manifest)

    def _check_compatible(self, template: dict) -> None:
        """One short line naming the store and the first setting that differs (never a dump of both)."""
        if self.manifest.get("latents") and "latents" not in template["fields"]:
            raise StoreError(f"{self.location.root}: the store is tokenized (it holds latents), so no episodes can "
                             f"be added to it; write them with the store's others to a new --out, then "
                             f"tokenize that")

        def view(manifest: dict) -> dict:
            source = manifest.get("source", {})
            return {**{key: manifest.get(key) for key in COMPATIBILITY_KEYS},
                    "source kind": source.get("kind"), "source settings": source.get("settings"),
                    "part": {k: v for k, v in (manifest.get("part") or {}).items() if k != "limit"}}

        existing, wanted = view(self.manifest), view(template)
        for key in existing:
            difference = first_difference(existing[key], wanted[key])
            if difference is not None:
                where, old, new = difference
                raise StoreError(f"{self.location.root}: existing store has a different {key}"
                                 f"{f' ({where})' if where else ''}: {old} there, {new} in this run; "
                                 f"write to a new --out, or rerun with the store's settings")

    def _truncate_to_manifest(self) -> None:
        """Drop rows an interrupted run wrote but never published."""
        total = self.manifest["totals"]["frames"]
        for name, spec in self.fields.items():
            if spec.video is not None:
                VideoFieldWriter(self.location, self.group, spec).truncate(total)
                continue
            array = self.group[spec.path]
            if array.shape[0] != total:
                array.resize((total, *spec.shape))

    def commit(self, staged: "EpisodeRows") -> None:
        """Append one staged episode's rows; it becomes visible at the next flush."""
        with naming_write_errors(self.location.root):
            self._append(staged)
        if time.monotonic() - self.last_flush > self.flush_interval_s:
            self.flush()

    def _append(self, staged: "EpisodeRows") -> None:
        start, end = self.total, self.total + staged.length
        for name, array in self.arrays.items():
            array.resize((end, *self.fields[name].shape))
            offset = write_rows(array, start, staged.chunks(name), self.fields[name].chunk_rows)
            if offset != end:
                raise StoreError(f"{staged.path}: staged field {name} has {offset - start} rows, "
                                 f"expected {staged.length}")
        for name, video in self.videos.items():
            video.append(staged.clips(name), start, end, f"{self.location.root}: episode {staged.info['id']}")
        info = staged.info
        self.manifest["episodes"].append({
            "id": info["id"], "source_file": info["source_file"], "length": staged.length,
            "start": start, "end": end, "source_index": info.get("source_index"),
            "checksums": info["checksums"], "notes": info["notes"],
        })
        self.manifest["failed"] = [f for f in self.manifest["failed"] if f["id"] != info["id"]]
        self.committed_ids.add(info["id"])
        self.total = end
        self.pending.append(staged)

    def record_failure(self, episode_id: str, file: str, reason: str) -> None:
        failed = [f for f in self.manifest["failed"] if f["id"] != episode_id]
        self.manifest["failed"] = failed + [{"id": episode_id, "file": file, "reason": reason}]

    def update(self, **entries: Any) -> None:
        """Set top-level manifest entries (source settings, part info, …) published at the next flush."""
        self.manifest.update(entries)

    def flush(self) -> None:
        """Publish everything committed so far: episode_ends, then the manifest, then drop staging."""
        with naming_write_errors(self.location.root):
            self._publish()
        for staged in self.pending:
            staged.remove()
        self.pending = []
        self.last_flush = time.monotonic()

    def _publish(self) -> None:
        ends = np.array([episode["end"] for episode in self.manifest["episodes"]], dtype=np.int64)
        episode_ends = self.group[EPISODE_ENDS]
        episode_ends.resize(ends.shape)
        if len(ends):
            episode_ends[:] = ends
        save_manifest(self.location, self.manifest)

    def close(self) -> None:
        """Publish what is committed and let other writers in (also when publishing fails)."""
        try:
            self.flush()
        finally:
            if self._lock is not None:
                self._lock.release()
                self._lock = None
