"""Episodes are staged whole on local disk before they enter the store.

A worker streams rows into ``.tmp-<key>/`` and renames it to ``<key>/`` only when the episode is
complete, so a killed worker leaves nothing that looks finished. The committer (one process) then
appends staged episodes to the store in a fixed order, which keeps the store reproducible no
matter which worker finishes first.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import EpisodeError
from ..video.encode import ClipEncoder, clip_file
from .fields import FieldSpec
from .location import naming_write_errors
from .video_field import Clip, episode_digest, split_clips

EPISODE_INFO = "episode.json"
VIDEO_INDEX = "index.npy"  # a video field's staged (clip, frame, pts) rows, beside its clips


def staging_key(episode_id: str) -> str:
    """A directory name for an episode id (ids may hold '/')."""
    return hashlib.sha1(episode_id.encode()).hexdigest()[:20]


def _save_npy(path: Path, array: np.ndarray) -> None:
    """``np.save`` through a buffer: numpy's own file write reports a full disk as a bare short write."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    path.write_bytes(buffer.getbuffer())


class EpisodeStager:
    """Receives an episode's rows chunk by chunk; keeps running checksums; never holds the episode."""

    def __init__(self, root: Path, episode_id: str, fields: dict[str, FieldSpec], file: str):
        self.episode_id = episode_id
        self.fields = fields
        self.file = file
        self.final = Path(root) / staging_key(episode_id)
        self.tmp = Path(root) / f".tmp-{staging_key(episode_id)}-{os.getpid()}"
        for stale in Path(root).glob(f".tmp-{staging_key(episode_id)}-*"):  # halves left by killed workers
            shutil.rmtree(stale, ignore_errors=True)
        with naming_write_errors(str(self.tmp.parent)):
            for spec in fields.values():
                (self.tmp / spec.file_stem).mkdir(parents=True)
        self.hashes = {name: hashlib.sha256() for name in fields}
        self.encoders = {name: ClipEncoder(self.tmp / spec.file_stem, spec.video, file)
                         for name, spec in fields.items() if spec.video is not None}
        self.length = 0
        self.parts = 0

    def append(self, rows: dict[str, np.ndarray]) -> None:
        """Add rows for every field at once (all arrays share their first dimension)."""
        if set(rows) != set(self.fields):
            missing, extra = set(self.fields) - set(rows), set(rows) - set(self.fields)
            raise EpisodeError(self.file, f"internal: rows missing {sorted(missing)} / unexpected {sorted(extra)}")
        lengths = {len(array) for array in rows.values()}
        if len(lengths) != 1:
            raise EpisodeError(self.file, f"internal: row chunk with unequal lengths {sorted(lengths)}")
        if lengths == {0}:
            return
        for name, array in rows.items():
            spec = self.fields[name]
            array = spec.check(np.asarray(array), self.file)
            with naming_write_errors(str(self.tmp.parent)):  # disk full stops the run: it is no fault of the episode
                if name in self.encoders:
                    self.encoders[name].add(array)
                else:
                    self.hashes[name].update(array.tobytes())
                    _save_npy(self.tmp / spec.file_stem / f"{self.parts:06d}.npy", array)
        self.parts += 1
        self.length += lengths.pop()

    def finish(self, source_file: str, source_index: int, notes: dict | None = None) -> "StagedEpisode":
        if self.length == 0:
            self.abort()
            raise EpisodeError(self.file, "episode has no frames")
        with naming_write_errors(str(self.tmp.parent)):
            for name, encoder in self.encoders.items():
                folder = self.tmp / self.fields[name].file_stem
                _save_npy(folder / VIDEO_INDEX, encoder.finish())
                self.hashes[name] = episode_digest(staged_clips(folder))
        info = {
            "id": self.episode_id,
            "source_file": source_file,
            "source_index": source_index,
            "length": self.length,
            "checksums": {name: f"sha256:{h.hexdigest()}" for name, h in self.hashes.items()},
            "notes": notes or {},
        }
        with naming_write_errors(str(self.tmp.parent)):
            (self.tmp / EPISODE_INFO).write_text(json.dumps(info))
            shutil.rmtree(self.final, ignore_errors=True)
            os.replace(self.tmp, self.final)
        return StagedEpisode.load(self.final, self.fields)

    def abort(self) -> None:
        for encoder in self.encoders.values():
            encoder.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def staged_clips(folder: Path) -> Iterator[Clip]:
    """A staged video field's clips with their (frame, pts) rows, one in memory at a time."""
    index = np.load(folder / VIDEO_INDEX, allow_pickle=False)
    for first, end in split_clips(index):
        yield Clip(clip_file(folder, int(index[first, 0])).read_bytes(), index[first:end, 1:])


@dataclass
class StagedEpisode:
    """A complete episode waiting on local disk to be committed."""

    path: Path
    info: dict
    fields: dict[str, FieldSpec]

    @classmethod
    def load(cls, path: Path, fields: dict[str, FieldSpec]) -> "StagedEpisode":
        return cls(Path(path), json.loads((Path(path) / EPISODE_INFO).read_text()), fields)

    @property
    def id(self) -> str:
        return self.info["id"]

    @property
    def length(self) -> int:
        return self.info["length"]

    def chunks(self, name: str) -> Iterator[np.ndarray]:
        for part in sorted((self.path / self.fields[name].file_stem).glob("*.npy")):
            yield np.load(part, allow_pickle=False)

    def clips(self, name: str) -> Iterator[Clip]:
        return staged_clips(self.path / self.fields[name].file_stem)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def find_staged(root: Path, episode_id: str, fields: dict[str, FieldSpec]) -> StagedEpisode | None:
    """A complete staged episode left by an earlier run, if any."""
    path = Path(root) / staging_key(episode_id)
    if (path / EPISODE_INFO).exists():
        staged = StagedEpisode.load(path, fields)
        if staged.id == episode_id:
            return staged
    return None


def clean_staging(root: Path, committed: dict[str, dict], wanted: set[str], private: bool) -> None:
    """Remove what killed runs left in staging (call under the store's writer lock).

    A run killed between publishing the manifest and deleting staged copies leaves uncompressed
    copies of committed episodes; a killed worker leaves ``.tmp-*`` halves. ``committed`` maps the
    store's episode ids to their checksums, ``wanted`` is this run's episode ids. A ``private``
    root (the store's own ``.staging``) keeps only complete episodes still wanted; a shared one
    (``--staging``) loses only copies identical to committed episodes and halves of our episodes.
    """
    root = Path(root)
    if not root.is_dir():
        return
    ours = {staging_key(episode_id) for episode_id in (*committed, *wanted)}
    for entry in root.iterdir():
        if entry.name.startswith(".tmp-"):
            stale = private or entry.name.removeprefix(".tmp-").rsplit("-", 1)[0] in ours
        else:
            try:
                info = json.loads((entry / EPISODE_INFO).read_text())
            except (OSError, ValueError):
                info = None
            if not isinstance(info, dict):
                stale = private
            else:
                stale = (committed.get(info.get("id")) == info.get("checksums")
                         or private and info.get("id") not in wanted)
        if stale:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
