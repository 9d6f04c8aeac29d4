"""The part of the Crafter and MinAtar ingest sources they share: finding and reading raw episodes.

SRC is a RAW folder written by ``dreamer-data collect`` (local or fsspec URL). Episodes are
``episodes/*.npz`` in file-name order (= episode index order); ids are ``episodes/000000`` etc.
Each episode's ``info`` (environment seed and settings, policy, …) becomes its manifest ``notes``,
which is all ``replay`` needs.

SRC may also be a folder of RAW folders, one collect run each (e.g. ``raw/random`` and
``raw/scripted``: data from several behaviour policies in one store, as the paper mixes datasets).
The runs must agree on everything but ``MIXABLE`` (same environment, game, dynamics and time limit);
ids are then ``random/episodes/000000`` etc., and the manifest's ``collect`` settings hold what the
runs share plus each run's own settings under ``runs``.
"""

from __future__ import annotations

import posixpath
from abc import abstractmethod

import numpy as np
from fsspec.core import url_to_fs

from ..errors import DreamerDataError, EpisodeError
from ..sources.base import EpisodeRef, Emit, Source
from .raw import EPISODE_DIR, RUN_FILE, read_episode, read_run

MIXABLE = ("policy", "seed", "episodes", "epsilon")  # settings the collect runs of one SRC may differ in


class RawEpisodeSource(Source):
    """A Source over a collect RAW folder; subclasses turn raw rows into store rows."""

    observation_member: str  # raw member holding the observations

    @property
    def run_file(self) -> str:
        return f"{self.src.rstrip('/')}/{RUN_FILE}"

    def has_run(self) -> bool:
        return self.exists(self.run_file)

    def read_run_file(self, folder: str) -> dict:
        file = f"{folder.rstrip('/')}/{RUN_FILE}"
        with self.open(file) as handle:
            run = read_run(folder, handle.read().decode())
        if run.get("env") != self.kind:
            raise DreamerDataError(f"{file}: collected from {run.get('env')!r}; use `dreamer-data "
                                   f"ingest {run.get('env')}`")
        return run

    @property
    def runs(self) -> dict[str, dict]:
        """{sub-folder name: its collect.json}: ``{"": run}`` when SRC is itself a RAW folder, else every
        immediate sub-folder that is one (read once per process)."""
        if getattr(self, "_runs", None) is None:
            if self.has_run():
                self._runs = {"": self.read_run_file(self.src)}
            else:
                self._runs = {name: self.read_run_file(f"{self.src.rstrip('/')}/{name}")
                              for name in self.run_folders()}
            if not self._runs:
                raise DreamerDataError(f"{self.run_file}: missing; SRC must be a folder written by `dreamer-data "
                                       f"collect {self.kind}` (or a folder of such folders)")
        return self._runs

    def run_folders(self) -> list[str]:
        """Names of SRC's immediate sub-folders that hold a collect.json, sorted."""
        fs, root = url_to_fs(self.src)
        if not fs.isdir(root):
            return []
        folders = [entry["name"] for entry in fs.ls(root, detail=True) if entry["type"] == "directory"]
        return sorted(posixpath.basename(folder.rstrip("/")) for folder in folders
                      if fs.exists(f"{folder.rstrip('/')}/{RUN_FILE}"))

    @property
    def run(self) -> dict:
        """The collect settings of SRC: its collect.json, or for a folder of runs what they share (refusing
        runs that differ in anything but ``MIXABLE``) with each run's own settings under ``runs``."""
        runs = self.runs
        if list(runs) == [""]:
            return runs[""]
        (first_name, first), *others = runs.items()
        shared = {key: value for key, value in first.items() if key not in MIXABLE}
        for name, run in others:
            theirs = {key: value for key, value in run.items() if key not in MIXABLE}
            changed = sorted(key for key in shared.keys() | theirs.keys() if shared.get(key) != theirs.get(key))
            if changed:
                details = ", ".join(key if max(len(repr(shared.get(key))), len(repr(theirs.get(key)))) > 24
                                    else f"{key} {shared.get(key)!r} vs {theirs.get(key)!r}" for key in changed)
                raise DreamerDataError(f"{self.src}: collect runs {first_name!r} and {name!r} differ in more than "
                                       f"the behaviour policy ({details}); ingest them into separate stores")
        return {**shared, "policy": "+".join(run.get("policy", "?") for run in runs.values()),
                "episodes": sum(int(run.get("episodes", 0)) for run in runs.values()),
                "runs": {name: run for name, run in runs.items()}}

    def list_episodes(self) -> list[EpisodeRef]:
        episode_dirs = {(f"{name}/{EPISODE_DIR}" if name else EPISODE_DIR).replace(".", "_")  # as episode_id
                        for name in self.runs}  # (reading the runs fails early on a folder that holds none)
        refs = []
        for path in self.walk_files():
            name = posixpath.basename(path)
            if name.endswith(".npz") and not name.startswith("."):
                episode = self.episode_id(path, drop_extension=True)
                if posixpath.dirname(episode) in episode_dirs:
                    refs.append(EpisodeRef(episode, {"episode": path}))
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
