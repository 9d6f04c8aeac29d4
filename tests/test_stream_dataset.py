"""StreamDataset over real webdataset shards of an ingested store: the same windows as the zarr
side, complete and disjoint across ranks and workers, seeded epoch reshuffles, fsspec URLs."""

from __future__ import annotations

import pickle
from collections import Counter
from pathlib import Path

import fsspec
import pytest
import torch
from torch.utils.data import DataLoader

from dreamer_data.errors import DreamerDataError, StoreError
from dreamer_data.ingest import IngestPlan, ingest
from dreamer_data.loaders import EpisodeSplit, StreamDataset, WindowDataset
from dreamer_data.sources import ReadOptions, source_class
from dreamer_data.store.manifest import save_manifest
from dreamer_data.store.reader import StoreReader
from dreamer_data.store.wds import export_shards
from makers import write_minerl_extracted

LENGTHS = (40, 7, 33, 21, 64, 16, 50)


def build_store(root: Path, shards: bool = True) -> str:
    for index, length in enumerate(LENGTHS):
        write_minerl_extracted(root / "raw" / f"ep{index}", length, seed=index)
    out = str(root / "store")
    source = source_class("minerl")(str(root / "raw"), ReadOptions(frame_chunk_rows=16))
    assert not ingest(source, out, IngestPlan(workers=0)).failed
    if shards:  # 10-frame clips; ~250 kB shards hold one to two episodes each
        reader = StoreReader(out)
        reader.manifest["wds"] = export_shards(reader, clip_length=10, shard_bytes=250_000)
        save_manifest(reader.location, reader.manifest)
    return out


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    out = build_store(tmp_path_factory.mktemp("stream"))
    shards = StoreReader(out).manifest["wds"]["shards"]
    assert len(shards) >= 4 and any(len(shard["episodes"]) > 1 for shard in shards)
    return out


def key(item: dict) -> tuple[float, ...]:
    """A window's identity: its rewards are distinct random floats in these stores."""
    return tuple(item["rewards"].tolist())


def all_windows(store: str, length: int = 16, stride: int = 16) -> Counter:
    dataset = WindowDataset(store, length, stride=stride, load="rewards")
    windows = Counter(key(dataset[i]) for i in range(len(dataset)))
    assert len(windows) == len(dataset)
    return windows


@pytest.mark.parametrize("length, stride, frame_step", [(16, None, 1), (16, 3, 1), (5, 7, 3)])
def test_unshuffled_stream_equals_the_zarr_windows_in_order(store, length, stride, frame_step):
    stream = list(StreamDataset(store, length, stride=stride, frame_step=frame_step, shuffle=0))
    windows = WindowDataset(store, length, stride=stride or length, frame_step=frame_step)
    assert len(stream) == len(windows)
    for i, item in enumerate(stream):
        expected = windows[i]
        assert set(item) == set(expected)
        for field, tensor in expected.items():
            torch.testing.assert_close(item[field], tensor, rtol=0, atol=0, msg=f"window {i} {field}")


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_ranks_read_every_window_exactly_once(store, world_size):
    expected = all_windows(store)
    for epoch in (0, 1):
        seen: Counter = Counter()
        for rank in range(world_size):
            dataset = StreamDataset(store, load="rewards", shuffle=8, seed=5, rank=rank, world_size=world_size)
            dataset.set_epoch(epoch)
            seen.update(key(item) for item in dataset)
        assert seen == expected


def test_ranks_times_dataloader_workers_partition_the_windows(store):
    expected = all_windows(store, stride=4)
    seen: Counter = Counter()
    for rank in range(2):
        dataset = StreamDataset(store, stride=4, load="rewards", seed=1, rank=rank, world_size=2)
        seen.update(key(item) for item in DataLoader(dataset, batch_size=None, num_workers=2))
    assert seen == expected


def test_epochs_reshuffle_deterministically(store):
    def order(epoch: int, seed: int = 3) -> list:
        dataset = StreamDataset(store, load="rewards", shuffle=16, seed=seed)
        dataset.set_epoch(epoch)
        return [key(item) for item in dataset]

    epoch0, epoch1 = order(0), order(1)
    assert Counter(epoch0) == Counter(epoch1) == all_windows(store)
    assert epoch0 != epoch1
    assert order(1) == epoch1  # same seed + epoch → same order
    assert order(0, seed=4) != epoch0


def test_set_epoch_reaches_persistent_workers(store):
    def fresh_epoch(epoch: int) -> list:
        dataset = StreamDataset(store, load="rewards", shuffle=16, seed=2)
        dataset.set_epoch(epoch)
        return [key(item) for item in DataLoader(dataset, batch_size=None, num_workers=2)]

    dataset = StreamDataset(store, load="rewards", shuffle=16, seed=2)
    loader = DataLoader(dataset, batch_size=None, num_workers=2, persistent_workers=True)
    epochs = []
    for epoch in range(2):
        dataset.set_epoch(epoch)
        epochs.append([key(item) for item in loader])
    assert epochs == [fresh_epoch(0), fresh_epoch(1)]
    assert epochs[0] != epochs[1]


def test_spawned_workers_follow_set_epoch_over_file_url(store):
    """What remote stores use: spawn start method, persistent workers, a file:// URL."""
    url = f"file://{store}"

    def rewards(batches: list) -> list:
        return [tuple(row) for batch in batches for row in batch["rewards"].tolist()]

    expected = []
    for epoch in range(2):
        reference = StreamDataset(url, load=("rewards", "frames"), shuffle=8, seed=9)
        reference.set_epoch(epoch)
        expected.append(rewards(list(DataLoader(reference, batch_size=4, num_workers=2))))
    assert expected[0] != expected[1]
    dataset = StreamDataset(url, load=("rewards", "frames"), shuffle=8, seed=9)
    loader = DataLoader(dataset, batch_size=4, num_workers=2, persistent_workers=True,
                        multiprocessing_context="spawn", pin_memory=torch.cuda.is_available())
    for epoch in range(2):
        dataset.set_epoch(epoch)
        batches = list(loader)
        assert all(batch["frames"].dtype == torch.uint8 and batch["frames"].shape[1:] == (16, 64, 64, 3)
                   for batch in batches)
        assert rewards(batches) == expected[epoch]


def test_memory_url_streams_the_same_windows(store):
    fsspec.filesystem("memory").put(store, "/stream-test/store", recursive=True)
    local = list(StreamDataset(store, stride=5, shuffle=0))
    remote = list(StreamDataset("memory://stream-test/store", stride=5, shuffle=0))
    assert len(remote) == len(local)
    for a, b in zip(local, remote):
        for field in a:
            torch.testing.assert_close(a[field], b[field], rtol=0, atol=0)


def test_pickled_dataset_keeps_settings_and_epoch(store):
    dataset = StreamDataset(store, load="rewards", shuffle=8, seed=6)
    dataset.set_epoch(3)
    copy = pickle.loads(pickle.dumps(dataset))
    assert [key(item) for item in copy] == [key(item) for item in dataset]


def test_episode_split_streams_only_its_episodes(store):
    split = EpisodeSplit(0.4, salt="test")
    val = StreamDataset(store, load="rewards", episodes=split.val, shuffle=0)
    windows = WindowDataset(store, 16, stride=16, load="rewards", episodes=split.val)
    assert 0 < len(windows) < len(all_windows(store))
    assert [key(item) for item in val] == [key(windows[i]) for i in range(len(windows))]


def test_missing_field_and_missing_shards_are_clear_errors(store, tmp_path):
    with pytest.raises(StoreError, match=rf"{store}: requested field 'latents' is not in this store.*tokenize"):
        StreamDataset(store, load=("latents", "actions"))
    bare = build_store(tmp_path, shards=False)
    with pytest.raises(StoreError, match=rf"{bare}: store has no webdataset shards"):
        StreamDataset(bare)
    with pytest.raises(StoreError, match="shards cannot feed 9 ranks"):
        StreamDataset(store, rank=0, world_size=9)
    with pytest.raises(DreamerDataError, match="need 0 <= rank < world_size"):
        StreamDataset(store, rank=2, world_size=2)


def test_yuv420p_on_array_frames_is_one_clear_error(store):
    """The codec's planes exist only for video-backed frames; this store keeps frames as a zarr array."""
    with pytest.raises(StoreError, match=rf"{store}: frame_format yuv420p needs a video-backed frames field"):
        StreamDataset(store, frame_format="yuv420p")


def test_truncated_shard_names_the_shard(store, tmp_path):
    copy = tmp_path / "store"
    fsspec.filesystem("file").put(store, str(copy), recursive=True)
    shard = copy / "wds" / "shard-000000.tar"
    shard.write_bytes(shard.read_bytes()[:70_000])
    with pytest.raises(StoreError, match=rf"{copy}/wds/shard-000000.tar: unreadable shard"):
        list(StreamDataset(str(copy), shuffle=0))
