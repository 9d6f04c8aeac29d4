"""`dreamer-data ingest minerl`: raw v0.4 folders and the extracted layout, `action$…` keys → 23 + 121."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

import makers
from conftest import read_manifest, run_cli
from dreamer_data.actions.minecraft import BUTTON_INDEX, encode_camera

RAW_FRAMES, EXTRACTED_FRAMES = 24, 18


@pytest.fixture(scope="module")
def minerl(tmp_path_factory):
    """One folder holding both layouts (as a user's download might), ingested once."""
    src = tmp_path_factory.mktemp("minerl-src")
    makers.write_minerl_raw(src / "v4_treechop_a", RAW_FRAMES, seed=1)
    makers.write_minerl_extracted(src / "z_extracted", EXTRACTED_FRAMES, seed=2)
    out = tmp_path_factory.mktemp("minerl-store") / "store"
    result = run_cli("ingest", "minerl", src, "--out", out)
    assert result.returncode == 0, result.stderr
    return src, out


def rows(out, name: str, index: int) -> np.ndarray:
    group = zarr.open_group(str(out), mode="r")
    ends = [0, *group["meta/episode_ends"][:]]
    return group[f"data/{name}"][ends[index]:ends[index + 1]]


def expected_buttons(arrays: dict[str, np.ndarray], steps: int) -> np.ndarray:
    buttons = np.zeros((steps, 23), np.uint8)
    for key in makers.MINERL_BUTTON_KEYS:
        buttons[:, BUTTON_INDEX[key]] = arrays[f"action${key}"] != 0
    if "action$place" in arrays:  # enum: any item but "none" is a use click
        buttons[:, BUTTON_INDEX["use"]] |= (arrays["action$place"] != "none").astype(np.uint8)
    return buttons


def test_both_layouts_become_episodes(minerl):
    _, out = minerl
    manifest = read_manifest(out)
    assert [e["id"] for e in manifest["episodes"]] == ["v4_treechop_a", "z_extracted"]
    assert [e["length"] for e in manifest["episodes"]] == [RAW_FRAMES, EXTRACTED_FRAMES]
    assert [e["notes"]["layout"] for e in manifest["episodes"]] == ["raw-v0.4", "extracted"]
    assert manifest["rewards"]["present"] is True and manifest["observation"]["height"] == 64


def test_raw_v04_keeps_every_frame_and_flags_the_final_one(minerl):
    src, out = minerl
    with np.load(src / "v4_treechop_a" / "rendered.npz") as npz:
        arrays = {key: npz[key] for key in npz.files}
    steps = RAW_FRAMES - 1
    assert len(arrays["reward"]) == steps  # the real layout: one action fewer than frames
    assert rows(out, "has_action", 0).tolist() == [1] * steps + [0]
    assert rows(out, "is_null_action", 0)[-1] == 1
    buttons, camera_deg = rows(out, "actions/buttons", 0), rows(out, "actions/camera_deg", 0)
    np.testing.assert_array_equal(buttons[:steps], expected_buttons(arrays, steps))
    np.testing.assert_array_equal(buttons[-1], 0)
    np.testing.assert_array_equal(camera_deg[:steps], arrays["action$camera"])  # (pitch, yaw) degrees, lossless
    np.testing.assert_array_equal(rows(out, "actions/camera", 0), encode_camera(camera_deg))
    assert rows(out, "actions/camera", 0)[-1] == 60
    np.testing.assert_array_equal(rows(out, "rewards", 0), np.append(arrays["reward"], 0).astype(np.float32))
    # row t holds frame t and the action taken after it: frames come out in order, none dropped
    assert [makers.pattern_index(f) for f in rows(out, "frames", 0)] == list(range(RAW_FRAMES))


def test_enum_place_maps_to_use_and_unmapped_enums_are_listed(minerl):
    src, out = minerl
    with np.load(src / "v4_treechop_a" / "rendered.npz") as npz:
        place = npz["action$place"]
    assert place.dtype.kind == "U" and set(place) == {"dirt", "none"}
    use = rows(out, "actions/buttons", 0)[:-1, BUTTON_INDEX["use"]]
    np.testing.assert_array_equal(use, (place != "none").astype(np.uint8))
    raw = read_manifest(out)["episodes"][0]
    assert raw["notes"]["unmapped_actions"] == ["craft", "equip", "nearbyCraft", "nearbySmelt"]
    assert raw["notes"]["success"] is True and raw["notes"]["duration_steps"] == RAW_FRAMES - 1


def test_extracted_layout_is_copied_exactly(minerl):
    src, out = minerl
    folder = src / "z_extracted"
    np.testing.assert_array_equal(rows(out, "frames", 1), np.load(folder / "frames.npy"))
    np.testing.assert_array_equal(rows(out, "rewards", 1), np.load(folder / "rewards.npy"))
    with np.load(folder / "actions.npz") as npz:
        arrays = {key: npz[key] for key in npz.files}
    np.testing.assert_array_equal(rows(out, "actions/buttons", 1), expected_buttons(arrays, EXTRACTED_FRAMES))
    np.testing.assert_array_equal(rows(out, "actions/camera_deg", 1), arrays["action$camera"])
    assert rows(out, "has_action", 1).tolist() == [1] * EXTRACTED_FRAMES


def test_extracted_layout_resized(tmp_path):
    makers.write_minerl_extracted(tmp_path / "src" / "ep", 10, size=64)
    result = run_cli("ingest", "minerl", tmp_path / "src", "--out", tmp_path / "store", "--resolution", "32x32")
    assert result.returncode == 0, result.stderr
    group = zarr.open_group(str(tmp_path / "store"), mode="r")
    frames = np.load(tmp_path / "src" / "ep" / "frames.npy").astype(np.float64)
    box = frames.reshape(10, 32, 2, 32, 2, 3).mean(axis=(2, 4))  # 2x2 area average
    assert group["data/frames"].shape == (10, 32, 32, 3)
    assert np.abs(group["data/frames"][:].astype(np.float64) - box).max() <= 1


def test_bad_minerl_episodes_fail_alone(tmp_path):
    src = tmp_path / "src"
    makers.write_minerl_raw(src / "a_good", 12)
    makers.write_minerl_raw(src / "b_no_rendered", 12)
    (src / "b_no_rendered" / "rendered.npz").unlink()
    makers.write_minerl_raw(src / "c_corrupt_npz", 12)
    makers.truncate_file(src / "c_corrupt_npz" / "rendered.npz", 0.5)
    makers.write_minerl_extracted(src / "d_short_actions", 10)
    np.savez(src / "d_short_actions" / "actions.npz", **makers.minerl_action_arrays(7, with_enums=False))
    makers.write_minerl_raw(src / "e_video_too_long", 12)
    makers.write_h264(src / "e_video_too_long" / "recording.mp4", 20, 64, 64)
    result = run_cli("ingest", "minerl", src, "--out", tmp_path / "store")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    manifest = read_manifest(tmp_path / "store")
    assert [e["id"] for e in manifest["episodes"]] == ["a_good"]
    failed = {f["id"]: f for f in manifest["failed"]}
    assert sorted(failed) == ["b_no_rendered", "c_corrupt_npz", "d_short_actions", "e_video_too_long"]
    assert failed["b_no_rendered"]["file"].endswith("b_no_rendered/rendered.npz")
    assert failed["c_corrupt_npz"]["file"].endswith("rendered.npz")
    assert "7 steps, expected 10" in failed["d_short_actions"]["reason"]
    assert "20 frames" in failed["e_video_too_long"]["reason"]
    lines = [line for line in result.stderr.splitlines() if line.startswith("failed:")]
    assert len(lines) == 4
