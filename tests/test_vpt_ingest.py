"""`dreamer-data ingest vpt`: a folder of NAME.mp4 + NAME.jsonl becomes a store plain zarr can read."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import zarr

import makers
from conftest import read_manifest, run_cli

LENGTHS = (30, 41, 25)  # the episodes of the vpt_src fixture, in source (name) order


def episode_rows(group: zarr.Group, name: str, index: int) -> np.ndarray:
    ends = group["meta/episode_ends"][:]
    start = 0 if index == 0 else int(ends[index - 1])
    return group[f"data/{name}"][start:int(ends[index])]


def test_plain_zarr_reading_as_the_format_doc_describes(vpt_store):
    group = zarr.open_group(str(vpt_store), mode="r")
    ends = group["meta/episode_ends"][:]
    assert ends.dtype == np.int64 and ends.tolist() == np.cumsum(LENGTHS).tolist()
    n = int(ends[-1])
    expected = {"frames": ((n, 36, 64, 3), np.uint8), "actions/buttons": ((n, 23), np.uint8),
                "actions/camera": ((n,), np.int16), "actions/camera_deg": ((n, 2), np.float32),
                "rewards": ((n,), np.float32), "is_null_action": ((n,), np.uint8), "has_action": ((n,), np.uint8),
                "is_gui_open": ((n,), np.uint8), "cursor_xy": ((n, 2), np.float32), "is_terminal": ((n,), np.uint8)}
    for name, (shape, dtype) in expected.items():
        array = group[f"data/{name}"]
        assert array.shape == shape and array.dtype == dtype, name
    frames = group["data/frames"]
    assert frames.chunks == (16, 36, 64, 3)  # chunked along time only (--chunk-frames 16)
    assert type(frames.compressors[0]).__name__ == "ZstdCodec"
    assert group["data/rewards"][:].tolist() == [0.0] * n and group["data/has_action"][:].tolist() == [1] * n
    manifest = json.loads((vpt_store / "manifest.json").read_text())
    assert manifest["rewards"] == {"present": False}
    assert group.attrs["dreamer_store"]["format_version"] == manifest["format_version"]


# VPT's action layout, restated here rather than imported: the 23 binary keys in the store's column order,
# and the keys / mouse buttons of the fixture's random lines (makers.random_vpt_lines).
VPT_BUTTONS = ("ESC", "back", "drop", "forward", "hotbar.1", "hotbar.2", "hotbar.3", "hotbar.4", "hotbar.5",
               "hotbar.6", "hotbar.7", "hotbar.8", "hotbar.9", "inventory", "jump", "left", "right", "sneak",
               "sprint", "swapHands", "attack", "use", "pickItem")
KEY_TO_BUTTON = {"key.keyboard.w": "forward", "key.keyboard.a": "left", "key.keyboard.space": "jump",
                 "key.keyboard.left.shift": "sneak", "key.keyboard.e": "inventory"}
MOUSE_TO_BUTTON = {1: "use"}  # button 0 (attack) follows VPT's stuck-attack rule: tested in test_vpt_jsonl.py


def camera_class(degrees: float) -> int:
    """VPT's foveated camera bin of one axis: clip to ±10°, mu-law (μ = 10) to v in [-10, 10], 11 bins of 2."""
    x = max(-10.0, min(10.0, degrees))
    v = np.sign(x) * 10 * np.log1p(abs(x)) / np.log(11)  # 10 · ln(1 + μ|x|/10) / ln(1 + μ)
    return int(np.round((v + 10) / 2))


def test_frames_align_with_their_jsonl_lines_by_index(vpt_src, vpt_store):
    group = zarr.open_group(str(vpt_store), mode="r")
    manifest = read_manifest(vpt_store)
    for index, episode in enumerate(manifest["episodes"]):
        frames = episode_rows(group, "frames", index)
        assert [makers.pattern_index(f) for f in frames] == list(range(LENGTHS[index])), episode["id"]
        jsonl = vpt_src / f"{episode['id'].replace('_', '.')}.jsonl"
        lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
        assert len(lines) == LENGTHS[index]
        camera_deg = np.array([[line["mouse"]["dy"] * 0.15, line["mouse"]["dx"] * 0.15] for line in lines], np.float32)
        np.testing.assert_array_equal(episode_rows(group, "actions/camera_deg", index), camera_deg)
        camera = [camera_class(pitch) * 11 + camera_class(yaw) for pitch, yaw in camera_deg.tolist()]
        assert episode_rows(group, "actions/camera", index).tolist() == camera
        buttons = episode_rows(group, "actions/buttons", index)
        for t, line in enumerate(lines):
            held = {KEY_TO_BUTTON[k] for k in line["keyboard"]["keys"]}
            held |= {MOUSE_TO_BUTTON[b] for b in line["mouse"]["buttons"] if b in MOUSE_TO_BUTTON}
            simple = [VPT_BUTTONS.index(name) for name in (*KEY_TO_BUTTON.values(), "use")]
            assert {VPT_BUTTONS[i] for i in simple if buttons[t, i]} == held, (episode["id"], t)
        assert episode_rows(group, "is_gui_open", index).tolist() == [int(line["isGuiOpen"]) for line in lines]
        np.testing.assert_array_equal(episode_rows(group, "cursor_xy", index),
                                      np.array([[line["mouse"]["x"], line["mouse"]["y"]] for line in lines], np.float32))


def test_manifest_lists_episodes_in_source_order_with_checksums_of_the_rows(vpt_src, vpt_store):
    manifest = read_manifest(vpt_store)
    group = zarr.open_group(str(vpt_store), mode="r")
    assert [e["id"] for e in manifest["episodes"]] == [f"player-{i}-2022_06_01" for i in range(3)]
    assert [e["length"] for e in manifest["episodes"]] == list(LENGTHS)
    assert [e["source_index"] for e in manifest["episodes"]] == [0, 1, 2]
    assert manifest["totals"] == {"episodes": 3, "frames": sum(LENGTHS)} and manifest["failed"] == []
    for index, episode in enumerate(manifest["episodes"]):
        assert episode["source_file"].endswith(f"player-{index}-2022.06.01.mp4")
        assert episode["end"] - episode["start"] == episode["length"]
        for name, digest in episode["checksums"].items():
            rows = np.ascontiguousarray(episode_rows(group, name, index))
            assert digest == "sha256:" + hashlib.sha256(rows.tobytes()).hexdigest(), (episode["id"], name)
    assert manifest["observation"]["height"] == 36 and manifest["observation"]["fps"] == 20
    assert manifest["actions"]["buttons"]["size"] == 23 and manifest["actions"]["camera"]["size"] == 121
    assert manifest["source"]["kind"] == "vpt" and manifest["source"]["settings"]["resolution"] == [36, 64]
    assert manifest["created_with"].startswith("dreamer")


def test_inspect_json_prints_the_manifest_and_the_table_the_numbers(vpt_store):
    result = run_cli("inspect", vpt_store, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == read_manifest(vpt_store)
    table = run_cli("inspect", vpt_store)
    assert table.returncode == 0, table.stderr
    for text in ("episodes", "3 (0 failed)", f"{sum(LENGTHS)}", "36x64x3 @ 20 fps", "bytes on disk", "compression"):
        assert text in table.stdout, text


def test_verify_passes_on_a_fresh_store(vpt_store):
    result = run_cli("verify", vpt_store)
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stderr


@pytest.fixture(scope="module")
def mismatched(tmp_path_factory):
    """Episodes whose video and jsonl lengths differ by 1, 2 (kept) and 3 (beyond the default tolerance)."""
    src = tmp_path_factory.mktemp("mismatch-src")
    cases = {"video+1": (21, 20), "video+2": (22, 20), "video+3": (23, 20),
             "jsonl+1": (20, 21), "jsonl+2": (20, 22), "jsonl+3": (20, 23)}
    for seed, (name, (frames, lines)) in enumerate(cases.items()):
        makers.write_vpt_episode(src, name, frames, n_lines=lines, seed=seed)
    out = tmp_path_factory.mktemp("mismatch-store") / "store"
    result = run_cli("ingest", "vpt", src, "--out", out, "--resolution", "36x64")
    return src, out, result


def test_small_length_mismatch_keeps_the_shorter_and_records_it(mismatched):
    _, out, result = mismatched
    manifest = read_manifest(out)
    kept = {e["id"]: e for e in manifest["episodes"]}
    assert sorted(kept) == ["jsonl+1", "jsonl+2", "video+1", "video+2"]
    for name, episode in kept.items():
        assert episode["length"] == 20
        mismatch = episode["notes"]["length_mismatch"]
        extra = int(name[-1])
        assert mismatch == {"video_frames": 20 + extra * name.startswith("video"),
                            "action_lines": 20 + extra * name.startswith("jsonl"), "kept": 20}
        assert episode["notes"]["decoder"] == "pyav"  # the decoder that read the frames (the default here)
    group = zarr.open_group(str(out), mode="r")
    for index in range(len(manifest["episodes"])):
        assert [makers.pattern_index(f) for f in episode_rows(group, "frames", index)] == list(range(20))


def test_mismatch_beyond_tolerance_fails_with_a_clear_reason(mismatched):
    _, out, result = mismatched
    assert result.returncode == 1
    failed = {f["id"]: f for f in read_manifest(out)["failed"]}
    assert sorted(failed) == ["jsonl+3", "video+3"]
    assert "23 frames" in failed["video+3"]["reason"] and "20 action lines" in failed["video+3"]["reason"]
    assert "20 frames" in failed["jsonl+3"]["reason"] and "23 action lines" in failed["jsonl+3"]["reason"]
    assert all("tolerance 2" in f["reason"] for f in failed.values())
    lines = [line for line in result.stderr.splitlines() if line.startswith("failed:")]
    assert len(lines) == 2 and all("tolerance 2" in line and ".mp4" in line for line in lines)
    assert "Traceback" not in result.stderr


def test_length_tolerance_flag_is_honoured(mismatched, tmp_path):
    src, _, _ = mismatched
    result = run_cli("ingest", "vpt", src, "--out", tmp_path / "strict", "--resolution", "36x64",
                     "--length-tolerance", "0")
    assert result.returncode == 1
    manifest = read_manifest(tmp_path / "strict")
    assert manifest["episodes"] == [] and len(manifest["failed"]) == 6
    assert manifest["source"]["settings"]["length_tolerance"] == 0


def test_null_actions_are_kept_and_flagged(tmp_path):
    lines = [makers.vpt_line(t, keys=["key.keyboard.w"] if t % 3 == 0 else []) for t in range(12)]
    makers.write_vpt_episode(tmp_path / "src", "idle", 12, lines=lines)
    result = run_cli("ingest", "vpt", tmp_path / "src", "--out", tmp_path / "store", "--resolution", "36x64")
    assert result.returncode == 0, result.stderr
    group = zarr.open_group(str(tmp_path / "store"), mode="r")
    assert group["data/frames"].shape[0] == 12
    assert group["data/is_null_action"][:].tolist() == [0 if t % 3 == 0 else 1 for t in range(12)]
    assert group["data/actions/camera"][:].tolist() == [60] * 12


def test_native_640x360_without_resolution(tmp_path):
    makers.write_vpt_episode(tmp_path / "src", "native", 6, height=makers.VPT_HEIGHT, width=makers.VPT_WIDTH)
    result = run_cli("ingest", "vpt", tmp_path / "src", "--out", tmp_path / "store")
    assert result.returncode == 0, result.stderr
    frames = zarr.open_group(str(tmp_path / "store"), mode="r")["data/frames"]
    assert frames.shape == (6, 360, 640, 3)
    assert [makers.pattern_index(f) for f in frames[:]] == list(range(6))
    assert read_manifest(tmp_path / "store")["observation"]["native_height"] == 360


def test_decord_backend_gives_the_same_rows_as_pyav(vpt_src, vpt_store, tmp_path):
    result = run_cli("ingest", "vpt", vpt_src, "--out", tmp_path / "decord", "--resolution", "36x64",
                     "--backend", "decord", "--chunk-frames", "16")
    assert result.returncode == 0, result.stderr
    pyav, decord = (zarr.open_group(str(s), mode="r") for s in (vpt_store, tmp_path / "decord"))
    np.testing.assert_array_equal(decord["meta/episode_ends"][:], pyav["meta/episode_ends"][:])
    np.testing.assert_array_equal(decord["data/actions/buttons"][:], pyav["data/actions/buttons"][:])
    assert [makers.pattern_index(f) for f in decord["data/frames"][:]] == \
        [makers.pattern_index(f) for f in pyav["data/frames"][:]]
    assert read_manifest(tmp_path / "decord")["source"]["settings"]["video_backend"] == "decord"


def test_nested_folders_give_path_ids(tmp_path):
    makers.write_vpt_episode(tmp_path / "src" / "6.10", "a", 5)
    makers.write_vpt_episode(tmp_path / "src" / "7.2", "a", 6)
    result = run_cli("ingest", "vpt", tmp_path / "src", "--out", tmp_path / "store", "--resolution", "36x64")
    assert result.returncode == 0, result.stderr
    assert [e["id"] for e in read_manifest(tmp_path / "store")["episodes"]] == ["6_10/a", "7_2/a"]
