"""`dreamer-data ingest minerl`: raw v0.4 folders and the extracted layout, `action$…` keys → 23 + 121."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import zarr

import makers
from conftest import read_manifest, run_cli

RAW_FRAMES, EXTRACTED_FRAMES = 24, 18
# docs/FORMAT.md's button order, restated here so the test does not read the code's own table
BUTTON_ORDER = ("ESC", "back", "drop", "forward", *(f"hotbar.{i}" for i in range(1, 10)), "inventory", "jump",
                "left", "right", "sneak", "sprint", "swapHands", "attack", "use", "pickItem")
USE = BUTTON_ORDER.index("use")
# (pitch, yaw) degrees → camera class, worked out by hand from the mu-law rule (see camera_class)
HAND_CAMERA = [((0.0, 0.0), 60), ((25.0, -40.0), 110), ((0.5, 0.0), 71), ((-3.0, 2.0), 29)]


def camera_class(pitch: float, yaw: float) -> int:
    """DESIGN.md's rule: per axis clip to ±10°, mu-law with mu = 10 (x/10 → sign·ln(1+10|x|)/ln 11, ×10),
    bin = round((v + 10) / 2) (half to even, as Python's round), class = pitch_bin·11 + yaw_bin."""
    def axis_bin(degrees: float) -> int:
        x = min(max(degrees, -10.0), 10.0) / 10.0
        return round((math.copysign(math.log(1 + 10 * abs(x)) / math.log(11), x) * 10.0 + 10.0) / 2.0)
    return axis_bin(pitch) * 11 + axis_bin(yaw)


def load_arrays(path) -> dict[str, np.ndarray]:
    with np.load(path) as npz:
        return {key: npz[key] for key in npz.files}


def set_first_cameras(folder, cameras: list[tuple[float, float]]) -> None:
    """Overwrite the first rows of rendered.npz's action$camera with hand-picked (pitch, yaw) values."""
    arrays = load_arrays(folder / "rendered.npz")
    arrays["action$camera"][:len(cameras)] = cameras
    np.savez(folder / "rendered.npz", **arrays)


@pytest.fixture(scope="module")
def minerl(tmp_path_factory):
    """One folder holding both layouts (as a user's download might), ingested once."""
    src = tmp_path_factory.mktemp("minerl-src")
    makers.write_minerl_raw(src / "v4_treechop_a", RAW_FRAMES, seed=1)
    set_first_cameras(src / "v4_treechop_a", [camera for camera, _ in HAND_CAMERA])
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
    for key in makers.MINERL_BUTTON_KEYS:  # MineRL's button names are VPT's
        buttons[:, BUTTON_ORDER.index(key)] = arrays[f"action${key}"] != 0
    if "action$place" in arrays:  # enum: any item but "none" is a use click
        buttons[:, USE] |= (arrays["action$place"] != "none").astype(np.uint8)
    return buttons


def test_both_layouts_become_episodes(minerl):
    _, out = minerl
    manifest = read_manifest(out)
    assert [e["id"] for e in manifest["episodes"]] == ["v4_treechop_a", "z_extracted"]
    assert [e["length"] for e in manifest["episodes"]] == [RAW_FRAMES, EXTRACTED_FRAMES]
    assert [e["notes"]["layout"] for e in manifest["episodes"]] == ["raw-v0.4", "extracted"]
    assert manifest["episodes"][0]["notes"]["decoder"] == "pyav" and "decoder" not in manifest["episodes"][1]["notes"]
    assert manifest["rewards"]["present"] is True and manifest["observation"]["height"] == 64


def test_raw_v04_keeps_every_frame_and_flags_the_final_one(minerl):
    src, out = minerl
    arrays = load_arrays(src / "v4_treechop_a" / "rendered.npz")
    steps = RAW_FRAMES - 1
    assert len(arrays["reward"]) == steps  # the real layout: one action fewer than frames
    assert rows(out, "has_action", 0).tolist() == [1] * steps + [0]
    assert rows(out, "is_null_action", 0)[-1] == 1
    buttons, camera_deg = rows(out, "actions/buttons", 0), rows(out, "actions/camera_deg", 0)
    np.testing.assert_array_equal(buttons[:steps], expected_buttons(arrays, steps))
    np.testing.assert_array_equal(buttons[-1], 0)
    np.testing.assert_array_equal(camera_deg[:steps], arrays["action$camera"])  # (pitch, yaw) degrees, lossless
    classes = rows(out, "actions/camera", 0).tolist()
    assert classes[:len(HAND_CAMERA)] == [expected for _, expected in HAND_CAMERA]
    assert classes == [camera_class(float(pitch), float(yaw)) for pitch, yaw in camera_deg]
    assert classes[-1] == 60  # the final frame's null action: no move
    np.testing.assert_array_equal(rows(out, "rewards", 0), np.append(arrays["reward"], 0).astype(np.float32))
    # row t holds frame t and the action taken after it: frames come out in order, none dropped
    assert [makers.pattern_index(f) for f in rows(out, "frames", 0)] == list(range(RAW_FRAMES))


def test_enum_place_maps_to_use_and_unmapped_enums_are_listed(minerl):
    src, out = minerl
    place = load_arrays(src / "v4_treechop_a" / "rendered.npz")["action$place"]
    assert place.dtype.kind == "U" and set(place) == {"dirt", "none"}
    use = rows(out, "actions/buttons", 0)[:-1, USE]
    np.testing.assert_array_equal(use, (place != "none").astype(np.uint8))
    raw = read_manifest(out)["episodes"][0]
    assert raw["notes"]["unmapped_actions"] == ["craft", "equip", "nearbyCraft", "nearbySmelt"]
    assert raw["notes"]["success"] is True and raw["notes"]["duration_steps"] == RAW_FRAMES - 1


ALIGNED_FRAMES = 16  # frames that pair with rendered.npz's 15 steps
SURPLUS = (0, 1, 2, 5)  # leading video frames MineRL's publisher cut from the arrays only
# episode id → leading surplus frames: with metadata.json, without it, with it but without the frame
# count, and with a frame count that disagrees with the video (true count + 3)
ALIGNED = {**{f"meta_s{n}": n for n in SURPLUS}, **{f"nometa_s{n}": n for n in SURPLUS}, "nokey_s3": 3,
           "wrongcount_s2": 2}
WRONG_COUNT = 2 + ALIGNED_FRAMES + 3


def rewrite_metadata(folder, **changes) -> None:
    """Edit metadata.json: a value of None drops the key."""
    metadata = {**json.loads((folder / "metadata.json").read_text()), **changes}
    (folder / "metadata.json").write_text(json.dumps({k: v for k, v in metadata.items() if v is not None}))


@pytest.fixture(scope="module")
def aligned(tmp_path_factory):
    """Raw episodes whose videos start 0-5 frames before their arrays, ingested once: (src, store, id → rows)."""
    src = tmp_path_factory.mktemp("minerl-aligned")
    for index, (name, surplus) in enumerate(ALIGNED.items()):
        makers.write_minerl_raw(src / name, ALIGNED_FRAMES, seed=10 + index, surplus=surplus,
                                success=name != "nokey_s3")
    for name in ALIGNED:
        if name.startswith("nometa"):
            (src / name / "metadata.json").unlink()
    rewrite_metadata(src / "nokey_s3", true_video_frame_count=None)
    rewrite_metadata(src / "wrongcount_s2", true_video_frame_count=WRONG_COUNT)
    out = tmp_path_factory.mktemp("minerl-aligned-store") / "store"
    result = run_cli("ingest", "minerl", src, "--out", out)
    assert result.returncode == 0, result.stderr
    group = zarr.open_group(str(out), mode="r")
    episodes = {e["id"]: e for e in read_manifest(out)["episodes"]}
    assert sorted(episodes) == sorted(ALIGNED)

    def episode_rows(name: str, field: str) -> np.ndarray:
        return group[f"data/{field}"][episodes[name]["start"]:episodes[name]["end"]]
    return src, episodes, episode_rows


def test_raw_frames_align_with_the_arrays_by_the_end_of_the_video(aligned):
    _, episodes, episode_rows = aligned
    for name, surplus in ALIGNED.items():
        # row r holds video frame surplus + r: the last frame is the final state, the first `surplus` are skipped
        indices = [makers.pattern_index(frame) for frame in episode_rows(name, "frames")]
        assert indices == [surplus + row for row in range(ALIGNED_FRAMES)], name
        assert episodes[name]["length"] == ALIGNED_FRAMES
        assert episodes[name]["notes"]["video_frames_skipped"] == surplus, name


def test_aligned_rows_keep_their_actions_and_rewards(aligned):
    src, _, episode_rows = aligned
    steps = ALIGNED_FRAMES - 1
    for name in ALIGNED:
        arrays = load_arrays(src / name / "rendered.npz")
        np.testing.assert_array_equal(episode_rows(name, "actions/buttons")[:steps], expected_buttons(arrays, steps))
        np.testing.assert_array_equal(episode_rows(name, "actions/camera_deg")[:steps], arrays["action$camera"])
        np.testing.assert_array_equal(episode_rows(name, "rewards"), np.append(arrays["reward"], 0))
        assert episode_rows(name, "has_action").tolist() == [1] * steps + [0], name


def test_a_metadata_frame_count_the_video_disagrees_with_is_noted(aligned):
    _, episodes, _ = aligned
    decoded = 2 + ALIGNED_FRAMES
    assert episodes["wrongcount_s2"]["notes"]["video_frame_count_mismatch"] == {"metadata": WRONG_COUNT,
                                                                                 "decoded": decoded}
    assert [name for name in ALIGNED if "video_frame_count_mismatch" in episodes[name]["notes"]] == ["wrongcount_s2"]


def test_is_terminal_marks_the_goal_reaching_action_of_a_success_only(aligned):
    _, episodes, episode_rows = aligned
    steps = ALIGNED_FRAMES - 1
    for name in ALIGNED:
        success = episodes[name]["notes"].get("success", False)
        assert success == name.startswith(("meta", "wrongcount")), name  # nokey_s3 failed; nometa has no record
        # a success ends the episode with its last action (row steps - 1); the final frame's row has no action
        expected = [0] * (steps - 1) + [1, 0] if success else [0] * ALIGNED_FRAMES
        assert episode_rows(name, "is_terminal").tolist() == expected, name


def test_extracted_layout_is_copied_exactly(minerl):
    src, out = minerl
    folder = src / "z_extracted"
    np.testing.assert_array_equal(rows(out, "frames", 1), np.load(folder / "frames.npy"))
    np.testing.assert_array_equal(rows(out, "rewards", 1), np.load(folder / "rewards.npy"))
    arrays = load_arrays(folder / "actions.npz")
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
    makers.write_minerl_raw(src / "e_video_too_short", 12)
    makers.write_h264(src / "e_video_too_short" / "recording.mp4", 10, 64, 64)  # 11 steps need 12 frames
    makers.write_minerl_raw(src / "f_malformed_metadata", 12)
    (src / "f_malformed_metadata" / "metadata.json").write_text('{"success": tru')
    makers.write_minerl_raw(src / "g_metadata_wrong_type", 12)
    rewrite_metadata(src / "g_metadata_wrong_type", true_video_frame_count="12")
    makers.write_minerl_raw(src / "h_metadata_not_object", 12)
    (src / "h_metadata_not_object" / "metadata.json").write_text("[12]")
    makers.write_minerl_raw(src / "i_text_rewards", 12)
    np.savez(src / "i_text_rewards" / "rendered.npz", **makers.minerl_action_arrays(11), reward=np.full(11, "1"))
    result = run_cli("ingest", "minerl", src, "--out", tmp_path / "store")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    manifest = read_manifest(tmp_path / "store")
    assert [e["id"] for e in manifest["episodes"]] == ["a_good"]
    failed = {f["id"]: f for f in manifest["failed"]}
    assert sorted(failed) == ["b_no_rendered", "c_corrupt_npz", "d_short_actions", "e_video_too_short",
                              "f_malformed_metadata", "g_metadata_wrong_type", "h_metadata_not_object",
                              "i_text_rewards"]
    assert failed["b_no_rendered"]["file"].endswith("b_no_rendered/rendered.npz")
    assert failed["c_corrupt_npz"]["file"].endswith("rendered.npz")
    assert "7 steps, expected 10" in failed["d_short_actions"]["reason"]
    assert failed["e_video_too_short"]["file"].endswith("e_video_too_short/recording.mp4")
    assert "10 frames" in failed["e_video_too_short"]["reason"] and "12" in failed["e_video_too_short"]["reason"]
    for name in ("f_malformed_metadata", "g_metadata_wrong_type", "h_metadata_not_object"):
        assert failed[name]["file"].endswith(f"{name}/metadata.json"), name
    assert "true_video_frame_count" in failed["g_metadata_wrong_type"]["reason"]
    assert failed["i_text_rewards"]["file"].endswith("i_text_rewards/rendered.npz")
    lines = [line for line in result.stderr.splitlines() if line.startswith("failed:")]
    assert len(lines) == 8
