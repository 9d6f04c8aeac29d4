"""LeRobot ingest: real v2.1 / v3.0 datasets on disk (pyarrow parquet, PyAV H.264) → verified stores."""

from __future__ import annotations

import json
from pathlib import Path

import av
import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from cli.data import app
from dreamer_data.errors import DreamerDataError
from dreamer_data.ingest import IngestPlan, ingest
from dreamer_data.sources import ReadOptions, source_class
from dreamer_data.sources.lerobot import LeRobotSource
from dreamer_data.sources.lerobot.frames import frames_at
from dreamer_data.store.merge import merge_stores
from dreamer_data.store.reader import StoreReader
from dreamer_data.store.verify import verify_store
from lerobot_makers import CAMERA_CODE, action_row, read_code, state_row, write_lerobot, write_video

LENGTHS = [7, 12, 9, 20, 5]  # v3: video files hold episodes 0-2 and 3-4, data files 0-1, 2-3 and 4
SIZE = (16, 32)


def run_ingest(src: Path | str, out: Path, plan: IngestPlan | None = None, **options) -> tuple:
    source = LeRobotSource(str(src), ReadOptions(resolution=SIZE, **options))
    report = ingest(source, str(out), plan or IngestPlan(workers=0))
    return report, StoreReader(str(out))


def codes(reader: StoreReader) -> np.ndarray:
    return np.array([read_code(frame) for frame in reader.array("frames")[:]])


def failures(report) -> dict[str, tuple[str, str]]:
    return {f["id"]: (f["file"], f["reason"]) for f in report.failed}


@pytest.mark.parametrize("version,backend", [("v2.1", "pyav"), ("v3.0", "pyav"), ("v3.0", "decord")])
def test_rows_and_frames_align_exactly(tmp_path, version, backend):
    dataset = write_lerobot(tmp_path / "ds", version, LENGTHS)
    report, reader = run_ingest(tmp_path / "ds", tmp_path / "store", video_backend=backend)
    assert report.failed == [] and report.frames == sum(LENGTHS)
    g = np.arange(sum(LENGTHS))
    assert codes(reader).tolist() == g.tolist()  # frame of row t shows global frame t
    np.testing.assert_array_equal(reader.array("actions/continuous")[:], np.stack([action_row(i, 3) for i in g]))
    np.testing.assert_array_equal(reader.array("state")[:], np.stack([state_row(i, 2) for i in g]))
    np.testing.assert_array_equal(reader.array("rewards")[:], (g % 3 == 0).astype(np.float32))
    ends = np.cumsum(LENGTHS)
    assert reader.group["meta/episode_ends"][:].tolist() == ends.tolist()
    assert np.flatnonzero(reader.array("is_terminal")[:]).tolist() == (ends - 1).tolist()
    assert reader.array("has_action")[:].all() and not reader.array("is_null_action")[:].any()
    assert [e["id"] for e in reader.episodes] == [f"episode_{i:06d}" for i in range(len(LENGTHS))]
    assert [e["notes"]["decoder"] for e in reader.episodes] == [backend] * len(LENGTHS)
    if version == "v3.0":
        assert [e["notes"]["video_start_frame"] for e in reader.episodes] == [0, 7, 19, 0, 20]
    manifest = reader.manifest
    assert manifest["observation"] == {
        "height": 16, "width": 32, "channels": 3, "fps": 10, "native_height": 32, "native_width": 64,
        "resize": "area, no crop", "camera": "observation.images.top", "lerobot_version": version,
        "state": {"size": 2, "names": ["motor_0", "motor_1"], "dtype": "float32"}}
    assert manifest["rewards"]["present"] and manifest["source"]["settings"]["camera"] == "observation.images.top"
    assert manifest["actions"]["continuous"]["names"] == ["joint_0", "joint_1", "joint_2"]
    assert verify_store(str(tmp_path / "store")) == []
    assert dataset.lengths == [e["length"] for e in reader.episodes]


def test_av1_videos_as_lerobot_encodes_them(tmp_path):
    lengths = [7, 12, 9, 6]
    write_lerobot(tmp_path / "ds", "v3.0", lengths, height=64, width=64,
                  video={"codec": "libsvtav1", "gop": 2, "crf": 30})
    report, reader = run_ingest(tmp_path / "ds", tmp_path / "store")
    assert report.failed == [] and codes(reader).tolist() == list(range(sum(lengths)))


@pytest.mark.parametrize("version", ["v2.1", "v3.0"])
def test_action_statistics_are_exact_and_skip_unlabeled_rows(tmp_path, version):
    write_lerobot(tmp_path / "ds", version, LENGTHS, unlabeled=(1,))
    report, reader = run_ingest(tmp_path / "ds", tmp_path / "store")
    assert report.failed == []
    has_action = reader.array("has_action")[:]
    episode = np.repeat(np.arange(len(LENGTHS)), LENGTHS)
    assert has_action.tolist() == (episode != 1).astype(int).tolist()  # unlabeled video kept, flagged
    assert reader.array("is_null_action")[:].tolist() == (episode == 1).astype(int).tolist()
    assert not reader.array("actions/continuous")[:][episode == 1].any()
    assert reader.episodes[1]["notes"]["rows_without_action"] == LENGTHS[1]
    labeled = np.stack([action_row(g, 3) for g in np.flatnonzero(episode != 1)]).astype(np.float64)
    stats = reader.manifest["actions"]["continuous"]["stats"]
    assert stats["rows"] == len(labeled) and stats["episodes"] == len(LENGTHS)
    expected = {"min": labeled.min(0), "max": labeled.max(0), "mean": labeled.mean(0), "std": labeled.std(0),
                "q01": np.quantile(labeled, 0.01, axis=0), "q99": np.quantile(labeled, 0.99, axis=0)}
    for key, values in expected.items():
        np.testing.assert_allclose(stats[key], values, rtol=1e-12, atol=1e-12, err_msg=key)


def test_dataset_without_actions_is_stored_as_unlabeled_video(tmp_path):
    write_lerobot(tmp_path / "ds", "v3.0", [6, 4], action_dim=None, reward_done=False)
    report, reader = run_ingest(tmp_path / "ds", tmp_path / "store")
    assert report.failed == []
    assert "actions/continuous" not in reader.fields and reader.manifest["actions"] == {}
    assert codes(reader).tolist() == list(range(10))
    assert not reader.array("has_action")[:].any() and reader.array("is_null_action")[:].all()
    assert not reader.manifest["rewards"]["present"] and not reader.array("is_terminal")[:].any()


def test_dataset_on_an_fsspec_url(tmp_path):
    write_lerobot(tmp_path / "ds", "v3.0", LENGTHS)
    memory = fsspec.filesystem("memory")
    for path in (tmp_path / "ds").rglob("*"):
        if path.is_file():
            memory.pipe(f"/lerobot-test/{path.relative_to(tmp_path / 'ds')}", path.read_bytes())
    try:
        report, reader = run_ingest("memory://lerobot-test", tmp_path / "store")
    finally:
        memory.rm("/lerobot-test", recursive=True)
    assert report.failed == [] and codes(reader).tolist() == list(range(sum(LENGTHS)))
    assert reader.episodes[0]["source_file"] == "memory://lerobot-test/data/chunk-000/file-000.parquet"


def test_parts_agree_on_statistics_merge_and_resume(tmp_path):
    write_lerobot(tmp_path / "ds", "v3.0", LENGTHS)
    _, whole = run_ingest(tmp_path / "ds", tmp_path / "whole")
    parts = [tmp_path / f"part{i}" for i in range(2)]
    for i, part in enumerate(parts):
        run_ingest(tmp_path / "ds", part, IngestPlan(part=(i, 2), workers=0))
    assert StoreReader(str(parts[0])).manifest["actions"] == StoreReader(str(parts[1])).manifest["actions"]
    merge_stores([str(p) for p in parts], str(tmp_path / "merged"))
    merged = StoreReader(str(tmp_path / "merged"))
    assert merged.manifest["actions"] == whole.manifest["actions"]
    np.testing.assert_array_equal(merged.array("actions/continuous")[:], whole.array("actions/continuous")[:])
    np.testing.assert_array_equal(merged.array("frames")[:], whole.array("frames")[:])
    report, _ = run_ingest(tmp_path / "ds", parts[0], IngestPlan(part=(0, 2), workers=0))
    assert (report.skipped, report.ingested) == (3, 0)


def test_frame_index_picks_frames_when_rows_skip_frames(tmp_path):
    dataset = write_lerobot(tmp_path / "ds", "v2.1", [9, 8])
    table = pq.read_table(dataset.data_file(0))
    kept = table.filter(pa.array(np.arange(9) % 3 != 1))  # rows of frames 0, 2, 3, 5, 6, 8 remain
    pq.write_table(kept, dataset.data_file(0))
    (dataset.root / "meta/episodes.jsonl").write_text(
        json.dumps({"episode_index": 0, "length": 6}) + "\n" + json.dumps({"episode_index": 1, "length": 8}) + "\n")
    report, reader = run_ingest(tmp_path / "ds", tmp_path / "store")
    assert report.failed == []
    assert codes(reader)[:6].tolist() == [0, 2, 3, 5, 6, 8]
    assert reader.array("actions/continuous")[:6, 0].tolist() == [0, 2, 3, 5, 6, 8]


def test_frames_at_seeks_by_integer_index_in_a_concatenated_file(tmp_path):
    video = write_video(tmp_path / "v.mp4", list(range(100)), 32, 64, fps=10, gop=7, bframes=2)
    for backend in ("pyav", "decord"):
        options = ReadOptions(frame_chunk_rows=5, video_backend=backend)
        for wanted in (np.arange(0, 10), np.arange(7, 30), np.arange(50, 61), np.array([93, 95, 99])):
            with open(video, "rb") as handle:
                got = [read_code(f) for chunk in frames_at(handle, str(video), wanted, 10, options) for f in chunk]
            assert got == wanted.tolist(), (backend, wanted[0])


def test_dropped_frame_fails_instead_of_shifting_rows(tmp_path):
    path = tmp_path / "dropped.mp4"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        for i in [k for k in range(20) if k != 8]:  # frame 8 is missing from the timeline
            frame = av.VideoFrame.from_ndarray(np.full((32, 64, 3), 16 + 10 * i, np.uint8), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with open(path, "rb") as handle, pytest.raises(DreamerDataError, match="dropped, repeated or shifted"):
        list(frames_at(handle, str(path), np.arange(0, 15), 10, ReadOptions()))


def test_missing_and_short_videos_fail_their_episode_only(tmp_path):
    dataset = write_lerobot(tmp_path / "ds", "v2.1", LENGTHS)
    dataset.video_file(1).unlink()
    write_video(dataset.video_file(2), list(range(19, 19 + 6)), 32, 64, fps=10)  # 6 frames for 9 rows
    report, reader = run_ingest(tmp_path / "ds", tmp_path / "store")
    failed = failures(report)
    assert failed["episode_000001"] == (str(dataset.video_file(1)), "missing video file")
    file, reason = failed["episode_000002"]
    assert file == str(dataset.video_file(2))
    assert reason == "video is shorter than the parquet rows: it ends at frame 6 but row 6 needs frame 6 (3 rows have no frame)"
    assert [e["id"] for e in reader.episodes] == ["episode_000000", "episode_000003", "episode_000004"]
    assert codes(reader).tolist() == list(range(7)) + list(range(28, 53))


def test_v3_episode_longer_than_its_video_segment_fails(tmp_path):
    dataset = write_lerobot(tmp_path / "ds", "v3.0", LENGTHS)
    meta = tmp_path / "ds/meta/episodes/chunk-000/file-000.parquet"
    table = pq.read_table(meta)
    column = "videos/observation.images.top/to_timestamp"
    to = table.column(column).to_pylist()
    to[1] -= 0.2  # episode 1's segment is now 2 frames shorter than its 12 rows
    pq.write_table(table.set_column(table.schema.get_field_index(column), column, pa.array(to)), meta)
    write_video(dataset.video_file(3), list(range(28, 28 + 23)), 32, 64, fps=10)  # file 1 ends 2 frames early
    report, reader = run_ingest(tmp_path / "ds", tmp_path / "store")
    failed = failures(report)
    assert failed["episode_000001"] == (str(dataset.video_file(1)), "video is shorter than the parquet rows: "
                                        "episode 1 spans frames 7..16 of this file (from/to_timestamp) but its rows "
                                        "need frame 18")
    assert failed["episode_000004"][0] == str(dataset.video_file(4))
    assert failed["episode_000004"][1].startswith("video is shorter than the parquet rows: it ends at frame 23")
    assert [e["id"] for e in reader.episodes] == ["episode_000000", "episode_000002", "episode_000003"]


def test_schema_mismatch_and_truncated_files_fail_with_the_file_named(tmp_path):
    dataset = write_lerobot(tmp_path / "ds", "v2.1", LENGTHS)
    table = pq.read_table(dataset.data_file(3))
    wide = pa.array([row + [0.0] for row in table.column("action").to_pylist()], pa.list_(pa.float32()))
    pq.write_table(table.set_column(table.schema.get_field_index("action"), "action", wide), dataset.data_file(3))
    for path in (dataset.data_file(0), dataset.video_file(4)):
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    report, reader = run_ingest(tmp_path / "ds", tmp_path / "store")
    failed = failures(report)
    assert failed["episode_000003"] == (str(dataset.data_file(3)),
                                        "column 'action' has width 4 at row 0, meta/info.json says 3")
    assert failed["episode_000000"][0] == str(dataset.data_file(0))
    assert failed["episode_000000"][1].startswith("unreadable parquet")
    assert failed["episode_000004"][0] == str(dataset.video_file(4))
    assert failed["episode_000004"][1].startswith(("cannot open video", "undecodable video"))
    assert all("\n" not in reason for _, reason in failed.values())
    assert [e["id"] for e in reader.episodes] == ["episode_000001", "episode_000002"]
    stats = reader.manifest["actions"]["continuous"]["stats"]
    assert stats["episodes_left_out"] == ["episode_000000", "episode_000003"]
    assert stats["rows"] == sum(LENGTHS) - LENGTHS[0] - LENGTHS[3]


def test_truncated_v3_video_fails_every_episode_it_holds(tmp_path):
    dataset = write_lerobot(tmp_path / "ds", "v3.0", LENGTHS)
    path = dataset.video_file(0)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    report, reader = run_ingest(tmp_path / "ds", tmp_path / "store")
    assert sorted(failures(report)) == ["episode_000000", "episode_000001", "episode_000002"]
    assert {file for file, _ in failures(report).values()} == {str(path)}
    assert codes(reader).tolist() == list(range(28, 53))


def test_camera_choice(tmp_path):
    cameras = ("observation.images.top", "observation.images.wrist")
    write_lerobot(tmp_path / "ds", "v3.0", [6, 5, 7, 4], cameras=cameras)
    with pytest.raises(DreamerDataError, match="several cameras .*; choose one with --camera"):
        LeRobotSource(str(tmp_path / "ds"), ReadOptions()).list_episodes()
    with pytest.raises(DreamerDataError, match="no feature 'observation.images.side'; cameras: "):
        LeRobotSource(str(tmp_path / "ds"), ReadOptions(camera="observation.images.side")).list_episodes()
    with pytest.raises(DreamerDataError, match="has dtype 'float32'; only video cameras"):
        LeRobotSource(str(tmp_path / "ds"), ReadOptions(camera="observation.state")).list_episodes()
    assert source_class("lerobot") is LeRobotSource

    runner = CliRunner()
    store = tmp_path / "store"
    result = runner.invoke(app, ["ingest", "lerobot", str(tmp_path / "ds"), "--out", str(store),
                                 "--camera", "observation.images.wrist", "--resolution", "16x32"])
    assert result.exit_code == 0, result.output
    reader = StoreReader(str(store))
    assert codes(reader).tolist() == [CAMERA_CODE + g for g in range(22)]
    assert reader.manifest["source"]["settings"]["camera"] == "observation.images.wrist"
    result = runner.invoke(app, ["ingest", "lerobot", str(tmp_path / "ds"), "--out", str(tmp_path / "other")])
    assert result.exit_code != 0 and "choose one with --camera" in result.output


def test_bad_dataset_folder_is_one_clear_error(tmp_path):
    (tmp_path / "ds/meta").mkdir(parents=True)
    with pytest.raises(DreamerDataError, match=r"meta/info.json: missing"):
        LeRobotSource(str(tmp_path / "ds"), ReadOptions()).list_episodes()
    (tmp_path / "ds/meta/info.json").write_text(json.dumps({"codebase_version": "v1.6", "fps": 10, "data_path": "",
                                                            "video_path": "", "features": {}}))
    with pytest.raises(DreamerDataError, match="codebase_version 'v1.6' is not supported"):
        LeRobotSource(str(tmp_path / "ds"), ReadOptions()).list_episodes()
