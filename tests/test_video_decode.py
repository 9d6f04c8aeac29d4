"""Video decoding behind one interface: PyAV and decord agree on frames; bad files fail as EpisodeError."""

from __future__ import annotations

import os

import av
import fsspec
import numpy as np
import pytest

import makers
from dreamer_data.errors import EpisodeError
from dreamer_data.video import BACKENDS, decode_video, probe_video

N_FRAMES = 45


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return makers.write_h264(tmp_path_factory.mktemp("video") / "clip.mp4", N_FRAMES, makers.SMALL_HEIGHT,
                             makers.SMALL_WIDTH)


def decode_all(source, backend="pyav", size=None, chunk=16) -> np.ndarray:
    chunks = list(decode_video(source, file="clip.mp4", size=size, backend=backend, chunk=chunk))
    return np.concatenate(chunks) if chunks else np.zeros((0, 1, 1, 3), np.uint8)


@pytest.mark.parametrize("backend", BACKENDS)
def test_frames_in_display_order_at_native_size(video, backend):
    frames = decode_all(str(video), backend)
    assert frames.shape == (N_FRAMES, makers.SMALL_HEIGHT, makers.SMALL_WIDTH, 3) and frames.dtype == np.uint8
    assert [makers.pattern_index(f) for f in frames] == list(range(N_FRAMES))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("size", [(36, 64), (64, 64), (32, 40)])
def test_resize_in_the_decoder(video, backend, size):
    frames = decode_all(str(video), backend, size=size)
    assert frames.shape == (N_FRAMES, *size, 3)
    assert [makers.pattern_index(f) for f in frames] == list(range(N_FRAMES))


def test_backends_give_the_same_frame_count_and_content(video):
    pyav, decord = (decode_all(str(video), backend, size=(36, 64)) for backend in BACKENDS)
    assert len(pyav) == len(decord) == N_FRAMES == probe_video(str(video), "clip.mp4")["frames"]
    # flat grey regions: both decoders agree up to rounding in their colour conversion / scaler
    assert np.abs(pyav[:, 9:27, 8:24].astype(int) - decord[:, 9:27, 8:24]).max() <= 4


@pytest.mark.parametrize("backend", BACKENDS)
def test_chunks_are_bounded_and_cover_every_frame(video, backend):
    chunks = list(decode_video(str(video), file="clip.mp4", size=(36, 64), backend=backend, chunk=16))
    assert [len(c) for c in chunks] == [16, 16, 13]


@pytest.mark.parametrize("backend", BACKENDS)
def test_reads_fsspec_file_objects(video, backend):
    fs = fsspec.filesystem("memory")
    fs.pipe("/decode-test/clip.mp4", video.read_bytes())
    with fsspec.open("memory://decode-test/clip.mp4", "rb") as handle:
        frames = decode_all(handle, backend, size=(36, 64))
    assert [makers.pattern_index(f) for f in frames] == list(range(N_FRAMES))


def test_probe_reports_size_and_rate(video):
    assert probe_video(str(video), "clip.mp4") == {"height": makers.SMALL_HEIGHT, "width": makers.SMALL_WIDTH,
                                                   "fps": 20.0, "frames": N_FRAMES}


@pytest.mark.parametrize("backend", BACKENDS)
def test_garbage_file_is_an_episode_error(tmp_path, backend):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 6000, dtype=np.uint8).tobytes())
    with pytest.raises(EpisodeError) as caught:
        decode_all(str(garbage), backend)
    assert caught.value.file == "clip.mp4" and "video" in caught.value.reason


def _faststart_copy(video, path):
    """The same clip with the moov box first (truncation then cuts frames, not the index)."""
    with av.open(str(video)) as source, av.open(str(path), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream_from_template(source.streams.video[0])
        for packet in source.demux(source.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    return path


def _packet_ends(path) -> list[int]:
    """The byte offset just past each video packet, in file order. ``write_h264`` uses x264's ultrafast
    preset, which has no B-frames: packet k holds frame k (decode order is display order)."""
    with av.open(str(path)) as container:
        packets = [p for p in container.demux(container.streams.video[0]) if p.size]
    assert [p.pts for p in packets] == sorted(p.pts for p in packets)  # no reordering
    return [p.pos + p.size for p in packets]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("layout", ["moov-last", "faststart"])
def test_truncated_file_at_any_byte_fails_cleanly_or_yields_a_prefix(video, tmp_path, backend, layout):
    """A cut-off download never raises anything but EpisodeError (which fails just that episode), and the
    frames it does yield are the clip's first frames, unchanged: frame i still shows index i, pixel for
    pixel as decoded from the intact file (a frame out of place would misalign frames and actions)."""
    source = video if layout == "moov-last" else _faststart_copy(video, tmp_path / "fast.mp4")
    data = source.read_bytes()
    intact = decode_all(str(source), backend, size=(36, 64))
    assert [makers.pattern_index(f) for f in intact] == list(range(N_FRAMES))
    ends = _packet_ends(source)
    assert len(ends) == N_FRAMES
    cut = tmp_path / "cut.mp4"
    outcomes, whole = {}, {}
    for keep in sorted({*range(16, len(data), max(1, len(data) // 60)), *(e for e in ends if e < len(data))}):
        cut.write_bytes(data[:keep])
        try:
            frames = decode_all(str(cut), backend, size=(36, 64))
        except EpisodeError as error:
            assert error.file == "clip.mp4" and "\n" not in error.reason
            outcomes[keep] = "error"
            continue
        outcomes[keep] = len(frames)
        assert len(frames) <= N_FRAMES
        assert [makers.pattern_index(f) for f in frames] == list(range(len(frames))), keep
        if len(frames):
            np.testing.assert_array_equal(frames, intact[:len(frames)], err_msg=f"cut at byte {keep}")
        if keep in ends:
            whole[ends.index(keep) + 1] = len(frames)
    assert "error" in outcomes.values()
    if layout == "faststart":
        # the index comes first, so a cut just past packet k leaves k whole frames, and all of them decode
        assert whole == {k: k for k in range(1, N_FRAMES)}
    else:  # the index (moov) comes last: a cut before its end loses it, and no frame can be located
        assert all(outcome == "error" for keep, outcome in outcomes.items() if keep <= ends[-1])


def test_unknown_backend_is_rejected(video):
    with pytest.raises(ValueError, match="unknown video backend"):
        decode_video(str(video), file="clip.mp4", backend="opencv")


def test_missing_file_is_an_episode_error(tmp_path):
    with pytest.raises(EpisodeError):
        decode_all(str(tmp_path / "nope.mp4"))
    assert not os.path.exists(tmp_path / "nope.mp4")


def test_decord_size_it_cannot_produce_blames_the_backend_not_the_file(video):
    """decord's scaler fails on some output widths (48, 72, …); the reason must not call the file broken."""
    with pytest.raises(EpisodeError) as caught:
        decode_all(str(video), "decord", size=(36, 48))
    assert "decord cannot resize to 36x48" in caught.value.reason and "pyav" in caught.value.reason
    assert len(decode_all(str(video), "pyav", size=(36, 48))) == N_FRAMES


def test_stop_ends_decoding_at_that_frame(video):
    decoded = decode_video(str(video), file="clip.mp4", size=(36, 64), chunk=4, stop=10)
    chunks = list(decoded)
    assert [len(c) for c in chunks] == [4, 4, 2] and decoded.backend == "pyav"
    assert [makers.pattern_index(f) for f in np.concatenate(chunks)] == list(range(10))


def test_decord_that_cannot_open_a_file_hands_it_to_pyav_once(tmp_path, caplog):
    """decord's FFmpeg has no AV1 decoder (LeRobot's default codec): PyAV reads the file, one warning per file."""
    from lerobot_makers import read_code, write_video

    assert "libsvtav1" in av.codecs_available
    path = write_video(tmp_path / "av1.mp4", list(range(12)), 64, 64, fps=10, codec="libsvtav1", gop=2, crf=30)
    caplog.set_level("WARNING")
    runs = []
    for _ in range(2):  # the same file twice (two episodes of one v3 file): still one line
        decoded = decode_video(str(path), file=str(path), size=(32, 32), backend="decord", chunk=5)
        runs.append((np.concatenate(list(decoded)), decoded.backend))
    plain = decode_all(str(path), "pyav", size=(32, 32))
    for frames, backend in runs:
        assert backend == "pyav" and [read_code(f) for f in frames] == list(range(12))
        np.testing.assert_array_equal(frames, plain)
    warnings = [r.getMessage() for r in caplog.records if r.name == "dreamer_data.video.decode"]
    assert len(warnings) == 1 and warnings[0].startswith(f"{path}: decord failed (cannot open video (")
    assert "\n" not in warnings[0] and warnings[0].endswith("read with pyav instead")
