"""``StreamDataset``: windows streamed from a store's webdataset shards (iterable, local or remote)."""

from __future__ import annotations

import os
import random
from multiprocessing import sharedctypes
from multiprocessing.context import get_spawning_popen
from typing import Iterable, Iterator

import numpy as np
import torch
from torch.utils.data import IterableDataset
from webdataset.filters import shuffle as shuffle_stage

from ..errors import DreamerDataError, StoreError
from ..store.fields import LATENTS
from ..store.location import StoreLocation
from ..store.manifest import load_manifest, manifest_fields
from ..store.reader import open_group
from ..store.video_field import VideoFrames
from .clips import ClipStitcher
from .context import multiprocessing_context, resolve_rank, worker_split
from .items import check_frame_format, make_item, parse_frame_dtype, resolve_fields
from .sampling import EpisodeSelection, select_episodes
from .shards import read_clips
from .window_index import WindowShape


class SharedEpoch:
    """An epoch number the training process sets and DataLoader workers read, persistent ones too.

    Shared memory travels to workers when they start (fork or spawn); a plain pickle (outside
    process start) carries the current value only.
    """

    def __init__(self, value: int = 0):
        self.cell = sharedctypes.RawValue("q", value)

    @property
    def value(self) -> int:
        return self.cell.value

    @value.setter
    def value(self, epoch: int) -> None:
        self.cell.value = epoch

    def __getstate__(self) -> dict:
        if get_spawning_popen() is not None:
            return {"cell": self.cell}
        return {"value": self.cell.value}

    def __setstate__(self, state: dict) -> None:
        self.cell = state["cell"] if "cell" in state else sharedctypes.RawValue("q", state["value"])


def check_shard_latents(store: str, manifest: dict, shards: list[dict]) -> None:
    """Refuse shards whose latents are not the store's published ones (exported before a tokenize or an
    overwrite): streaming them would silently train on another checkpoint's latents, or fail mid-epoch."""
    published = (manifest.get("latents") or {}).get("checkpoint_hash")
    for shard in shards:
        if shard.get("latents") != published:
            held = f"latents of checkpoint {shard['latents']}" if shard.get("latents") else "no latents"
            raise StoreError(f"{store}/{shard['name']}: holds {held}, the store's are of checkpoint {published}; "
                             f"stream without 'latents' or read them with WindowDataset")


class StreamDataset(IterableDataset):
    """Windows of ``length`` frames streamed from the shards under ``STORE/wds/``.

    Shards are the unit of splitting: each epoch the shard list is shuffled with (seed, epoch),
    rank r of w takes every w-th shard and worker k of n every n-th of those, so the ranks and
    workers of one epoch read disjoint shards that together cover the store once. Shards differ
    in size, so ranks may get different numbers of windows: end DDP epochs by a step count (or
    use torch's ``Join``). Windows are cut per episode (they never cross one) ``stride`` frames
    apart (default: ``length``, every frame once), then mixed through a shuffle buffer of
    ``shuffle`` windows (0: store order).
    Call ``set_epoch(e)`` before each epoch to reshuffle; it reaches persistent workers too.

    ``length``, ``frame_step``, ``load``, ``frame_dtype``, ``episodes`` and ``frame_format`` mean what they
    mean for ``WindowDataset``; unshuffled, the stream yields exactly its windows in its order.
    ``rank``/``world_size`` default to torch.distributed's, read when the dataset is built.

    A video-backed field (``ingest --frames-as video``) has no member in the shards: each clip's rows are
    decoded from the store's video clips, in the worker, continuing where the previous clip stopped.
    ``frame_format="yuv420p"`` hands those frames over as the codec's planes, (T, H*3/2, W) uint8, for
    ``dreamer_data.video.yuv420_to_rgb`` on the trainer's GPU (half the bytes between processes).

    ``store`` is a path or any fsspec URL; shards are opened through fsspec. Remote stores need
    ``multiprocessing_context=dataset.multiprocessing_context`` ('spawn') in the DataLoader.
    """

    def __init__(self, store: str | os.PathLike, length: int = 16, *, stride: int | None = None,
                 frame_step: int = 1, load: Iterable[str] | str | None = None, frame_dtype: str = "uint8",
                 episodes: EpisodeSelection = None, shuffle: int = 1024, seed: int = 0,
                 rank: int | None = None, world_size: int | None = None, frame_format: str = "rgb24"):
        self.store = str(store)
        self.location = StoreLocation(self.store)
        manifest = load_manifest(self.location)
        shards = (manifest.get("wds") or {}).get("shards") or []
        if not shards:
            raise StoreError(f"{self.store}: store has no webdataset shards (ingest with --format both)")
        self.shards = [shard["name"] for shard in shards]
        specs = manifest_fields(manifest)
        self.fields = resolve_fields(self.store, specs, load)
        self.videos = {field: specs[field] for field in self.fields if specs[field].video is not None}
        self.episode_starts = {episode["id"]: episode["start"] for episode in manifest["episodes"]}
        if LATENTS in self.fields:
            check_shard_latents(self.store, manifest, shards)
        self.frames_as = parse_frame_dtype(frame_dtype)
        self.frame_format = check_frame_format(self.store, {field: specs[field] for field in self.fields},
                                               frame_format, self.frames_as)
        self.shape = WindowShape(length, stride if stride is not None else length, frame_step)
        ids = [episode["id"] for episode in manifest["episodes"]]
        mask = select_episodes(self.store, ids, episodes)
        self.keep = None if mask.all() else frozenset(np.asarray(ids, dtype=object)[mask])
        if shuffle < 0 or seed < 0:
            raise DreamerDataError(f"{self.store}: shuffle and seed must be >= 0, got {shuffle}, {seed}")
        self.shuffle = int(shuffle)
        self.seed = int(seed)
        self.rank, self.world_size = resolve_rank(rank, world_size)
        if self.world_size > len(self.shards):
            raise StoreError(f"{self.store}: {len(self.shards)} shards cannot feed {self.world_size} ranks; "
                             "export smaller shards or use fewer ranks")
        self.multiprocessing_context = multiprocessing_context(self.location)
        self.epoch = SharedEpoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch.value = int(epoch)

    def shards_for(self, epoch: int, worker: int = 0, num_workers: int = 1) -> list[str]:
        """Shards that DataLoader worker ``worker`` of this rank reads in ``epoch``."""
        order = list(self.shards)
        if self.shuffle:
            np.random.default_rng([self.seed, epoch]).shuffle(order)
        return order[self.rank::self.world_size][worker::num_workers]

    def _windows(self, shards: list[str]) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
        keep = self.keep.__contains__ if self.keep is not None else None
        in_shards = tuple(field for field in self.fields if field not in self.videos)
        group = open_group(self.location) if self.videos else None
        videos = {field: VideoFrames(self.location, group, spec) for field, spec in self.videos.items()}
        for shard in shards:
            stitcher = ClipStitcher(self.shape, f"{self.store.rstrip('/')}/{shard}")
            for meta, arrays in read_clips(self.location, shard, in_shards, keep):
                if videos:
                    start = self.episode_starts[meta["episode"]] + meta["start"]
                    arrays.update({field: video.read(start, start + meta["length"], format=self.frame_format)
                                   for field, video in videos.items()})
                    arrays = {field: arrays[field] for field in self.fields}
                yield from stitcher.add(meta, arrays)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        epoch = self.epoch.value
        worker, num_workers = worker_split()
        windows = self._windows(self.shards_for(epoch, worker, num_workers))
        if self.shuffle:
            state = np.random.SeedSequence([self.seed, epoch, self.rank, worker]).generate_state(2)
            rng = random.Random(int(state[0]) << 32 | int(state[1]))
            windows = shuffle_stage(self.shuffle, self.shuffle, rng=rng)(windows)
        for rows, is_first in windows:
            yield make_item(rows, is_first, self.frames_as)
