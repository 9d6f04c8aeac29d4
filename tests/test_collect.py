"""The collector: deterministic in --seed whatever the worker count, atomic and resumable per episode."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import cli_command, leftovers, run_cli
from dreamer_data.collect.collector import CollectConfig, collect, episode_seeds
from dreamer_data.collect.raw import read_episode, read_run, write_episode
from dreamer_data.errors import DreamerDataError, EpisodeError
from dreamer_data.ingest import IngestPlan, ingest
from dreamer_data.sources import ReadOptions
from dreamer_data.sources.crafter import CrafterSource
from dreamer_data.sources.minatar import MinAtarSource

BREAKOUT = CollectConfig("minatar", "noisy-scripted", seed=11, game="breakout", max_steps=200)


def load_folder(raw: Path, observation: str = "obs") -> dict[str, tuple[dict, dict]]:
    return {p.name: read_episode(p, str(p), observation) for p in sorted((raw / "episodes").glob("*.npz"))}


def assert_same_episodes(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for name in a:
        (rows_a, info_a), (rows_b, info_b) = a[name], b[name]
        assert info_a == info_b, name
        assert sorted(rows_a) == sorted(rows_b)
        for key in rows_a:
            np.testing.assert_array_equal(rows_a[key], rows_b[key], err_msg=f"{name}:{key}")


def test_same_seed_same_episodes_whatever_the_worker_count(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    collect(BREAKOUT, one, episodes=6, workers=1)
    collect(BREAKOUT, two, episodes=6, workers=2)
    assert_same_episodes(load_folder(one), load_folder(two))
    other = tmp_path / "other"
    collect(CollectConfig(**{**BREAKOUT.__dict__, "seed": 12}), other, episodes=6)
    first = load_folder(one)["000000.npz"][0]["actions"]
    assert not np.array_equal(first, load_folder(other)["000000.npz"][0]["actions"])


def test_crafter_episodes_are_deterministic_across_processes(tmp_path):
    config = CollectConfig("crafter", "noisy-scripted", seed=2, max_steps=40)
    collect(config, tmp_path / "a", episodes=2, workers=2)
    collect(config, tmp_path / "b", episodes=2, workers=1)
    assert_same_episodes(load_folder(tmp_path / "a", "frames"), load_folder(tmp_path / "b", "frames"))


def test_episode_seeds_depend_only_on_seed_and_index():
    seeds = [episode_seeds(3, i) for i in range(50)]
    assert len({s for pair in seeds for s in pair}) == 100  # all distinct
    assert all(0 <= s < 2**32 for pair in seeds for s in pair)
    assert episode_seeds(3, 7) == seeds[7] and episode_seeds(4, 7) != seeds[7]


def test_rerun_resumes_grows_and_cleans_half_written_files(tmp_path):
    raw, reference = tmp_path / "raw", tmp_path / "reference"
    collect(BREAKOUT, reference, episodes=5)
    report = collect(BREAKOUT, raw, episodes=3)
    assert (report.collected, report.skipped) == (3, 0)
    kept = (raw / "episodes" / "000000.npz").stat().st_mtime_ns
    (raw / "episodes" / "000001.npz").unlink()
    (raw / "episodes" / ".000003.npz.tmp-999").write_bytes(b"half an episode")
    report = collect(BREAKOUT, raw, episodes=5)
    assert (report.collected, report.skipped) == (3, 2)
    assert (raw / "episodes" / "000000.npz").stat().st_mtime_ns == kept
    assert leftovers(raw) == []
    assert read_run(raw)["episodes"] == 5
    assert_same_episodes(load_folder(raw), load_folder(reference))


def test_rerun_with_other_settings_is_refused(tmp_path):
    collect(BREAKOUT, tmp_path, episodes=1)
    with pytest.raises(DreamerDataError, match=r"collect\.json.*seed 11 → 12"):
        collect(CollectConfig(**{**BREAKOUT.__dict__, "seed": 12}), tmp_path, episodes=1)


def test_killed_collect_resumes_to_the_same_episodes(tmp_path):
    raw, reference = tmp_path / "raw", tmp_path / "reference"
    args = ["collect", "minatar", "--game", "freeway", "--episodes", "30", "--policy", "noisy-scripted",
            "--seed", "4", "--workers", "2", "--max-steps", "300"]
    process = subprocess.Popen([*cli_command(), *args, "--out", str(raw)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    while process.poll() is None and not list((raw / "episodes").glob("0*.npz")):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert run_cli(*args, "--out", raw).returncode == 0
    assert run_cli(*args, "--out", reference).returncode == 0
    assert_same_episodes(load_folder(raw), load_folder(reference))
    assert leftovers(raw) == []


def test_cli_reports_bad_settings_in_one_line(tmp_path):
    result = run_cli("collect", "minatar", "--episodes", "1", "--out", tmp_path / "raw")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["dreamer-data collect: error: minatar needs --game, one of "
                                                  "asterix, breakout, freeway, seaquest, space_invaders"]
    result = run_cli("collect", "crafter", "--episodes", "1", "--out", tmp_path / "raw", "--game", "breakout")
    assert result.returncode == 2 and "--game is for minatar only" in result.stderr


def test_bad_raw_episodes_fail_alone_with_the_file_named(tmp_path):
    raw = tmp_path / "raw"
    collect(BREAKOUT, raw, episodes=4)
    folder = raw / "episodes"
    (folder / "000001.npz").write_bytes((folder / "000001.npz").read_bytes()[:300])  # truncated
    rows, info = read_episode(folder / "000002.npz", "x", "obs")
    write_episode(folder / "000002.npz", {**rows, "rewards": rows["rewards"][:-1]}, info)  # one reward short
    report = ingest(MinAtarSource(str(raw), ReadOptions()), str(tmp_path / "store"), IngestPlan())
    assert report.ingested == 2
    reasons = {Path(f["file"]).name: f["reason"] for f in report.failed}
    assert reasons.keys() == {"000001.npz", "000002.npz"}
    assert "not a readable npz" in reasons["000001.npz"]
    assert "row count" in reasons["000002.npz"]
    with pytest.raises(EpisodeError, match="000003.npz: missing member"):
        rows, info = read_episode(folder / "000003.npz", str(folder / "000003.npz"), "obs")
        write_episode(folder / "000003.npz", {k: v for k, v in rows.items() if k != "has_action"}, info)
        read_episode(folder / "000003.npz", str(folder / "000003.npz"), "obs")


def test_a_folder_that_is_not_a_raw_folder_is_refused(tmp_path):
    with pytest.raises(DreamerDataError, match="collect.json: missing"):
        MinAtarSource(str(tmp_path), ReadOptions()).list_episodes()
    with pytest.raises(DreamerDataError, match="neither a collect RAW folder .* nor a folder of Crafter recorder"):
        CrafterSource(str(tmp_path), ReadOptions()).list_episodes()
    collect(BREAKOUT, tmp_path / "raw", episodes=1)
    with pytest.raises(DreamerDataError, match="collected from 'minatar'; use `dreamer-data ingest minatar`"):
        CrafterSource(str(tmp_path / "raw"), ReadOptions()).list_episodes()
    result = run_cli("ingest", "crafter", tmp_path / "raw", "--out", tmp_path / "store")
    assert result.returncode == 2 and "collected from 'minatar'" in result.stderr


def test_run_file_records_everything_needed(tmp_path):
    collect(BREAKOUT, tmp_path, episodes=1)
    run = json.loads((tmp_path / "collect.json").read_text())
    assert {k: run[k] for k in ("env", "game", "policy", "seed", "epsilon", "sticky_action_prob", "max_steps",
                                "grid_channels")} == {
        "env": "minatar", "game": "breakout", "policy": "noisy-scripted", "seed": 11, "epsilon": 0.1,
        "sticky_action_prob": 0.1, "max_steps": 200, "grid_channels": ["paddle", "ball", "trail", "brick"]}
