"""``WindowDataset``: random access to fixed-length windows of a zarr store (map-style)."""

from __future__ import annotations

import os
from typing import Iterable

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import StoreError
from ..store.location import StoreLocation
from ..store.manifest import load_manifest, manifest_fields
from ..store.reader import open_field, open_group
from ..store.video_field import VideoFrames
from .chunks import DEFAULT_CACHE_BYTES, ChunkCache
from .context import multiprocessing_context
from .items import check_frame_format, make_item, parse_frame_dtype, resolve_fields
from .sampling import EpisodeSelection, select_episodes
from .window_index import WindowIndex, WindowShape


class WindowDataset(Dataset):
    """Windows of ``length`` frames from a store, as dicts of tensors keyed by store field name.

    A window holds ``length`` frames ``frame_step`` rows apart; windows start every ``stride``
    rows of an episode. ``load`` names the fields to read (``"actions"`` selects every
    ``actions/…`` field; default all); ``frame_dtype`` float types scale frames to [0, 1];
    ``episodes`` keeps some episodes (ids, or a predicate such as ``EpisodeSplit(0.05).train``).
    ``frame_format="yuv420p"`` (video-backed frames only) returns ``frames`` as the codec's planes, (T, H*3/2, W)
    uint8: half the bytes of RGB to move between processes and no conversion in the worker; convert a batch
    on the trainer's GPU with ``dreamer_data.video.yuv420_to_rgb`` (0.2 ms a window on an H200; on a CPU it
    costs ~130 ms a window, far more than swscale in the workers: there keep RGB).

    Window i is a pure function of i (episode order, then start row), so any sampler works;
    ``WindowSampler`` adds seeding, resume and episode weights. Windows stay inside one episode
    unless ``cross_episodes``; ``is_first`` marks rows that begin an episode either way.

    Only the manifest is read here. Each process (each DataLoader worker) opens its own zarr
    handle on first access, so the dataset pickles small and never shares an open store, and
    keeps up to ``cache_bytes`` of decoded chunks (see ``chunks.py``); a video-backed field is decoded
    there, from the keyframe before each window (``store/video_field.py``). Every process reads the
    arrays this manifest names: latents that ``tokenize --overwrite`` replaces later stay the ones
    read (or, once a second overwrite removed them, reads raise ``StoreError``), never a mix.
    Pass ``multiprocessing_context=dataset.multiprocessing_context`` to the DataLoader: remote
    (async fsspec) stores need 'spawn'.
    """

    def __init__(self, store: str | os.PathLike, length: int = 16, *, stride: int = 1, frame_step: int = 1,
                 load: Iterable[str] | str | None = None, frame_dtype: str = "uint8",
                 episodes: EpisodeSelection = None, cross_episodes: bool = False,
                 cache_bytes: int = DEFAULT_CACHE_BYTES, frame_format: str = "rgb24"):
        self.store = str(store)
        location = StoreLocation(self.store)
        manifest = load_manifest(location)
        specs = manifest_fields(manifest)
        self.fields = resolve_fields(self.store, specs, load)
        self.specs = {field: specs[field] for field in self.fields}  # the array paths every process opens
        self.frames_as = parse_frame_dtype(frame_dtype)
        self.frame_format = check_frame_format(self.store, self.specs, frame_format, self.frames_as)
        self.shape = WindowShape(length, stride, frame_step)
        self.episode_ids = [episode["id"] for episode in manifest["episodes"]]
        self.index = WindowIndex(
            np.array([episode["start"] for episode in manifest["episodes"]], dtype=np.int64),
            np.array([episode["end"] for episode in manifest["episodes"]], dtype=np.int64),
            select_episodes(self.store, self.episode_ids, episodes), self.shape, cross_episodes,
        )
        if len(self.index) == 0:
            raise StoreError(f"{self.store}: no window of {self.shape.span} frames fits in the selected episodes "
                             f"({len(self.episode_ids)} in the store)")
        self.multiprocessing_context = multiprocessing_context(location)
        self.cache_bytes = cache_bytes
        self._cache: ChunkCache | None = None
        self._videos: dict[str, VideoFrames] = {}
        self._pid: int | None = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_cache"], state["_videos"], state["_pid"] = None, {}, None  # every process opens its own handle
        return state

    def _open(self) -> ChunkCache:
        if self._cache is None or self._pid != os.getpid():  # a forked worker must not reuse the parent's
            location = StoreLocation(self.store)
            group = open_group(location)
            opened = {field: open_field(location, group, spec) for field, spec in self.specs.items()}
            self._videos = {field: array for field, array in opened.items() if isinstance(array, VideoFrames)}
            self._cache = ChunkCache({field: array for field, array in opened.items() if field not in self._videos},
                                     self.cache_bytes)
            self._pid = os.getpid()
        return self._cache

    def __len__(self) -> int:
        return len(self.index)

    def locate(self, index: int) -> tuple[str, int]:
        """(episode id, frame offset in that episode) where window ``index`` starts."""
        episode, row = self.index.locate(index)
        return self.episode_ids[episode], row - int(self.index.episode_starts[episode])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        _, first_row = self.index.locate(int(index))
        rows = self.index.rows(first_row)
        cache = self._open()
        start, stop, step = int(rows[0]), int(rows[-1]) + 1, self.shape.frame_step
        block = {field: self._videos[field].read(start, stop, step, self.frame_format) if field in self._videos
                 else cache.read(field, start, stop, step) for field in self.fields}
        return make_item(block, self.index.is_first(rows), self.frames_as)
