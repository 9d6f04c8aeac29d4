"""WindowDataset: exact windows of real stores (ingested MineRL episodes), boundaries, field
selection, fsspec URLs, pickling and DataLoader workers."""

from __future__ import annotations

import pickle
from pathlib import Path

import fsspec
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import dreamer_data
from dreamer_data.errors import DreamerDataError, StoreError
from dreamer_data.ingest import IngestPlan, ingest
from dreamer_data.loaders import WindowDataset, WindowSampler
from dreamer_data.sources import ReadOptions, source_class
from dreamer_data.store.fields import FieldSpec
from dreamer_data.store.location import StoreLocation
from dreamer_data.store.manifest import new_manifest
from dreamer_data.store.writer import StoreWriter
from makers import write_minerl_extracted

LENGTHS = (40, 7, 33, 21)  # the 7-frame episode is shorter than any default window


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("minerl-raw")
    for index, length in enumerate(LENGTHS):
        write_minerl_extracted(folder / f"ep{index}", length, seed=index)
    return folder


@pytest.fixture(scope="module")
def store(raw, tmp_path_factory) -> str:
    """The raw episodes ingested with 8-frame chunks, so windows straddle zarr chunks."""
    out = str(tmp_path_factory.mktemp("store") / "store")
    source = source_class("minerl")(str(raw), ReadOptions(frame_chunk_rows=8))
    assert not ingest(source, out, IngestPlan(workers=0)).failed
    return out


def source(raw: Path, episode: str) -> dict[str, np.ndarray]:
    folder = raw / episode
    return {"frames": np.load(folder / "frames.npy"), "rewards": np.load(folder / "rewards.npy")}


@pytest.mark.parametrize("cache_bytes", [256 * 2**20, 0])  # 0: every read decodes its chunks again
def test_every_window_is_the_slice_of_its_source_episode(raw, store, cache_bytes):
    dataset = WindowDataset(store, 16, stride=3, cache_bytes=cache_bytes)
    expected = [(f"ep{e}", start) for e, length in enumerate(LENGTHS) for start in range(0, length - 15, 3)]
    assert [dataset.locate(i) for i in range(len(dataset))] == expected
    for i, (episode, start) in enumerate(expected):
        item = dataset[i]
        src = source(raw, episode)
        np.testing.assert_array_equal(item["frames"].numpy(), src["frames"][start:start + 16])
        np.testing.assert_array_equal(item["rewards"].numpy(), src["rewards"][start:start + 16])
        assert item["is_first"].tolist() == [start == 0] + [False] * 15
        assert item["frames"].dtype == torch.uint8 and item["frames"].shape == (16, 64, 64, 3)


def test_frame_step_takes_every_kth_frame(raw, store):
    dataset = WindowDataset(store, 5, stride=7, frame_step=3)  # spans 13 frames
    assert len(dataset) == sum((length - 13) // 7 + 1 for length in LENGTHS if length >= 13)
    for i in range(len(dataset)):
        episode, start = dataset.locate(i)
        np.testing.assert_array_equal(dataset[i]["frames"].numpy(),
                                      source(raw, episode)["frames"][start:start + 13:3])


def test_cross_episode_windows_flag_every_episode_start(raw, store):
    frames = np.concatenate([source(raw, f"ep{e}")["frames"] for e in range(len(LENGTHS))])
    starts = set(np.cumsum((0,) + LENGTHS[:-1]).tolist())
    dataset = WindowDataset(store, 16, cross_episodes=True, load="frames")
    assert len(dataset) == sum(LENGTHS) - 15
    for i in range(len(dataset)):
        item = dataset[i]
        np.testing.assert_array_equal(item["frames"].numpy(), frames[i:i + 16])
        assert item["is_first"].tolist() == [i + t in starts for t in range(16)]
    assert dataset[35]["is_first"].nonzero().flatten().tolist() == [5, 12]  # 7-frame ep1 inside, ep2 begins


def test_chunk_cache_stays_within_its_budget_and_serves_copies(raw, store):
    dataset = WindowDataset(store, 16, load=("frames", "rewards"), cache_bytes=400_000)  # frames: 8-row chunks
    for i in range(len(dataset)):
        episode, start = dataset.locate(i)
        item = dataset[i]
        np.testing.assert_array_equal(item["frames"].numpy(), source(raw, episode)["frames"][start:start + 16])
        cache = dataset._cache
        assert cache.bytes == sum(chunk.nbytes for chunk in cache.chunks.values()) <= 400_000
        for tensor in item.values():
            tensor.zero_()  # a caller scribbling on its item must not reach the cache
    assert len(cache.chunks) < 101 // 8
    episode, start = dataset.locate(len(dataset) - 1)
    again = dataset[len(dataset) - 1]
    for field in ("frames", "rewards"):
        np.testing.assert_array_equal(again[field].numpy(), source(raw, episode)[field][start:start + 16])


def test_load_selects_fields_and_frames_can_be_float(store):
    assert set(WindowDataset(store, 4, load="frames")[0]) == {"frames", "is_first"}
    actions = WindowDataset(store, 4, load=("actions", "rewards"))[5]
    assert set(actions) == {"actions/buttons", "actions/camera", "actions/camera_deg", "rewards", "is_first"}
    as_uint8 = WindowDataset(store, 4, load="frames")[9]["frames"]
    as_float = WindowDataset(store, 4, load="frames", frame_dtype="float32")[9]["frames"]
    assert as_float.dtype == torch.float32
    torch.testing.assert_close(as_float, as_uint8.float() / 255)


def test_missing_field_error_names_store_and_field(store):
    with pytest.raises(StoreError, match=rf"{store}: requested field 'latents' is not in this store.*tokenize"):
        WindowDataset(store, load=("latents", "actions"))


def test_bad_requests_fail_with_one_clear_error(store):
    with pytest.raises(StoreError, match="no window of 41 frames fits"):
        WindowDataset(store, 41)
    with pytest.raises(DreamerDataError, match="window stride must be a positive integer"):
        WindowDataset(store, stride=0)
    with pytest.raises(DreamerDataError, match="no episode 'ep9'"):
        WindowDataset(store, episodes=["ep0", "ep9"])
    with pytest.raises(DreamerDataError, match="frame_dtype must be one of"):
        WindowDataset(store, frame_dtype="int32")
    with pytest.raises(StoreError, match="not a dreamer store"):
        WindowDataset(str(Path(store).parent / "nowhere"))


def test_episode_selection_keeps_windows_inside_chosen_episodes(store):
    dataset = WindowDataset(store, 8, episodes=["ep2", "ep3"])
    assert {dataset.locate(i)[0] for i in range(len(dataset))} == {"ep2", "ep3"}
    assert len(dataset) == (33 - 7) + (21 - 7)
    only_val = WindowDataset(store, 8, episodes=lambda episode_id: episode_id.endswith("3"))
    assert {only_val.locate(i)[0] for i in range(len(only_val))} == {"ep3"}


def test_file_and_memory_urls_read_the_same_windows(store):
    local = WindowDataset(store, 16, stride=5)
    memory_root = "memory://window-test/store"
    fsspec.filesystem("memory").put(store, "/window-test/store", recursive=True)
    for url in (f"file://{store}", memory_root):
        remote = WindowDataset(url, 16, stride=5)
        assert len(remote) == len(local)
        for i in range(0, len(local), 3):
            for field, tensor in local[i].items():
                torch.testing.assert_close(remote[i][field], tensor, rtol=0, atol=0)


def test_public_names_are_the_loader_classes():
    assert dreamer_data.WindowDataset is WindowDataset
    assert dreamer_data.StreamDataset.__module__ == "dreamer_data.loaders.stream"


def test_pickles_without_an_open_handle_and_reads_the_same(store):
    dataset = WindowDataset(store, 16, stride=2)
    before = dataset[4]
    copy = pickle.loads(pickle.dumps(dataset))
    assert copy._cache is None
    for field, tensor in before.items():
        torch.testing.assert_close(copy[4][field], tensor, rtol=0, atol=0)


def test_dataloader_with_two_persistent_workers_matches_direct_reads(store):
    dataset = WindowDataset(store, 16, load=("frames", "actions", "rewards"))
    sampler = WindowSampler(dataset, seed=7, num_samples=24)
    loader = DataLoader(dataset, batch_size=6, sampler=sampler, num_workers=2, persistent_workers=True,
                        pin_memory=torch.cuda.is_available(), multiprocessing_context=dataset.multiprocessing_context)
    epochs = [list(loader) for _ in range(2)]  # the second epoch reuses the same (persistent) workers
    assert dataset._cache is None  # the main process never opened the store; each worker opened its own
    indices = list(sampler)
    for batches in epochs:
        assert len(batches) == 4
        for b, batch in enumerate(batches):
            for row in range(6):
                for field, tensor in dataset[indices[b * 6 + row]].items():
                    torch.testing.assert_close(batch[field][row], tensor, rtol=0, atol=0)


class ArrayEpisode:
    """An episode of synthetic rows in the shape StoreWriter.commit takes."""

    def __init__(self, episode_id: str, rows: dict[str, np.ndarray]):
        self.rows = rows
        self.length = len(next(iter(rows.values())))
        self.info = {"id": episode_id, "source_file": f"synthetic/{episode_id}", "checksums": {}, "notes": {}}

    def chunks(self, name: str):
        yield self.rows[name]

    def remove(self) -> None:
        pass


def test_latents_and_actions_only_for_the_dynamics_trainer():
    """A store with latents (as `tokenize` leaves it) on memory://: latents + actions, no pixels read."""
    fields = {spec.name: spec for spec in (
        FieldSpec("frames", "uint8", (8, 8, 3), 16), FieldSpec("latents", "float16", (16, 32), 16),
        FieldSpec("actions/discrete", "int64", (), 64), FieldSpec("rewards", "float32", (), 64))}
    manifest = new_manifest(source={"kind": "synthetic"}, observation={"height": 8, "width": 8, "channels": 3},
                            actions={"discrete": {"kind": "categorical", "size": 5}}, fields=fields,
                            rewards_present=True)
    writer = StoreWriter(StoreLocation("memory://latents-test/store"), manifest)
    rng = np.random.default_rng(0)
    episodes = {}
    for name, length in (("a", 30), ("b", 19)):
        episodes[name] = {"frames": rng.integers(0, 256, (length, 8, 8, 3), dtype=np.uint8),
                          "latents": rng.standard_normal((length, 16, 32)).astype(np.float16),
                          "actions/discrete": rng.integers(0, 5, length),
                          "rewards": rng.random(length, dtype=np.float32)}
        writer.commit(ArrayEpisode(name, episodes[name]))
    writer.flush()
    dataset = WindowDataset("memory://latents-test/store", 16, stride=2, load=("latents", "actions"))
    assert len(dataset) == 8 + 2
    for i in range(len(dataset)):
        episode, start = dataset.locate(i)
        item = dataset[i]
        assert set(item) == {"latents", "actions/discrete", "is_first"}
        assert item["latents"].dtype == torch.float16 and item["latents"].shape == (16, 16, 32)
        np.testing.assert_array_equal(item["latents"].numpy(), episodes[episode]["latents"][start:start + 16])
        np.testing.assert_array_equal(item["actions/discrete"].numpy(),
                                      episodes[episode]["actions/discrete"][start:start + 16])
