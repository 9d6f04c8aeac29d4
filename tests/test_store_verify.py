"""`dreamer-data verify` re-reads every byte: flipped, truncated or missing chunks and bad counts fail it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import zarr

from conftest import read_manifest, run_cli

EPISODE_1 = "player-1-2022_06_01"  # rows 30..71 of the vpt_store fixture; frame chunk 3 (rows 48..63) is all its


@pytest.fixture
def store(vpt_store, tmp_path):
    copy = tmp_path / "store"
    shutil.copytree(vpt_store, copy)
    return copy


def verify_lines(store) -> tuple[int, list[str]]:
    result = run_cli("verify", store)
    assert "Traceback" not in result.stderr
    return result.returncode, [line for line in result.stderr.splitlines() if line.startswith("verify: ")]


def test_untouched_copy_verifies(store):
    assert verify_lines(store) == (0, [])


def test_flipped_byte_in_a_frame_chunk(store):
    chunk = store / "data" / "frames" / "c" / "3" / "0" / "0" / "0"
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0x01
    chunk.write_bytes(bytes(data))
    status, lines = verify_lines(store)
    assert status == 1 and len(lines) == 1
    assert "data/frames" in lines[0] and EPISODE_1 in lines[0]


def test_flipped_byte_in_an_action_chunk(store):
    chunk = store / "data" / "actions" / "camera_deg" / "c" / "0" / "0"
    data = bytearray(chunk.read_bytes())
    data[-5] ^= 0x80
    chunk.write_bytes(bytes(data))
    status, lines = verify_lines(store)
    assert status == 1 and lines and all("data/actions/camera_deg" in line for line in lines)


def test_truncated_chunk(store):
    chunk = store / "data" / "frames" / "c" / "3" / "0" / "0" / "0"
    chunk.write_bytes(chunk.read_bytes()[:40])
    status, lines = verify_lines(store)
    assert status == 1 and len(lines) == 1 and "data/frames" in lines[0] and EPISODE_1 in lines[0]


def test_missing_chunk(store):
    (store / "data" / "actions" / "buttons" / "c" / "0" / "0").unlink()  # zarr would silently read zeros
    status, lines = verify_lines(store)
    assert status == 1 and len(lines) == 3 and all("data/actions/buttons" in line for line in lines)


def test_rows_changed_through_zarr_itself(store):
    """A well-formed chunk with other content: only the checksums can tell."""
    group = zarr.open_group(str(store), mode="r+")
    group["data/is_gui_open"][40] = 1 - group["data/is_gui_open"][40]
    status, lines = verify_lines(store)
    assert status == 1 and len(lines) == 1 and "data/is_gui_open" in lines[0] and EPISODE_1 in lines[0]


def test_episode_ends_disagreeing_with_the_manifest(store):
    group = zarr.open_group(str(store), mode="r+")
    group["meta/episode_ends"][1] = 70
    status, lines = verify_lines(store)
    assert status == 1 and any("meta/episode_ends" in line for line in lines)


def test_manifest_counts_that_do_not_add_up(store):
    manifest = read_manifest(store)
    manifest["episodes"][1]["length"] += 1
    manifest["totals"]["frames"] += 5
    (store / "manifest.json").write_text(json.dumps(manifest))
    status, lines = verify_lines(store)
    assert status == 1
    assert any("inconsistent offsets" in line and EPISODE_1 in line for line in lines)
    assert any("totals" in line for line in lines)


def test_array_shorter_than_the_manifest(store):
    group = zarr.open_group(str(store), mode="r+")
    group["data/rewards"].resize((50,))
    status, lines = verify_lines(store)
    assert status == 1 and any("data/rewards" in line and "(50,)" in line for line in lines)


def test_missing_array(store):
    shutil.rmtree(store / "data" / "cursor_xy")
    status, lines = verify_lines(store)
    assert status == 1 and any("cursor_xy" in line for line in lines)


def test_each_problem_is_its_own_line_and_counted(store):
    for name in ("rewards", "has_action"):
        group = zarr.open_group(str(store), mode="r+")
        group[f"data/{name}"][0] = 7
    result = run_cli("verify", store)
    assert result.returncode == 1
    assert f"{store}: 2 problem(s)" in result.stderr.replace("\n", "")
    assert np.count_nonzero([line.startswith("verify: ") for line in result.stderr.splitlines()]) == 2
