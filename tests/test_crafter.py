"""Crafter end to end: collect real episodes, ingest them, and check the store against the real game."""

from __future__ import annotations

import json

import crafter
import numpy as np
import pytest
import zarr

from conftest import read_manifest, run_cli
from dreamer_data.collect.collector import CollectConfig, collect_episode
from dreamer_data.collect.crafter_env import (ACHIEVEMENTS, INVENTORY_ITEMS, OBJECT_IDS, SEMANTIC_CLASSES,
                                             DeterministicCrafter)
from dreamer_data.collect.replay import mismatches, replay
from dreamer_data.scores import crafter_score, episode_unlocks, success_rates
from dreamer_data.errors import DreamerDataError
from dreamer_data.store.reader import StoreReader
from dreamer_data.store.summary import summarize

HEALTH = INVENTORY_ITEMS.index("health")


@pytest.fixture(scope="module")
def crafter_store(tmp_path_factory):
    """Three random-policy episodes of up to 200 steps, collected on 2 workers, ingested by the CLI."""
    root = tmp_path_factory.mktemp("crafter")
    raw, store = root / "raw", root / "store"
    result = run_cli("collect", "crafter", "--episodes", "3", "--out", raw, "--seed", "1", "--workers", "2",
                     "--max-steps", "200")
    assert result.returncode == 0, result.stderr
    result = run_cli("ingest", "crafter", raw, "--out", store)
    assert result.returncode == 0, result.stderr
    return store


def rows_of(group: zarr.Group, index: int) -> dict[str, np.ndarray]:
    ends = group["meta/episode_ends"][:]
    start, end = (0 if index == 0 else int(ends[index - 1])), int(ends[index])
    names = ("frames", "actions/discrete", "rewards", "is_terminal", "has_action", "is_null_action", "achievements",
             "inventory", "semantic")
    return {name: group[f"data/{name}"][start:end] for name in names if name in group["data"]}


def tile_ids(env: DeterministicCrafter) -> list[list[int]]:
    """The 9x7 view's ids, read tile by tile as Crafter's LocalView places them (world cell
    player + (column, row) - (4, 3) at tile (row, column); 0 outside the world)."""
    world, (px, py) = env._sem_view(), env._player.pos
    return [[int(world[px + column - 4, py + row - 3]) if 0 <= px + column - 4 < 64 and 0 <= py + row - 3 < 64 else 0
             for column in range(9)] for row in range(7)]


def test_store_equals_the_real_game_step_by_step(crafter_store):
    """Stepping Crafter by hand with the stored actions gives the stored frames, rewards, flags, tile ids."""
    group = zarr.open_group(str(crafter_store), mode="r")
    manifest = read_manifest(crafter_store)
    assert manifest["observation"]["achievements"] == list(ACHIEVEMENTS)
    assert manifest["observation"]["semantic_classes"] == list(SEMANTIC_CLASSES)
    assert manifest["actions"]["discrete"]["names"][:2] == ["noop", "move_left"]
    endings = set()
    for index, entry in enumerate(manifest["episodes"]):
        notes, rows = entry["notes"], rows_of(group, index)
        env = DeterministicCrafter(seed=notes["env_seed"], length=notes["length"])
        frames, rewards, terminals, unlocked, inventories = [env.reset()], [], [], [], []
        tiles = [tile_ids(env)]
        counts = dict.fromkeys(ACHIEVEMENTS, 0)
        inventories.append([9, 9, 9, 9] + [0] * 12)
        for action in rows["actions/discrete"][rows["has_action"] == 1]:
            frame, reward, done, info = env.step(int(action))
            frames.append(frame)
            rewards.append(reward)
            terminals.append(info["discount"] == 0)
            unlocked.append([info["achievements"][name] - counts[name] for name in ACHIEVEMENTS])
            counts = info["achievements"]
            inventories.append([info["inventory"][name] for name in INVENTORY_ITEMS])
            tiles.append(tile_ids(env))
        assert done
        np.testing.assert_array_equal(rows["frames"], np.array(frames))
        np.testing.assert_array_equal(rows["rewards"], np.array(rewards + [0], np.float32))
        np.testing.assert_array_equal(rows["is_terminal"], np.array(terminals + [False], np.uint8))
        np.testing.assert_array_equal(rows["achievements"], np.array(unlocked + [[0] * 22], np.uint8))
        np.testing.assert_array_equal(rows["inventory"], np.array(inventories, np.uint8))
        np.testing.assert_array_equal(rows["semantic"], np.array(tiles, np.uint8))
        assert (rows["semantic"][:, 3, 4] == OBJECT_IDS["player"]).all()  # the view is centred on the player
        assert rows["has_action"].tolist() == [1] * len(rewards) + [0]
        actions = rows["actions/discrete"]
        assert rows["is_null_action"].tolist() == [int(a == 0) for a in actions[:-1]] + [1]
        endings.add("terminated" if terminals[-1] else "truncated")
        assert notes["terminated"] == terminals[-1] and notes["truncated"] == (not terminals[-1])
        assert notes["truncated"] == (len(rewards) == 200)
    assert endings == {"terminated", "truncated"}  # seed 1 gives both a death and a time-limit cut


def test_replay_from_store_notes(crafter_store):
    """The replay function rebuilds each episode in the real game from its manifest notes alone."""
    reader = StoreReader(str(crafter_store))
    for index, entry in enumerate(reader.episodes):
        recorded = {"frames": reader.episode("frames", index), "rewards": reader.episode("rewards", index),
                    "is_terminal": reader.episode("is_terminal", index),
                    "achievements": reader.episode("achievements", index),
                    "inventory": reader.episode("inventory", index),
                    "semantic": reader.episode("semantic", index)}
        replayed = replay(entry["notes"], reader.episode("actions/discrete", index),
                          reader.episode("has_action", index))
        assert mismatches(recorded, replayed) == []
    altered = reader.episode("actions/discrete", 0).copy()
    altered[:20] = 5  # 'do' instead of the recorded first 20 actions
    try:
        problems = mismatches({"frames": reader.episode("frames", 0)},
                              replay(reader.episodes[0]["notes"], altered, reader.episode("has_action", 0)))
    except DreamerDataError as error:  # an altered episode may also end at another step
        problems = [str(error)]
    assert problems


def test_achievement_flags_rebuild_crafter_reward(crafter_store):
    """reward(t) = first unlocks at t + health change / 10: the flags carry the full task signal."""
    group = zarr.open_group(str(crafter_store), mode="r")
    for index in range(group["meta/episode_ends"].shape[0]):
        rows = rows_of(group, index)
        first = np.zeros_like(rows["achievements"])
        seen = np.cumsum(rows["achievements"] > 0, axis=0)
        first[(rows["achievements"] > 0) & (seen == 1)] = 1
        health = rows["inventory"][:, HEALTH].astype(np.float32)
        expected = first[:-1].sum(1) + np.diff(health) / 10
        np.testing.assert_allclose(rows["rewards"][:-1], expected, atol=1e-6)


def test_inspect_shows_achievement_counts_and_returns(crafter_store):
    reader = StoreReader(str(crafter_store))
    summary = summarize(reader)
    from_notes = {name: sum(name in e["notes"]["achievements_unlocked"] for e in reader.episodes)
                  for name in ACHIEVEMENTS}
    assert summary["achievements"]["episodes"] == from_notes
    assert sum(from_notes.values()) > 0
    returns = [e["notes"]["return"] for e in reader.episodes]
    assert summary["returns"]["mean"] == pytest.approx(np.mean(returns), abs=1e-5)
    result = run_cli("inspect", crafter_store)
    assert result.returncode == 0, result.stderr
    assert "Crafter score" in result.stdout and "return" in result.stdout
    assert json.loads(run_cli("inspect", crafter_store, "--json").stdout)["episodes"][0]["notes"]["policy"] == "random"


def test_crafter_score_is_the_papers_geometric_mean():
    assert crafter_score(np.full(22, 100.0)) == pytest.approx(100.0)
    assert crafter_score(np.zeros(22)) == 0.0
    rates = np.array([50.0, 2.0] + [0.0] * 20)
    assert crafter_score(rates) == pytest.approx(np.exp(np.mean(np.log(1 + rates))) - 1)
    flags = np.zeros((5, 22), np.uint8)
    flags[1, 3] = flags[3, 3] = flags[4, 0] = 1  # episodes: rows [0, 2), [2, 5)
    unlocked = episode_unlocks(flags, np.array([2, 5]))
    assert unlocked.tolist()[0][3] and unlocked.tolist()[1][3] and unlocked.tolist()[1][0]
    assert success_rates(unlocked)[[0, 3, 5]].tolist() == [50.0, 100.0, 0.0]


def test_crafters_own_recorder_episodes_are_shifted_into_our_convention(tmp_path):
    """crafter.Recorder stores the action that led to each frame; ingest rows pair frame t with action t."""
    env = crafter.Recorder(DeterministicCrafter(seed=3, length=80), tmp_path / "recorded", save_stats=False,
                           save_video=False, save_episode=True)
    rng = np.random.default_rng(0)
    frames, actions, rewards, discounts, counts, inventories = [env.reset()], [], [], [], [], []
    done = False
    while not done:
        actions.append(int(rng.integers(17)))
        frame, reward, done, info = env.step(actions[-1])
        frames.append(frame)
        rewards.append(reward)
        discounts.append(info["discount"])
        counts.append([info["achievements"][name] for name in ACHIEVEMENTS])
        inventories.append([info["inventory"][name] for name in INVENTORY_ITEMS])
    store = tmp_path / "store"
    result = run_cli("ingest", "crafter", tmp_path / "recorded", "--out", store)
    assert result.returncode == 0, result.stderr
    group = zarr.open_group(str(store), mode="r")
    rows = rows_of(group, 0)
    np.testing.assert_array_equal(rows["frames"], np.array(frames))
    np.testing.assert_array_equal(rows["actions/discrete"], actions + [0])
    np.testing.assert_array_equal(rows["rewards"], np.array(rewards + [0], np.float32))
    np.testing.assert_array_equal(rows["is_terminal"], [int(d == 0) for d in discounts] + [0])
    np.testing.assert_array_equal(rows["achievements"], np.diff(np.array([[0] * 22] + counts), axis=0).tolist()
                                  + [[0] * 22])
    np.testing.assert_array_equal(rows["inventory"], [[9, 9, 9, 9] + [0] * 12] + inventories)
    notes = read_manifest(store)["episodes"][0]["notes"]
    assert notes["layout"] == "crafter-recorder" and not notes["replayable"] and notes["steps"] == len(actions)
    assert "semantic" not in rows  # the recorder saves no tile ids: the store has no such field


def test_scripted_policy_chops_wood_and_makes_a_pickaxe():
    """noisy-scripted reaches the issue's goals (wood → table → wooden pickaxe) in a short episode."""
    config = CollectConfig("crafter", "noisy-scripted", seed=1, max_steps=300).checked()
    rows, info = collect_episode(config, 0)
    for goal in ("collect_wood", "place_table", "make_wood_pickaxe"):
        assert goal in info["achievements_unlocked"], info["achievements_unlocked"]
    assert info["policy"] == "noisy-scripted" and info["epsilon"] == 0.1


def test_a_folder_of_collect_runs_ingests_as_one_store(tmp_path):
    """raw/random + raw/scripted (two behaviour policies) → one store, as for MinAtar; it was read as a
    folder of Crafter recorder episodes and failed every episode."""
    for policy, seed in (("random", 1), ("noisy-scripted", 2)):
        result = run_cli("collect", "crafter", "--episodes", "2", "--out", tmp_path / "raw" / policy, "--seed",
                         str(seed), "--policy", policy, "--max-steps", "60")
        assert result.returncode == 0, result.stderr
    result = run_cli("ingest", "crafter", tmp_path / "raw", "--out", tmp_path / "store")
    assert result.returncode == 0, result.stderr
    manifest = read_manifest(tmp_path / "store")
    assert [e["id"] for e in manifest["episodes"]] == [f"{p}/episodes/{i:06d}" for p in ("noisy-scripted", "random")
                                                     for i in range(2)]
    assert not manifest["failed"] and manifest["source"]["settings"]["collect"]["policy"] == "noisy-scripted+random"
    assert "semantic" in manifest["fields"]
