"""Bad input: each broken episode is one stderr line + a `failed` entry; good ones are still ingested; exit 1."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import zarr

import makers
from conftest import leftovers, read_manifest, run_cli

GOOD = {"a_good": 20, "z_good": 16}


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory):
    src = tmp_path_factory.mktemp("bad-src")
    for name, frames in GOOD.items():
        makers.write_vpt_episode(src, name, frames)
    video, _ = makers.write_vpt_episode(src, "b_truncated", 20)
    makers.truncate_file(video, 0.5)
    video, _ = makers.write_vpt_episode(src, "c_garbage", 20)
    video.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    _, jsonl = makers.write_vpt_episode(src, "d_bad_line", 20)
    lines = jsonl.read_text().splitlines()
    lines[4] = lines[4][: len(lines[4]) // 2]  # line 5 cut in half
    jsonl.write_text("\n".join(lines) + "\n")
    makers.write_vpt_episode(src, "e_no_jsonl", 20)[1].unlink()
    makers.write_vpt_episode(src, "f_no_mp4", 20)[0].unlink()
    makers.write_vpt_episode(src, "g_long_video", 30, n_lines=20)
    _, jsonl = makers.write_vpt_episode(src, "h_unreadable", 20)  # the jsonl path is a directory
    jsonl.unlink()
    jsonl.mkdir()
    _, jsonl = makers.write_vpt_episode(src, "i_binary_jsonl", 20)
    jsonl.write_bytes(b"\xff\xfe" + bytes(range(256)) * 4)
    out = tmp_path_factory.mktemp("bad-store") / "store"
    result = run_cli("ingest", "vpt", src, "--out", out, "--resolution", "36x64", "--workers", "2")
    return src, out, result


EXPECTED = {  # episode id -> (file that is named, words the reason must contain)
    "b_truncated": ("b_truncated.mp4", "video"),
    "c_garbage": ("c_garbage.mp4", "cannot open video"),
    "d_bad_line": ("d_bad_line.jsonl", "line 5: malformed JSON"),
    "e_no_jsonl": ("e_no_jsonl.jsonl", "missing partner file"),
    "f_no_mp4": ("f_no_mp4.mp4", "missing partner file"),
    "g_long_video": ("g_long_video.mp4", "20 action lines (tolerance 2)"),
    "h_unreadable": ("h_unreadable.jsonl", "cannot read"),
    "i_binary_jsonl": ("i_binary_jsonl.jsonl", ""),
}


def test_exit_status_is_1_and_no_traceback(bad_run):
    _, _, result = bad_run
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "Error:" not in result.stderr


def test_good_episodes_are_still_ingested(bad_run):
    _, out, _ = bad_run
    manifest = read_manifest(out)
    assert [(e["id"], e["length"]) for e in manifest["episodes"]] == list(GOOD.items())
    frames = zarr.open_group(str(out), mode="r")["data/frames"][:]
    assert [makers.pattern_index(f) for f in frames] == [*range(20), *range(16)]
    assert run_cli("verify", out).returncode == 0
    assert leftovers(out) == []  # failed episodes leave nothing staged behind


def test_every_bad_episode_is_recorded_under_failed(bad_run):
    src, out, _ = bad_run
    failed = {f["id"]: f for f in read_manifest(out)["failed"]}
    assert sorted(failed) == sorted(EXPECTED)
    for episode_id, (file, words) in EXPECTED.items():
        assert failed[episode_id]["file"] == str(src / file), episode_id
        assert words in failed[episode_id]["reason"], (episode_id, failed[episode_id]["reason"])
        assert "\n" not in failed[episode_id]["reason"]


def test_each_failure_is_one_stderr_line_naming_file_and_reason(bad_run):
    src, out, result = bad_run
    lines = [line for line in result.stderr.splitlines() if line.startswith("failed:")]
    assert len(lines) == len(EXPECTED)
    for episode_id, (file, words) in EXPECTED.items():
        matching = [line for line in lines if str(src / file) in line]
        assert len(matching) == 1, (episode_id, lines)
        assert words in matching[0]
    assert "2 episodes ingested" in result.stderr and f"{len(EXPECTED)} failed" in result.stderr


def test_rerun_retries_only_the_failed_ones(bad_run, tmp_path):
    src, out, _ = bad_run
    copy = tmp_path / "store"
    os.system(f"cp -r '{out}' '{copy}'")
    result = run_cli("ingest", "vpt", src, "--out", copy, "--resolution", "36x64")
    assert result.returncode == 1
    assert "0 episodes ingested" in result.stderr and "2 already there" in result.stderr
    assert len(read_manifest(copy)["failed"]) == len(EXPECTED)


def test_missing_source_is_one_line_and_exit_2(tmp_path):
    result = run_cli("ingest", "vpt", tmp_path / "nowhere", "--out", tmp_path / "store")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith("dreamer-data ingest: error: ") and "nowhere" in errors[0]


@pytest.mark.parametrize("command", ["inspect", "verify"])
def test_not_a_store_is_one_line(tmp_path, command):
    (tmp_path / "empty").mkdir()
    result = run_cli(command, tmp_path / "empty")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "not a dreamer store" in result.stderr


def test_bad_flags_are_one_line(tmp_path):
    makers.write_vpt_episode(tmp_path / "src", "a", 5)
    for flags, words in ((["--part", "3/3"], "--part"), (["--resolution", "64by64"], "resolution")):
        result = run_cli("ingest", "vpt", tmp_path / "src", "--out", tmp_path / "store", *flags)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert words in result.stderr


def test_malformed_manifest_json_is_one_line(vpt_store, tmp_path):
    os.system(f"cp -r '{vpt_store}' '{tmp_path / 's'}'")
    (tmp_path / "s" / "manifest.json").write_text(json.dumps({"format": "dreamer-store"})[:-3])
    result = run_cli("inspect", tmp_path / "s")
    assert result.returncode != 0 and "Traceback" not in result.stderr and "malformed JSON" in result.stderr


def test_source_without_episodes_is_an_error_not_an_empty_store(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "notes.txt").write_text("no recordings here")
    result = run_cli("ingest", "vpt", tmp_path / "src", "--out", tmp_path / "store")
    assert result.returncode == 2 and "no vpt episodes found" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "store").exists()
