"""What every raw-data source provides to ingest: an episode list, field specs, and a row stream."""

from __future__ import annotations

import posixpath
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable

import fsspec
import numpy as np
from fsspec.core import url_to_fs

from ..collect.minatar_render import DEFAULT_DRAW_ORDER, DEFAULT_PALETTE
from ..errors import DreamerDataError
from ..store.fields import FieldSpec

Emit = Callable[[dict[str, np.ndarray]], None]
DEFAULT_FRAME_CHUNK_ROWS = 32  # benchmarks/results/loaders.md: fastest random 16-frame windows
DEFAULT_ROW_CHUNK_ROWS = 4096


@dataclass(frozen=True)
class EpisodeRef:
    """One raw episode: a stable id and the files (role → path or URL) it is read from."""

    id: str
    files: dict[str, str] = field(default_factory=dict)

    @property
    def main_file(self) -> str:
        return next(iter(self.files.values()))


@dataclass(frozen=True)
class ReadOptions:
    """Per-run settings every source honours."""

    resolution: tuple[int, int] | None = None  # (H, W) of stored frames; None keeps the source's
    video_backend: str = "pyav"
    decode_threads: int = 1
    length_tolerance: int = 2  # frames the video and the action log may differ by
    frame_chunk_rows: int = DEFAULT_FRAME_CHUNK_ROWS
    camera: str | None = None  # which camera of a multi-camera source to store (e.g. LeRobot's image keys)
    palette: str = DEFAULT_PALETTE  # MinAtar: the colours its grid is drawn in (collect/minatar_render.py)
    draw_order: str = DEFAULT_DRAW_ORDER  # MinAtar: which channel a cell shows where channels overlap (same file)


class Source(ABC):
    """A kind of raw data. Instances are picklable (they hold URLs, not open handles)."""

    kind: str

    def __init__(self, src: str, options: ReadOptions):
        self.src = str(src)
        self.options = options

    # --- file system helpers -------------------------------------------------------------------
    @staticmethod
    def exists(path: str) -> bool:
        fs, inner = url_to_fs(path)
        return fs.exists(inner)

    def open(self, path: str, mode: str = "rb"):
        """Open a path returned by ``list_episodes`` (local path or URL)."""
        return fsspec.open(path, mode).open()

    def walk_files(self) -> list[str]:
        """Every file under ``src`` as full URLs/paths, sorted (deterministic episode order)."""
        fs, root = url_to_fs(self.src)
        if not fs.exists(root):
            raise DreamerDataError(f"{self.src}: source path does not exist")
        if fs.isfile(root):
            return [self.src]
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        paths = sorted(fs.find(root))
        if protocol in ("file", "local"):
            return paths
        return [f"{protocol}://{p}" for p in paths]

    def episode_id(self, path: str, drop_extension: bool) -> str:
        """Stable id from a path relative to ``src`` ('/' kept, '.' → '_' so webdataset keys stay whole)."""
        root = url_to_fs(self.src)[1].rstrip("/")
        inner = url_to_fs(path)[1].rstrip("/")
        rel = posixpath.relpath(inner, root) if inner != root else posixpath.basename(inner)
        if rel == ".":
            rel = posixpath.basename(root)
        if drop_extension:
            rel = posixpath.splitext(rel)[0]
        return rel.replace(".", "_")

    # --- what a source must say ------------------------------------------------------------------
    @abstractmethod
    def list_episodes(self) -> list[EpisodeRef]:
        """All episodes, in a deterministic order (ids unique)."""

    @abstractmethod
    def fields(self) -> dict[str, FieldSpec]:
        """The per-frame arrays this source writes (depends on ``options.resolution``)."""

    @abstractmethod
    def read_episode(self, ref: EpisodeRef, emit: Emit) -> dict:
        """Stream the episode's rows through ``emit`` in chunks; return per-episode notes.

        Raises ``EpisodeError`` naming the file for anything wrong with this episode.
        """

    @abstractmethod
    def observation_spec(self) -> dict:
        """Manifest ``observation`` entry (height, width, channels, fps, …)."""

    @abstractmethod
    def action_spec(self) -> dict:
        """Manifest ``actions`` entry: per action array its kind, size and names."""

    rewards_present: bool = True

    def settings(self) -> dict:
        """Source settings recorded in the manifest (everything that changes the stored bytes)."""
        o = self.options
        settings = {"resolution": list(o.resolution) if o.resolution else None, "video_backend": o.video_backend,
                    "length_tolerance": o.length_tolerance}
        if o.camera is not None:
            settings["camera"] = o.camera
        return settings
