"""The part of the Crafter and MinAtar ingest sources they share: finding and reading raw episodes.

SRC is a RAW folder written by ``dreamer-data collect`` (local or fsspec URL). Episodes are
``episodes/*.npz`` in file-name order (= episode index order); ids are ``episodes/000000`` etc.
Each episode's ``info`` (environment seed and settings, policy, …) becomes its manifest ``notes``,
which is all ``replay`` needs.
"""

from __future__ import annotations

import posixpath
from abc import abstractmethod

import numpy as np

from ..errors import DreamerDataError, EpisodeError
from ..sources.base import EpisodeRef, Emit, Source
from .raw import EPISODE_DIR, RUN_FILE, read_episode, read_run


class RawEpisodeSource(Source):
    """A Source over a collect RAW folder; subclasses turn raw rows into store rows."""

    observation_member: str  # raw member holding the observations

    @property
    def run_file(self) -> str:
        return f"{self.src.rstrip('/')}/{RUN_FILE}"

    def has_run(self) -> bool:
        return self.exists(self.run_file)

    @property
    def run(self) -> dict:
        """The RAW folder's ``collect.json`` (read once per process)."""
        if getattr(self, "_run", None) is None:
            if not self.has_run():
                raise DreamerDataError(f"{self.run_file}: missing; SRC must be a folder written by `dreamer-data "
                                       f"collect {self.kind}`")
            with self.open(self.run_file) as handle:
                run = read_run(self.src, handle.read().decode())
            if run.get("env") != self.kind:
                raise DreamerDataError(f"{self.run_file}: collected from {run.get('env')!r}; use `dreamer-data "
                                       f"ingest {run.get('env')}`")
            self._run = run
        return self._run

    def list_episodes(self) -> list[EpisodeRef]:
        self.run  # fail early, with the reason, on a folder that is not a RAW folder
        refs = []
        for path in self.walk_files():
            name = posixpath.basename(path)
            if posixpath.basename(posixpath.dirname(path)) == EPISODE_DIR and name.endswith(".npz") \
                    and not name.startswith("."):
                refs.append(EpisodeRef(self.episode_id(path, drop_extension=True), {"episode": path}))
        return sorted(refs, key=lambda ref: ref.id)

    def settings(self) -> dict:
        return {**super().settings(), "collect": self.run}

    def read_episode(self, ref: EpisodeRef, emit: Emit) -> dict:
        file = ref.files["episode"]
        rows, info = read_episode(self.read_bytes(file), file, self.observation_member)
        if info.get("env") != self.kind:
            raise EpisodeError(file, f"episode info says env {info.get('env')!r}, expected {self.kind!r}")
        self.emit_rows(rows, file, emit)
        return info

    def read_bytes(self, file: str) -> bytes:
        try:
            with self.open(file) as handle:
                return handle.read()
        except OSError as error:
            raise EpisodeError(file, f"cannot read ({error})") from None

    def emit_rows(self, rows: dict[str, np.ndarray], file: str, emit: Emit) -> None:
        """Check raw rows, then emit them as store rows in chunks of ``frame_chunk_rows``."""
        self.check_rows(rows, file)
        step = self.options.frame_chunk_rows
        for start in range(0, len(rows["actions"]), step):
            emit(self.store_rows({name: values[start:start + step] for name, values in rows.items()}))

    @abstractmethod
    def check_rows(self, rows: dict[str, np.ndarray], file: str) -> None:
        """Raise EpisodeError naming ``file`` when a raw member has the wrong per-row shape or dtype."""

    @abstractmethod
    def store_rows(self, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One chunk of raw rows → one chunk of store rows (every field of ``fields()``)."""


def check_member(rows: dict[str, np.ndarray], name: str, shape: tuple[int, ...], dtype: str, file: str) -> None:
    values = rows.get(name)
    if values is None:
        raise EpisodeError(file, f"missing member {name}")
    if values.shape[1:] != shape or values.dtype != np.dtype(dtype):
        raise EpisodeError(file, f"{name} is {values.dtype} with rows of shape {values.shape[1:]}, "
                                 f"expected {dtype} {shape}")


def null_action_flags(actions: np.ndarray, has_action: np.ndarray) -> np.ndarray:
    """1 where the action is the environment's no-op (action 0) or there is no action."""
    return ((actions == 0) | (has_action == 0)).astype(np.uint8)
