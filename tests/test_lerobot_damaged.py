"""LeRobot videos that are damaged or that a decoder cannot open: real PyAV-written H.264 and AV1 files.

A v3 mp4 concatenates episodes, so a download cut short damages only the episodes whose frames lie
past the cut: decoding must stop at each episode's last frame (no read-ahead into the damage). A file
decord cannot open (it has no AV1, LeRobot's default codec, and cannot open an mp4 cut short) is read with
PyAV, said in one line, and the manifest records which decoder read each episode.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import av
import numpy as np
import pytest

from conftest import read_manifest, run_cli
from dreamer_data.ingest import IngestPlan, ingest
from dreamer_data.sources import ReadOptions
from dreamer_data.sources.lerobot import LeRobotSource
from dreamer_data.store.reader import StoreReader
from lerobot_makers import action_row, code_frame, read_code, write_lerobot

LENGTHS = [16, 16, 16]  # one v3 video file holds all three episodes
SIZE = (16, 32)
CHUNK = 32  # ReadOptions' default frame_chunk_rows: the read-ahead a chunked decoder would do


def noisy(code: int, height: int, width: int) -> np.ndarray:
    """The code frame plus seeded noise: packets of ~1 kB, so the file's bytes are mostly frames."""
    noise = np.random.default_rng(code).integers(-4, 5, (height, width, 3))
    return (code_frame(code, height, width) + noise).astype(np.uint8)


def moov_first(path: Path) -> None:
    """Remux with the index (moov) before the frames, as a streamable mp4 is written: then a cut-off file
    still opens and keeps every frame before the cut (with the index last, nothing can be located)."""
    remuxed = path.with_suffix(".remux.mp4")
    with av.open(str(path)) as source, av.open(str(remuxed), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream_from_template(source.streams.video[0])
        for packet in source.demux(source.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    remuxed.replace(path)


def first_frame_lost(path: Path, keep: int) -> int:
    """Lowest display index among the frames whose packet does not fit in the first ``keep`` bytes."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        ticks = 1 / (stream.average_rate * stream.time_base)
        return min(round(p.pts / ticks) for p in container.demux(stream) if p.size and p.pos + p.size > keep)


def ingest_with(src: Path, out: Path, backend: str) -> tuple:
    source = LeRobotSource(str(src), ReadOptions(resolution=SIZE, video_backend=backend))
    return ingest(source, str(out), IngestPlan(workers=0)), StoreReader(str(out))


def decoder_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "dreamer_data.video.decode"]


@pytest.mark.parametrize("backend", ["pyav", "decord"])
def test_truncated_v3_video_keeps_the_episodes_before_the_cut(tmp_path, backend, caplog):
    intact = write_lerobot(tmp_path / "intact", "v3.0", LENGTHS, per_data_file=3, video={"paint": noisy})
    moov_first(intact.video_file(0))
    shutil.copytree(intact.root, tmp_path / "cut")
    video = tmp_path / "cut" / intact.video_file(0).relative_to(intact.root)
    data = video.read_bytes()
    keep = int(len(data) * 0.6)
    video.write_bytes(data[:keep])
    lost = first_frame_lost(intact.video_file(0), keep)
    # the cut damages episode 1 within one chunk of episode 0's end: a decoder reading ahead by a chunk hits it
    assert LENGTHS[0] < lost < LENGTHS[0] + LENGTHS[1] and lost < CHUNK

    _, reference = ingest_with(intact.root, tmp_path / "reference", "pyav")
    caplog.set_level(logging.WARNING)
    report, reader = ingest_with(tmp_path / "cut", tmp_path / "store", backend)

    assert [e["id"] for e in reader.episodes] == ["episode_000000"] and report.ingested == 1
    np.testing.assert_array_equal(reader.array("frames")[:], reference.array("frames")[:LENGTHS[0]])  # bit-identical
    assert [read_code(f) for f in reader.array("frames")[:]] == list(range(LENGTHS[0]))
    np.testing.assert_array_equal(reader.array("actions/continuous")[:], intact.actions(0))
    assert reader.episodes[0]["notes"]["decoder"] == "pyav"
    failed = {f["id"]: (f["file"], f["reason"]) for f in report.failed}
    assert sorted(failed) == ["episode_000001", "episode_000002"]
    for file, reason in failed.values():
        assert file == str(video) and "\n" not in reason
        assert reason.startswith(("undecodable video after frame", "video is shorter than the parquet rows"))
    warnings = decoder_warnings(caplog)
    if backend == "decord":  # decord cannot open a cut-off mp4 at all: PyAV reads it, announced once for the file
        assert len(warnings) == 1 and warnings[0].startswith(f"{video}: decord failed (cannot open video")
        assert warnings[0].endswith("read with pyav instead")
        assert all(reason.endswith("(read with pyav: decord cannot open this video)") for _, reason in failed.values())
    else:
        assert warnings == []


def test_a_cut_just_after_an_episode_costs_none_of_its_frames(tmp_path):
    """The file ends 100 bytes into the first packet after episode 0's last frame. Decoding stops at that
    frame, and the frames the decoder holds back for B-frame reordering still come out before the error."""
    intact = write_lerobot(tmp_path / "intact", "v3.0", LENGTHS, per_data_file=3, video={"paint": noisy})
    moov_first(intact.video_file(0))
    shutil.copytree(intact.root, tmp_path / "cut")
    video = tmp_path / "cut" / intact.video_file(0).relative_to(intact.root)
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        ticks = 1 / (stream.average_rate * stream.time_base)
        packets = [(round(p.pts / ticks), p.pos, p.size) for p in container.demux(stream) if p.size]
    assert [frame for frame, _, _ in packets[:8]] == [0, 3, 1, 2, 4, 7, 5, 6]  # decode order: B-frames reordered
    last = LENGTHS[0] - 1
    keep = max(pos + size for frame, pos, size in packets if frame <= last) + 100
    assert any(pos < keep < pos + size for _, pos, size in packets)  # the cut is inside a packet
    video.write_bytes(video.read_bytes()[:keep])
    _, reference = ingest_with(intact.root, tmp_path / "reference", "pyav")
    report, reader = ingest_with(tmp_path / "cut", tmp_path / "store", "pyav")
    assert [e["id"] for e in reader.episodes] == ["episode_000000"]
    np.testing.assert_array_equal(reader.array("frames")[:], reference.array("frames")[:LENGTHS[0]])
    assert {f["id"] for f in report.failed} == {"episode_000001", "episode_000002"}


def test_av1_with_decord_falls_back_to_pyav_in_one_line(tmp_path):
    assert "libsvtav1" in av.codecs_available  # LeRobot's default AV1 encoder, bundled with PyAV's FFmpeg
    lengths = [7, 12, 9]
    dataset = write_lerobot(tmp_path / "ds", "v3.0", lengths, height=64, width=64,
                            video={"codec": "libsvtav1", "gop": 2, "crf": 30})
    video = dataset.video_file(0)
    with av.open(str(video)) as container:
        assert container.streams.video[0].codec_context.name in ("libdav1d", "av1")
    runs = {}
    for backend in ("decord", "pyav"):
        store = tmp_path / f"store-{backend}"
        runs[backend] = run_cli("ingest", "lerobot", dataset.root, "--out", store, "--resolution", "16x32",
                                "--backend", backend, "--workers", "1")
        assert runs[backend].returncode == 0, runs[backend].stderr
    lines = [line for line in runs["decord"].stderr.splitlines() if "decord failed" in line]
    assert len(lines) == 1, runs["decord"].stderr
    assert lines[0].startswith(f"{video}: decord failed (cannot open video (") and lines[0].endswith(
        "read with pyav instead")
    assert "decord failed" not in runs["pyav"].stderr
    manifest = read_manifest(tmp_path / "store-decord")
    assert manifest["source"]["settings"]["video_backend"] == "decord"
    assert [e["notes"]["decoder"] for e in manifest["episodes"]] == ["pyav"] * 3
    fell_back, plain = StoreReader(str(tmp_path / "store-decord")), StoreReader(str(tmp_path / "store-pyav"))
    assert [read_code(f) for f in fell_back.array("frames")[:]] == list(range(sum(lengths)))
    np.testing.assert_array_equal(fell_back.array("frames")[:], plain.array("frames")[:])
    np.testing.assert_array_equal(fell_back.array("actions/continuous")[:],
                                  np.stack([action_row(g, 3) for g in range(sum(lengths))]))


def test_decord_reads_what_it_can_open_and_says_so(tmp_path):
    write_lerobot(tmp_path / "ds", "v3.0", LENGTHS)
    report, reader = ingest_with(tmp_path / "ds", tmp_path / "store", "decord")
    assert report.failed == [] and [e["notes"]["decoder"] for e in reader.episodes] == ["decord"] * 3
    assert [read_code(f) for f in reader.array("frames")[:]] == list(range(sum(LENGTHS)))


def test_a_file_neither_decoder_opens_fails_with_the_requested_decoders_reason(tmp_path):
    dataset = write_lerobot(tmp_path / "ds", "v3.0", LENGTHS)
    video = dataset.video_file(0)
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 2])  # index (moov) last: cut off with the tail
    for backend in ("pyav", "decord"):
        report, _ = ingest_with(tmp_path / "ds", tmp_path / f"store-{backend}", backend)
        assert {f["file"] for f in report.failed} == {str(video)} and len(report.failed) == 3
        reasons = {f["reason"] for f in report.failed}
        assert len(reasons) == 1 and reasons.pop().startswith("cannot open video (")
        # PyAV's errors read "[Errno N] ...": with decord asked for, PyAV tried it last, yet the reason is decord's
        assert ("[Errno" in report.failed[0]["reason"]) == (backend == "pyav"), report.failed[0]["reason"]
