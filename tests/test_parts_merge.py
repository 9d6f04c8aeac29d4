"""`ingest --part I/3` for I = 0, 1, 2, then `merge`: the same store, array by array, as one single run."""

from __future__ import annotations

import hashlib
import shutil

import pytest

import makers
from conftest import assert_same_store, read_manifest, run_cli

LENGTHS = (12, 20, 9, 15, 17, 11, 14)
FLAGS = ["--resolution", "32x32", "--chunk-frames", "8", "--format", "both", "--clip-length", "8"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    src = tmp_path_factory.mktemp("parts-src")
    for index, frames in enumerate(LENGTHS):
        makers.write_vpt_episode(src, f"ep{index}", frames, seed=index)
    video, _ = makers.write_vpt_episode(src, "ep7_broken", 10)
    video.write_bytes(b"not a video")
    root = tmp_path_factory.mktemp("parts")
    single = run_cli("ingest", "vpt", src, "--out", root / "single", *FLAGS, "--workers", "2")
    assert single.returncode == 1  # the broken episode
    for index in range(3):
        part = run_cli("ingest", "vpt", src, "--out", root / f"part{index}", *FLAGS, "--part", f"{index}/3")
        assert part.returncode == (1 if index == 7 % 3 else 0), part.stderr
    merged = run_cli("merge", *(root / f"part{i}" for i in range(3)), "--out", root / "merged")
    assert merged.returncode == 0, merged.stderr
    return src, root


def test_parts_are_a_deterministic_round_robin_slice(runs):
    _, root = runs
    for index in range(3):
        manifest = read_manifest(root / f"part{index}")
        expected = [f"ep{i}" for i in range(index, len(LENGTHS), 3)]
        assert [e["id"] for e in manifest["episodes"]] == expected
        assert manifest["part"] == {"index": index, "count": 3, "limit": None}


def test_merged_store_equals_the_single_run_array_by_array(runs):
    _, root = runs
    assert_same_store(root / "single", root / "merged")
    merged = read_manifest(root / "merged")
    assert [e["id"] for e in merged["episodes"]] == [f"ep{i}" for i in range(len(LENGTHS))]
    assert [f["id"] for f in merged["failed"]] == ["ep7_broken"]
    assert merged["part"] is None and len(merged["merged_from"]) == 3
    assert run_cli("verify", root / "merged").returncode == 0


def test_merged_shards_are_byte_identical_to_the_single_run(runs):
    _, root = runs

    def digests(store):
        return [hashlib.sha256((store / s["name"]).read_bytes()).hexdigest()
                for s in read_manifest(store)["wds"]["shards"]]

    assert digests(root / "merged") == digests(root / "single")


def test_merge_again_is_a_no_op(runs, tmp_path):
    _, root = runs
    out = tmp_path / "merged"
    shutil.copytree(root / "merged", out)
    again = run_cli("merge", *(root / f"part{i}" for i in range(3)), "--out", out)
    assert again.returncode == 0, again.stderr
    assert_same_store(root / "single", out)


def test_merge_refuses_overlapping_or_foreign_parts(runs, tmp_path):
    src, root = runs
    twice = run_cli("merge", root / "part0", root / "part0", "--out", tmp_path / "twice")
    assert twice.returncode == 2 and "share episode ids" in twice.stderr and "Traceback" not in twice.stderr
    other = run_cli("ingest", "vpt", src, "--out", tmp_path / "other", "--resolution", "16x16", "--part", "2/3")
    assert other.returncode == 0, other.stderr
    mixed = run_cli("merge", root / "part0", tmp_path / "other", "--out", tmp_path / "mixed")
    assert mixed.returncode == 2 and "differs" in mixed.stderr and "Traceback" not in mixed.stderr
