"""MinAtar end to end: collect real games, ingest, and check the store against the real environment."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from conftest import read_manifest, run_cli
from dreamer_data.collect.collector import CollectConfig, collect, collect_episode
from dreamer_data.collect.minatar_env import GAMES, minatar_environment
from dreamer_data.collect.minatar_render import palette, render_grids, shown_levels
from dreamer_data.collect.replay import mismatches, replay
from dreamer_data.errors import DreamerDataError
from dreamer_data.ingest import IngestPlan, ingest
from dreamer_data.sources import ReadOptions
from dreamer_data.sources.minatar import MinAtarSource
from dreamer_data.store.reader import StoreReader
from dreamer_model.eval.envs import EnvSettings, frame
from dreamer_model.eval.evaluate import EvalOptions, _settings
from dreamer_model.stores import env_settings

Environment = minatar_environment()  # MinAtar's own class (imported without its GUI libraries)

# seaborn.color_palette("cubehelix", n) × 255, rounded: what MinAtar's own display uses.
SEABORN_CUBEHELIX = {
    4: [[22, 61, 78], [84, 121, 47], [208, 126, 147], [193, 202, 243]],
    10: [[25, 18, 43], [23, 52, 76], [24, 91, 72], [60, 118, 50], [126, 122, 54], [188, 121, 103],
         [212, 134, 175], [202, 169, 231], [194, 210, 243], [214, 240, 239]],
}


def episode(group: zarr.Group, name: str, index: int) -> np.ndarray:
    ends = group["meta/episode_ends"][:]
    start = 0 if index == 0 else int(ends[index - 1])
    return group[f"data/{name}"][start:int(ends[index])]


@pytest.fixture(scope="module")
def games_store(tmp_path_factory):
    """Two short random episodes of every game (sticky actions on), collected and ingested.

    breakout goes through the CLI a user runs; the other games through the same Python functions.
    """
    root = tmp_path_factory.mktemp("minatar")
    stores = {}
    for game in GAMES:
        raw, store = root / f"{game}-raw", root / f"{game}-store"
        if game == "breakout":
            result = run_cli("collect", "minatar", "--game", game, "--episodes", "2", "--out", raw, "--seed", "7",
                             "--max-steps", "60", "--sticky-prob", "0.3")
            assert result.returncode == 0, result.stderr
            result = run_cli("ingest", "minatar", raw, "--out", store)
            assert result.returncode == 0, result.stderr
        else:
            collect(CollectConfig("minatar", seed=7, game=game, max_steps=60, sticky_prob=0.3), raw, episodes=2)
            report = ingest(MinAtarSource(str(raw), ReadOptions()), str(store), IngestPlan())
            assert report.ingested == 2 and not report.failed
        stores[game] = store
    return stores


@pytest.mark.parametrize("game", GAMES)
def test_store_equals_the_real_environment_step_by_step(games_store, game):
    """Replaying the stored actions through MinAtar's own Environment by hand gives the stored rows."""
    store = games_store[game]
    group = zarr.open_group(str(store), mode="r")
    manifest = read_manifest(store)
    assert manifest["observation"]["grid_channels"] == sorted(Environment(game).env.channels,
                                                              key=Environment(game).env.channels.get)
    for index, entry in enumerate(manifest["episodes"]):
        notes = entry["notes"]
        env = Environment(game, sticky_action_prob=notes["sticky_action_prob"])
        env.seed(notes["env_seed"])
        env.reset()
        actions, has_action = episode(group, "actions/discrete", index), episode(group, "has_action", index)
        grids, rewards, terminals, executed = [], [], [], []
        for action in actions[has_action == 1]:
            grids.append(env.state())
            reward, terminal = env.act(int(action))
            rewards.append(reward)
            terminals.append(terminal)
            executed.append(env.last_action)
        grids.append(env.state())
        np.testing.assert_array_equal(episode(group, "obs_grid", index), np.array(grids, np.uint8))
        np.testing.assert_array_equal(episode(group, "rewards", index), np.array(rewards + [0], np.float32))
        np.testing.assert_array_equal(episode(group, "is_terminal", index), np.array(terminals + [False], np.uint8))
        np.testing.assert_array_equal(episode(group, "executed_actions", index)[:-1], executed)
        assert has_action.tolist() == [1] * (len(actions) - 1) + [0]
        assert episode(group, "is_null_action", index).tolist() == [int(a == 0) for a in actions[:-1]] + [1]
        if not terminals[-1]:  # the only other way an episode ends is the 60-step limit
            assert len(actions) == 61 and notes["truncated"] and not notes["terminated"]


def test_sticky_actions_show_in_executed_actions(games_store):
    group = zarr.open_group(str(games_store["freeway"]), mode="r")  # freeway never ends before the limit
    chosen, executed = group["data/actions/discrete"][:], group["data/executed_actions"][:]
    rows = group["data/has_action"][:] == 1
    assert 0 < np.mean(chosen[rows] != executed[rows]) < 0.5  # sticky prob 0.3, random policy


def test_frames_are_the_grid_in_vivid_colours(games_store):
    vivid = palette(10).astype(int)
    assert vivid[0].tolist() == [0, 0, 0]
    assert (vivid[1:].max(axis=1) >= 250).all()  # every object class drawn bright: pixel MSE cannot ignore it
    distances = np.linalg.norm(vivid[:, None] - vivid[None], axis=-1)
    assert distances[~np.eye(11, dtype=bool)].min() > 90  # and distinct from black and from each other
    group = zarr.open_group(str(games_store["seaquest"]), mode="r")
    grids, frames = group["data/obs_grid"][:], group["data/frames"][:]
    assert frames.shape == (len(grids), 64, 64, 3)
    levels = np.max(grids * np.arange(1, 11, dtype=np.uint8), axis=-1)  # highest channel wins
    cells = (np.arange(64) * 10) // 64  # nearest neighbour: pixel row/col → grid cell
    np.testing.assert_array_equal(frames, palette(10)[levels[:, cells][:, :, cells]])
    np.testing.assert_array_equal(render_grids(grids, (64, 64)), frames)


def test_cubehelix_palette_draws_minatar_display_colours(tmp_path, games_store):
    for n, colours in SEABORN_CUBEHELIX.items():
        assert palette(n, "cubehelix").tolist() == [[0, 0, 0]] + colours
    raw = read_manifest(games_store["breakout"])["source"]["uri"]
    out = tmp_path / "cubehelix"
    result = run_cli("ingest", "minatar", raw, "--out", out, "--resolution", "20x20", "--palette", "cubehelix",
                     "--draw-order", "minatar")
    assert result.returncode == 0, result.stderr
    assert read_manifest(out)["observation"]["palette"] == "cubehelix"
    assert read_manifest(out)["observation"]["draw_order"] == "minatar"
    group = zarr.open_group(str(out), mode="r")
    grids, frames = group["data/obs_grid"][:], group["data/frames"][:]
    levels = np.max(grids * np.arange(1, 5, dtype=np.uint8), axis=-1)
    np.testing.assert_array_equal(frames[:, ::2, ::2], palette(4, "cubehelix")[levels])
    # evaluation draws the real environment in the store's palette
    settings = env_settings(read_manifest(out), str(out))
    assert settings["palette"] == "cubehelix" and settings["draw_order"] == "minatar"
    bad = run_cli("ingest", "minatar", raw, "--out", tmp_path / "bad", "--palette", "rainbow")
    assert bad.returncode != 0 and "--palette must be one of vivid, cubehelix" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and not (tmp_path / "bad").exists()


def test_breakout_draws_the_ball_over_bricks_and_trail(tmp_path, games_store):
    """MinAtar starts every breakout episode with the ball inside the bottom brick row (and its trail in the
    same cell), and MinAtar's display rule (highest channel wins) hides it there. The default ``objects``
    order draws the ball over both, so a pixel agent sees what the behaviour policy acted on."""
    store = games_store["breakout"]
    manifest = read_manifest(store)
    assert manifest["observation"]["draw_order"] == "objects"
    group = zarr.open_group(str(store), mode="r")
    grids, frames = group["data/obs_grid"][:], group["data/frames"][:]
    ball = manifest["observation"]["grid_channels"].index("ball")
    starts = np.concatenate(([0], group["meta/episode_ends"][:-1]))
    green = palette(4)[ball + 1]
    for row in range(len(grids)):  # every frame draws the ball in its cell, the first ones included
        (r, c), = np.argwhere(grids[row, :, :, ball])
        assert (frames[row, (64 * r + 32) // 10, (64 * c + 32) // 10] == green).all(), row
    assert all(grids[s, 3, :, 3].all() for s in starts)  # the ball starts among the bricks
    levels = shown_levels(grids, (ball,))
    cells = (np.arange(64) * 10) // 64
    np.testing.assert_array_equal(frames, palette(4)[levels[:, cells][:, :, cells]])
    # evaluation draws the real environment the way the store was drawn
    settings = EnvSettings(**env_settings(manifest, str(store))).checked()
    assert settings.draw_order == "objects"
    np.testing.assert_array_equal(frame(settings, {"obs": grids[starts[0]]}), frames[starts[0]])
    # stores and checkpoints from before draw orders were drawn by MinAtar's rule, and are played that way
    legacy = {**manifest, "observation": {k: v for k, v in manifest["observation"].items() if k != "draw_order"}}
    assert env_settings(legacy, str(store))["draw_order"] == "minatar"
    old_checkpoint = {k: v for k, v in settings.to_dict().items() if k != "draw_order"}
    minatar = _settings(old_checkpoint, EvalOptions(env="minatar"), "old checkpoint")
    assert minatar.draw_order == "minatar"
    assert not (frame(minatar, {"obs": grids[starts[0]]}) == green).all(-1).any()  # the ball hidden, as it was
    bad = run_cli("ingest", "minatar", manifest["source"]["uri"], "--out", tmp_path / "bad", "--draw-order", "top")
    assert bad.returncode != 0 and "--draw-order must be one of objects, minatar" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and not (tmp_path / "bad").exists()


def test_render_resolution_option(tmp_path, games_store):
    raw = read_manifest(games_store["breakout"])["source"]["uri"]
    out = tmp_path / "store80"
    result = run_cli("ingest", "minatar", raw, "--out", out, "--resolution", "80x80")
    assert result.returncode == 0, result.stderr
    frames = zarr.open_group(str(out), mode="r")["data/frames"][:]
    grids = zarr.open_group(str(out), mode="r")["data/obs_grid"][:]
    assert frames.shape[1:] == (80, 80, 3)
    blocks = frames.reshape(len(frames), 10, 8, 10, 8, 3)
    assert (blocks == blocks[:, :, :1, :, :1]).all()  # every grid cell is an 8x8 block of one colour
    levels = shown_levels(grids, (1,))  # the default draw order: breakout's ball (channel 1) over the rest
    np.testing.assert_array_equal(blocks[:, :, 0, :, 0], palette(4)[levels])


def test_replay_from_store_notes_and_a_wrong_seed_is_caught(games_store):
    reader = StoreReader(str(games_store["asterix"]))
    for index, entry in enumerate(reader.episodes):
        recorded = {"obs": reader.episode("obs_grid", index), "rewards": reader.episode("rewards", index),
                    "is_terminal": reader.episode("is_terminal", index)}
        actions, has_action = reader.episode("actions/discrete", index), reader.episode("has_action", index)
        assert mismatches(recorded, replay(entry["notes"], actions, has_action)) == []
    notes = {**reader.episodes[0]["notes"], "env_seed": reader.episodes[0]["notes"]["env_seed"] + 1}
    recorded = {"obs": reader.episode("obs_grid", 0), "rewards": reader.episode("rewards", 0)}
    try:
        problems = mismatches(recorded, replay(notes, reader.episode("actions/discrete", 0),
                                               reader.episode("has_action", 0)))
    except DreamerDataError as error:  # another world may end before the recorded actions do
        problems = [str(error)]
    assert problems


def test_time_limit_is_a_truncation_not_a_terminal():
    config = CollectConfig("minatar", "noisy-scripted", seed=0, game="freeway", max_steps=25).checked()
    rows, info = collect_episode(config, 0)
    assert len(rows["actions"]) == 26 and rows["is_terminal"].sum() == 0
    assert info["truncated"] and not info["terminated"] and info["steps"] == 25


def test_scripted_breakout_beats_random():
    def mean_return(policy: str) -> float:
        config = CollectConfig("minatar", policy, seed=3, game="breakout", max_steps=2000).checked()
        return float(np.mean([collect_episode(config, i)[1]["return"] for i in range(10)]))

    assert mean_return("noisy-scripted") > 3 * mean_return("random")


def test_a_folder_of_collect_runs_ingests_as_one_store(tmp_path):
    """Random and scripted play of one game in one store (the agent benchmark's data): each episode keeps
    its id, rows and policy; runs of another game are refused with one line and no store."""
    raw = tmp_path / "raw"
    for policy, folder, episodes in (("random", "random", 3), ("noisy-scripted", "scripted", 2)):
        result = run_cli("collect", "minatar", "--game", "breakout", "--policy", policy, "--episodes", str(episodes),
                         "--seed", "1", "--max-steps", "40", "--out", raw / folder)
        assert result.returncode == 0, result.stderr
    store = tmp_path / "store"
    result = run_cli("ingest", "minatar", raw, "--out", store, "--resolution", "20x20")
    assert result.returncode == 0, result.stderr
    manifest = read_manifest(store)
    assert [e["id"] for e in manifest["episodes"]] == [f"random/episodes/{i:06d}" for i in range(3)] + \
        [f"scripted/episodes/{i:06d}" for i in range(2)]
    assert [e["notes"]["policy"] for e in manifest["episodes"]] == ["random"] * 3 + ["noisy-scripted"] * 2
    collect_settings = manifest["source"]["settings"]["collect"]
    assert collect_settings["policy"] == "random+noisy-scripted" and collect_settings["game"] == "breakout"
    assert sorted(collect_settings["runs"]) == ["random", "scripted"] and collect_settings["episodes"] == 5
    assert env_settings(manifest, str(store))["max_steps"] == 40  # evaluation plays the runs' shared settings

    alone = tmp_path / "scripted-store"  # the same run ingested on its own: the same rows
    result = run_cli("ingest", "minatar", raw / "scripted", "--out", alone, "--resolution", "20x20")
    assert result.returncode == 0, result.stderr
    mixed, single = StoreReader(str(store)), StoreReader(str(alone))
    for name in ("frames", "obs_grid", "actions/discrete", "rewards", "is_terminal"):
        np.testing.assert_array_equal(mixed.episode(name, 4), single.episode(name, 1))

    result = run_cli("collect", "minatar", "--game", "freeway", "--episodes", "1", "--max-steps", "40",
                     "--out", raw / "freeway")
    assert result.returncode == 0, result.stderr
    refused = tmp_path / "refused"
    result = run_cli("ingest", "minatar", raw, "--out", refused)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith("dreamer-data ingest: error: ")
    assert "differ in more than the behaviour policy" in errors[0] and "game 'freeway' vs 'breakout'" in errors[0]
    assert not (refused / "manifest.json").exists()
