"""Episode split (stable by id) and WindowSampler (seeded, resumable, rank-split, episode weights)."""

from __future__ import annotations

import hashlib
from collections import Counter
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
from torch.utils.data import DataLoader

from dreamer_data.errors import DreamerDataError
from dreamer_data.ingest import IngestPlan, ingest
from dreamer_data.loaders import EpisodeSplit, WindowDataset, WindowSampler
from dreamer_data.loaders.sampling import SAMPLE_BLOCK
from dreamer_data.sources import ReadOptions, source_class
from makers import write_minerl_extracted

LENGTHS = (40, 7, 33, 21, 64)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("sampling")
    for index, length in enumerate(LENGTHS):
        write_minerl_extracted(root / "raw" / f"ep{index}", length, seed=index)
    out = str(root / "store")
    assert not ingest(source_class("minerl")(str(root / "raw"), ReadOptions()), out, IngestPlan(workers=0)).failed
    return out


def test_split_depends_on_the_id_alone():
    ids = [f"player-{i:03d}" for i in range(200)]
    split = EpisodeSplit(0.2)
    val = [i for i in ids if split.val(i)]
    # the documented rule, restated: validation iff the first 8 bytes of sha256(salt NUL id), read as a
    # big-endian fraction of 2^64, fall below val_fraction (a change would move episodes in old runs)
    def documented(episode_id: str, fraction: float, salt: str = "") -> bool:
        digest = hashlib.sha256(f"{salt}\0{episode_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") < fraction * 2**64

    assert val == [i for i in ids if documented(i, 0.2)]
    assert [i for i in ids if EpisodeSplit(0.2, salt="other").val(i)] == [i for i in ids if documented(i, 0.2, "other")]
    assert val[:5] == ["player-005", "player-019", "player-025", "player-030", "player-031"]
    assert [i for i in reversed(ids) if split.val(i)] == val[::-1]
    assert [i for i in ids[::7] if split.val(i)] == [i for i in val if i in ids[::7]]
    assert all(split.train(i) != split.val(i) for i in ids)
    assert 0.15 < len(val) / len(ids) < 0.25
    assert [i for i in ids if EpisodeSplit(0.2, salt="other").val(i)] != val
    with pytest.raises(DreamerDataError, match="val_fraction must be in"):
        EpisodeSplit(1.5)


def test_split_plugs_into_a_dataset(store):
    split = EpisodeSplit(0.5)
    train = WindowDataset(store, 8, episodes=split.train)
    val = WindowDataset(store, 8, episodes=split.val)
    train_ids = {train.locate(i)[0] for i in range(len(train))}
    val_ids = {val.locate(i)[0] for i in range(len(val))}
    assert train_ids and val_ids and not train_ids & val_ids
    assert len(train) + len(val) == len(WindowDataset(store, 8))


def test_same_seed_same_windows_other_seed_other_windows(store):
    dataset = WindowDataset(store, 16)
    first = list(islice(WindowSampler(dataset, seed=11), 500))
    assert list(islice(WindowSampler(dataset, seed=11), 500)) == first
    assert list(islice(WindowSampler(dataset, seed=12), 500)) != first
    assert set(first) <= set(range(len(dataset))) and len(set(first)) > len(dataset) // 2


def test_resume_from_any_sample_continues_the_same_stream(store):
    dataset = WindowDataset(store, 16)
    stream = list(islice(WindowSampler(dataset, seed=3), 2 * SAMPLE_BLOCK + 100))
    for start in (1, 700, SAMPLE_BLOCK - 1, SAMPLE_BLOCK + 5):
        resumed = list(islice(WindowSampler(dataset, seed=3, start=start), 300))
        assert resumed == stream[start:start + 300]


def test_resumed_dataloader_yields_the_same_batches_from_that_step(store):
    dataset = WindowDataset(store, 16, load="rewards")
    batch_size, steps, resume_at = 4, 10, 6

    def batches(start_step: int) -> list:
        sampler = WindowSampler(dataset, seed=5, start=start_step * batch_size, num_samples=steps * batch_size)
        return [batch["rewards"].tolist() for batch in DataLoader(dataset, batch_size=batch_size, sampler=sampler)]

    full = batches(0)
    assert len(full) == steps
    assert batches(resume_at) == full[resume_at:]


@pytest.mark.parametrize("world_size", [2, 3])
def test_ranks_interleave_one_global_stream(store, world_size):
    dataset = WindowDataset(store, 16)
    global_stream = list(islice(WindowSampler(dataset, seed=8), 600))
    for rank in range(world_size):
        local = list(islice(WindowSampler(dataset, seed=8, rank=rank, world_size=world_size), 600 // world_size))
        assert local == global_stream[rank::world_size]
        resumed = list(islice(WindowSampler(dataset, seed=8, rank=rank, world_size=world_size, start=50), 20))
        assert resumed == global_stream[rank::world_size][50:70]


def test_episode_weights_set_how_often_episodes_are_drawn(store):
    dataset = WindowDataset(store, 16)
    windows = Counter(dataset.locate(i)[0] for i in range(len(dataset)))  # ep1 has none
    weights = {"ep0": 0.0, "ep2": 4.0}
    mass = {episode: count * weights.get(episode, 1.0) for episode, count in windows.items()}
    draws = Counter(dataset.locate(i)[0]
                    for i in islice(WindowSampler(dataset, seed=1, episode_weights=weights), 40_000))
    assert draws["ep0"] == 0
    for episode, share in mass.items():
        assert abs(draws[episode] / 40_000 - share / sum(mass.values())) < 0.01, episode


def test_weights_follow_the_episode_a_crossing_window_starts_in(store):
    dataset = WindowDataset(store, 16, cross_episodes=True)
    draws = Counter(dataset.locate(i)[0]
                    for i in islice(WindowSampler(dataset, seed=2, episode_weights={"ep1": 1000.0}), 2000))
    assert draws["ep1"] / 2000 > 0.9  # ep1 has only 7 frames but 7 windows start in it


def test_start_share_draws_episode_openings(store):
    """start_share of the draws take an episode's first window (episodes by weight); the rest stay uniform,
    and the stream stays seeded and resumable."""
    dataset = WindowDataset(store, 16)
    default = list(islice(WindowSampler(dataset, seed=4), 3000))
    assert list(islice(WindowSampler(dataset, seed=4, start_share=0.0), 3000)) == default
    n = 20_000
    windows = Counter(dataset.locate(i)[0] for i in range(len(dataset)))  # ep1 (7 frames) has none
    draws = [dataset.locate(i) for i in islice(WindowSampler(dataset, seed=4, start_share=0.4), n)]
    openings = Counter(episode for episode, offset in draws if offset == 0)
    uniform_openings = len(windows) / len(dataset)  # one window per episode starts at its first frame
    assert abs(sum(openings.values()) / n - (0.4 + 0.6 * uniform_openings)) < 0.02
    for episode, count in windows.items():  # the openings spread evenly over the episodes, whatever their length
        expected = 0.4 / len(windows) + 0.6 / len(dataset)
        assert abs(openings[episode] / n - expected) < 0.015, episode
    weighted = [dataset.locate(i) for i in islice(WindowSampler(dataset, seed=4, start_share=1.0,
                                                                episode_weights={"ep0": 0.0, "ep2": 3.0}), 2000)]
    assert all(offset == 0 for _, offset in weighted) and "ep0" not in {episode for episode, _ in weighted}
    assert abs(Counter(episode for episode, _ in weighted)["ep2"] / 2000 - 3 / 5) < 0.05
    stream = list(islice(WindowSampler(dataset, seed=4, start_share=0.4), SAMPLE_BLOCK + 200))
    resumed = list(islice(WindowSampler(dataset, seed=4, start_share=0.4, start=SAMPLE_BLOCK - 50), 250))
    assert resumed == stream[SAMPLE_BLOCK - 50:]
    with pytest.raises(DreamerDataError, match=r"start_share must be in \[0, 1\], got 1.5"):
        WindowSampler(dataset, start_share=1.5)


def test_bad_weights_and_lengths_are_clear_errors(store):
    dataset = WindowDataset(store, 16)
    with pytest.raises(DreamerDataError, match="names 'ep7', which is not in this store"):
        WindowSampler(dataset, episode_weights={"ep7": 2.0})
    with pytest.raises(DreamerDataError, match="must be finite and >= 0"):
        WindowSampler(dataset, episode_weights={"ep0": -1.0})
    with pytest.raises(DreamerDataError, match="every window has weight 0"):
        WindowSampler(dataset, episode_weights={f"ep{i}": 0.0 for i in range(len(LENGTHS))})
    assert len(WindowSampler(dataset, num_samples=100, start=30)) == 70
    assert len(list(WindowSampler(dataset, num_samples=100, start=30))) == 70
    with pytest.raises(TypeError, match="pass num_samples"):
        len(WindowSampler(dataset))
