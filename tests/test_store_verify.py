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


def zstd_garbled(chunk) -> None:
    """Flip bits of a chunk's zstd magic number: the codec itself fails (its message names no file)."""
    data = bytearray(chunk.read_bytes())
    data[0] ^= 0xFF
    chunk.write_bytes(bytes(data))


@pytest.mark.parametrize("array, chunk, episodes", [
    ("meta/episode_ends", "meta/episode_ends/c/0", 1),
    ("data/frames", "data/frames/c/3/0/0/0", 1),  # episode 1's rows only
    ("data/actions/buttons", "data/actions/buttons/c/0/0", 3),  # one chunk holds all three episodes: a line each
])
def test_an_undecodable_chunk_is_one_line_naming_the_store_and_the_array(store, array, chunk, episodes):
    zstd_garbled(store / chunk)
    status, lines = verify_lines(store)
    assert status == 1 and len(lines) == episodes, lines
    assert all(line.startswith(f"verify: {store}: {array}") and "unreadable" in line for line in lines)


@pytest.mark.parametrize("metadata, named", [
    ("zarr.json", "zarr.json (the root group)"),
    ("data/frames/zarr.json", "data/frames"),
    ("meta/episode_ends/zarr.json", "meta/episode_ends"),
])
def test_a_corrupt_zarr_json_is_one_line_naming_the_store_and_the_array(store, metadata, named):
    (store / metadata).write_text('{"zarr_format": 3, "node_t')
    status, lines = verify_lines(store)
    assert status == 1 and len(lines) == 1, lines
    assert lines[0].startswith(f"verify: {store}: {named} unreadable")


def test_an_undecodable_latents_chunk_names_data_latents(tmp_path):
    from test_tokenize_store import make_frame_store, mini_encoder
    from dreamer_data.tokenize import tokenize_store

    store = make_frame_store(tmp_path / "store")
    tokenize_store(store, mini_encoder())
    assert verify_lines(store) == (0, [])
    chunks = sorted((tmp_path / "store" / "data" / "latents" / "c").rglob("*"))
    zstd_garbled(next(chunk for chunk in chunks if chunk.is_file()))
    status, lines = verify_lines(store)
    assert status == 1 and lines, lines
    assert all(line.startswith(f"verify: {store}: data/latents rows of episode ") and "unreadable" in line
               for line in lines)
