"""``ingest --frames-as video``: frames kept as H.264 / AV1 clips in the store, read frame-exactly by pts.

Source videos are real H.264 and AV1 mp4s written with PyAV whose frame t shows the index of its store row
(``makers.frame_pattern``; 248 rows in all, each pattern unique), so a decoded frame says where it came from.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import zarr

import makers
from conftest import assert_same_store, cli_command, leftovers, read_manifest, run_cli
from dreamer_data import StreamDataset, WindowDataset
from dreamer_data.errors import DreamerDataError, StoreError
from dreamer_data.store.video_spec import VideoSettings
from dreamer_data.video import yuv420_to_rgb

HEIGHT, WIDTH = 72, 128
LENGTHS = (70, 85, 93)  # with 24-frame clips and gop 8: partial last clips and partial last GOPs everywhere
GOP, CLIP = 8, 24


def write_video(path: Path, frames: np.ndarray, codec: str) -> Path:
    """A real mp4 of ``frames`` with PyAV: H.264 (libx264) or AV1 (libsvtav1)."""
    os.environ.setdefault("SVT_LOG", "1")
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream({"h264": "libx264", "av1": "libsvtav1"}[codec], rate=20)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": "18", "preset": "ultrafast"} if codec == "h264" else {"crf": "20", "preset": "8"}
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_source(folder: Path, codec: str, lengths=LENGTHS, height: int = HEIGHT, width: int = WIDTH) -> Path:
    """VPT episodes whose frames show their store row (episodes follow each other in name order)."""
    folder.mkdir(parents=True, exist_ok=True)
    row = 0
    for index, length in enumerate(lengths):
        frames = np.stack([makers.frame_pattern(row + t, height, width) for t in range(length)])
        write_video(folder / f"ep{index:02d}.mp4", frames, codec)
        makers.write_jsonl(folder / f"ep{index:02d}.jsonl", makers.random_vpt_lines(length, index))
        row += length
    return folder


def video_args(src: Path, out: Path, codec: str = "h264", *extra: str) -> list[str]:
    return ["ingest", "vpt", str(src), "--out", str(out), "--resolution", f"{HEIGHT}x{WIDTH}", "--frames-as", "video",
            "--codec", codec, "--gop", str(GOP), "--chunk-frames", str(CLIP), *extra]


def build_store(built: dict[str, Path], codec: str, tmp_path_factory) -> Path:
    """The source (in ``codec``) ingested as video of the same codec, with webdataset shards; built once."""
    if codec not in built:
        root = tmp_path_factory.mktemp(f"video-{codec}")
        src = write_source(root / "src", codec)
        result = run_cli(*video_args(src, root / "store", codec, "--workers", "1", "--format", "both",
                                     "--clip-length", "20"))
        assert result.returncode == 0, result.stderr
        built[codec] = root / "store"
    return built[codec]


@pytest.fixture(scope="module")
def built() -> dict[str, Path]:
    return {}


@pytest.fixture(scope="module", params=["h264", "av1"])
def store(request, built, tmp_path_factory) -> Path:
    return build_store(built, request.param, tmp_path_factory)


@pytest.fixture(scope="module")
def h264_store(built, tmp_path_factory) -> Path:
    return build_store(built, "h264", tmp_path_factory)


def rows_of(frames: torch.Tensor) -> list[int]:
    return [makers.pattern_index(frame) for frame in frames.numpy()]


def test_manifest_records_the_encoding_and_nothing_else_changes(store):
    manifest = read_manifest(store)
    frames = manifest["fields"]["frames"]
    codec = "av1" if "av1" in str(store) else "h264"
    assert frames["storage"] == "video" and frames["path"] == "data/frames_video"
    assert frames["shape"] == [HEIGHT, WIDTH, 3] and frames["chunk_rows"] == CLIP
    assert {k: frames["video"][k] for k in ("codec", "gop", "pix_fmt", "clip_frames")} == {
        "codec": codec, "gop": GOP, "pix_fmt": "yuv420p", "clip_frames": CLIP}
    assert isinstance(frames["video"]["crf"], int)
    assert manifest["format_version"] == 2 and manifest["totals"]["frames"] == sum(LENGTHS)
    assert "storage" not in manifest["fields"]["actions/buttons"]  # the other fields stay zarr arrays
    clips = sorted(os.listdir(store / "data/frames_video/clips"))
    assert clips == [f"{n:08d}.mp4" for n in range(sum(-(-n // CLIP) for n in LENGTHS))]
    shown = " ".join(run_cli("inspect", store).stdout.split())
    crf = frames["video"]["crf"]
    assert f"frames as video │ {codec} crf {crf}, keyframe every {GOP}, {CLIP} frames per clip" in shown
    with av.open(str(store / "data/frames_video/clips" / clips[0])) as container:
        assert container.streams.video[0].codec_context.name in {"h264": ("h264",), "av1": ("libdav1d", "av1")}[codec]
        kinds = {av.video.frame.PictureType(frame.pict_type).name for frame in container.decode(video=0)}
    assert frames["video"]["bframes"] == {"h264": 0, "av1": None}[codec]
    if codec == "h264":  # no B-frames: a window's last frame decodes without the frames after it
        assert kinds == {"I", "P"}


def test_random_windows_find_every_frame_where_it_belongs(store):
    """1,000 random windows (and every episode's last one) through 2 DataLoader workers: every frame is its row's."""
    dataset = WindowDataset(store, length=16, load=["frames", "rewards"])
    ends = {e["id"]: e["end"] for e in read_manifest(store)["episodes"]}
    last = [i for i in range(len(dataset)) if ends[dataset.locate(i)[0]] == row_of(dataset, i) + 16]
    picks = np.concatenate([np.random.default_rng(0).integers(0, len(dataset), 1000), last])
    assert rows_of(dataset[0]["frames"]) == list(range(16))  # decoders open here before the workers fork (as
    # the tokenizer trainer reads its first window): each worker opens its own
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, picks.tolist()), batch_size=50, num_workers=2)
    windows = [window for batch in loader for window in batch["frames"]]
    assert len(windows) == len(picks)
    crossed = 0
    for index, frames in zip(picks.tolist(), windows):
        first = row_of(dataset, index)
        assert frames.shape == (16, HEIGHT, WIDTH, 3) and frames.dtype == torch.uint8
        assert rows_of(frames) == list(range(first, first + 16)), f"window {index}"
        episode_start = first - dataset.locate(index)[1]
        crossed += (first - episode_start) // CLIP != (first + 15 - episode_start) // CLIP
    assert crossed > 300 and len(last) == len(LENGTHS)


def test_yuv420p_windows_convert_to_the_rgb_windows(store):
    """frame_format="yuv420p" hands over the codec's planes (half the bytes); yuv420_to_rgb turns them into the
    RGB path's frames (same rows, near-identical pixels), also across clip boundaries and in last partial GOPs."""
    planes = WindowDataset(store, length=16, load="frames", frame_format="yuv420p")
    rgb = WindowDataset(store, length=16, load="frames")
    ends = {e["id"]: e["end"] for e in read_manifest(store)["episodes"]}
    last = [i for i in range(len(rgb)) if ends[rgb.locate(i)[0]] == row_of(rgb, i) + 16]
    picks = np.concatenate([np.random.default_rng(2).integers(0, len(rgb), 40), last]).tolist()
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(planes, picks), batch_size=20, num_workers=2)
    converted = torch.cat([yuv420_to_rgb(batch["frames"]) for batch in loader])
    crossed = 0
    for index, frames in zip(picks, converted):
        first = row_of(rgb, index)
        assert rows_of(frames) == list(range(first, first + 16)), f"window {index}"
        crossed += (rgb.locate(index)[1] // CLIP) != (rgb.locate(index)[1] + 15) // CLIP
        expected = rgb[index]["frames"]
        difference = (frames.int() - expected.int()).abs()
        mse = difference.float().pow(2).mean().item()
        assert difference.max() <= 3 and 10 * np.log10(255 ** 2 / max(mse, 1e-12)) >= 40, f"window {index}"
    assert crossed > 10 and len(converted) == len(picks)
    assert planes[0]["frames"].shape == (16, HEIGHT * 3 // 2, WIDTH) and planes[0]["frames"].dtype == torch.uint8


def test_a_manifest_without_bframes_reads_as_the_presets_b_frames(h264_store):
    """Stores written before ``bframes`` existed were encoded with x264's preset B-frames: resuming one keeps that."""
    video = read_manifest(h264_store)["fields"]["frames"]["video"]
    assert VideoSettings.from_json(video).encoder_options()["bf"] == "0"
    older = VideoSettings.from_json({key: value for key, value in video.items() if key != "bframes"})
    assert older.bframes is None and "bf" not in older.encoder_options()


def test_yuv420p_needs_video_frames_as_uint8(h264_store):
    with pytest.raises(StoreError, match="frame_format yuv420p needs a video-backed frames field"):
        WindowDataset(h264_store, length=16, load="rewards", frame_format="yuv420p")
    with pytest.raises(DreamerDataError, match="use frame_dtype uint8"):
        WindowDataset(h264_store, length=16, load="frames", frame_format="yuv420p", frame_dtype="float32")
    with pytest.raises(DreamerDataError, match="frame_format must be rgb24 or yuv420p, got 'nv12'"):
        WindowDataset(h264_store, length=16, frame_format="nv12")
    with pytest.raises(StoreError, match=f"{h264_store}: frame_format yuv420p needs a video-backed frames field"):
        StreamDataset(h264_store, length=16, load="rewards", frame_format="yuv420p")
    with pytest.raises(DreamerDataError, match="use frame_dtype uint8"):
        StreamDataset(h264_store, length=16, load="frames", frame_format="yuv420p", frame_dtype="float32")
    with pytest.raises(ValueError, match="uint8 planes with H and W even"):
        yuv420_to_rgb(torch.zeros(2, 10, 7, dtype=torch.uint8))


def row_of(dataset: WindowDataset, index: int) -> int:
    return dataset.index.locate(index)[1]


def test_strided_windows_across_episodes(store):
    dataset = WindowDataset(store, length=12, frame_step=3, cross_episodes=True, load="frames")
    for index in np.random.default_rng(1).integers(0, len(dataset), 100).tolist():
        first = row_of(dataset, index)
        item = dataset[index]
        assert rows_of(item["frames"]) == list(range(first, first + 34, 3))
        assert item["is_first"].tolist() == dataset.index.is_first(dataset.index.rows(first)).tolist()


def test_stream_dataset_yields_the_window_dataset_windows(store):
    """Shards carry no frames member; StreamDataset decodes the store's clips and matches WindowDataset."""
    streamed = list(StreamDataset(store, length=16, shuffle=0))
    windows = WindowDataset(store, length=16, stride=16)
    assert len(streamed) == len(windows)
    for index, item in enumerate(streamed):
        expected = windows[index]
        assert list(item) == list(expected)
        for field in item:
            assert torch.equal(item[field], expected[field]), (index, field)
        first = row_of(windows, index)
        assert rows_of(item["frames"]) == list(range(first, first + 16))
    with open(store / "wds/shard-000000.tar", "rb") as shard:
        assert b"frames.npy" not in shard.read()


def test_stream_dataset_yuv420p_windows_convert_to_its_rgb_windows(store):
    """StreamDataset(frame_format="yuv420p") hands over WindowDataset's planes for the same windows; converted,
    every frame is its row's and within the RGB stream's tolerance, across clip and shard-clip boundaries."""
    planes = list(StreamDataset(store, length=16, load="frames", frame_format="yuv420p", shuffle=0))
    rgb = list(StreamDataset(store, length=16, load="frames", shuffle=0))
    windows = WindowDataset(store, length=16, stride=16, load="frames", frame_format="yuv420p")
    assert len(planes) == len(rgb) == len(windows)
    for index, (item, expected) in enumerate(zip(planes, rgb)):
        assert item["frames"].shape == (16, HEIGHT * 3 // 2, WIDTH) and item["frames"].dtype == torch.uint8
        assert torch.equal(item["frames"], windows[index]["frames"]), f"window {index}"
        assert torch.equal(item["is_first"], expected["is_first"])
        frames = yuv420_to_rgb(item["frames"])
        first = row_of(windows, index)
        assert rows_of(frames) == list(range(first, first + 16)), f"window {index}"
        difference = (frames.int() - expected["frames"].int()).abs()
        mse = difference.float().pow(2).mean().item()
        assert difference.max() <= 3 and 10 * np.log10(255 ** 2 / max(mse, 1e-12)) >= 40, f"window {index}"


def test_plain_pyav_and_zarr_read_it_as_docs_format_says(store):
    """docs/FORMAT.md's recipe, without our code: index row → clip, seek to the keyframe, decode up to the pts."""
    manifest = json.loads((store / "manifest.json").read_text())
    field = manifest["fields"]["frames"]
    group = zarr.open_group(str(store), mode="r")
    index = group[f"{field['path']}/index"]
    gop = field["video"]["gop"]
    for row in (0, 23, 24, 69, 70, 161, 247):
        clip, frame, pts = (int(v) for v in index[row])
        key_pts = int(index[row - frame % gop, 2])
        with av.open(str(store / field["path"] / "clips" / f"{clip:08d}.mp4")) as container:
            stream = container.streams.video[0]
            container.seek(key_pts, stream=stream, backward=True, any_frame=False)
            image = next(f for f in container.decode(stream) if f.pts == pts).to_ndarray(format="rgb24")
        assert makers.pattern_index(image) == row


def test_verify_names_a_corrupt_and_a_truncated_clip(store, tmp_path):
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    assert run_cli("verify", copy).returncode == 0
    clips = copy / "data/frames_video/clips"
    corrupt = bytearray((clips / "00000001.mp4").read_bytes())
    corrupt[len(corrupt) // 2] ^= 0xFF
    (clips / "00000001.mp4").write_bytes(bytes(corrupt))
    makers.truncate_file(clips / "00000004.mp4", keep=0.5)
    result = run_cli("verify", copy)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("verify:")]
    assert len(lines) == 2, result.stderr
    assert "data/frames_video/clips/00000001.mp4: clip of episode ep00" in lines[0] and "fails its checksum" in lines[0]
    assert "data/frames_video/clips/00000004.mp4: clip of episode ep01" in lines[1]
    dataset = WindowDataset(copy, length=4, load="frames")  # a reader of the truncated clip: one line naming it
    with pytest.raises(StoreError, match=r"clips/00000004\.mp4: "):
        dataset[(LENGTHS[0] - 3) + 30]  # rows 100-103: ep01's second clip


@pytest.fixture(scope="module")
def resume_src(tmp_path_factory) -> Path:
    """Enough episodes (at native VPT size, resized) that a kill lands while the committer writes clips."""
    return write_source(tmp_path_factory.mktemp("video-resume-src"), "h264", lengths=(30,) * 8, height=180,
                        width=320)


@pytest.fixture(scope="module")
def clean(resume_src, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("video-clean") / "store"
    result = run_cli(*video_args(resume_src, out, "h264", "--workers", "2"))
    assert result.returncode == 0, result.stderr
    return out


def assert_same_video_store(a: Path, b: Path) -> None:
    assert_same_store(a, b)  # manifest episodes and checksums, every zarr array (frame index, clip digests)
    clips_a, clips_b = (sorted((p / "data/frames_video/clips").iterdir()) for p in (a, b))
    assert [p.name for p in clips_a] == [p.name for p in clips_b]
    assert all(x.read_bytes() == y.read_bytes() for x, y in zip(clips_a, clips_b))


def test_killed_ingest_resumes_to_the_clean_store(resume_src, clean, tmp_path):
    out = tmp_path / "store"
    for _ in range(4):  # a loaded machine may finish the run before the kill lands: retry on a fresh store
        process = subprocess.Popen([*cli_command(), *video_args(resume_src, out, "h264", "--workers", "2")],
                                   start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        clips = out / "data/frames_video/clips"
        deadline = time.monotonic() + 120
        while process.poll() is None and not (clips.is_dir() and any(clips.iterdir())) and time.monotonic() < deadline:
            time.sleep(0.002)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=60)
            process.stderr.close()
            break
        process.stderr.close()
        shutil.rmtree(out)
    else:
        pytest.fail("ingest finished before the kill could land in 4 attempts")
    assert process.returncode == -signal.SIGKILL
    assert read_manifest(out)["totals"]["episodes"] < len(os.listdir(resume_src)) // 2
    resumed = run_cli(*video_args(resume_src, out, "h264", "--workers", "2"))
    assert resumed.returncode == 0, resumed.stderr
    assert_same_video_store(clean, out)
    assert leftovers(out) == []
    assert run_cli("verify", out).returncode == 0


def test_parts_merge_to_the_single_run_store(resume_src, clean, tmp_path):
    parts = [tmp_path / f"part{i}" for i in range(2)]
    for i, part in enumerate(parts):
        result = run_cli(*video_args(resume_src, part, "h264", "--workers", "0", "--part", f"{i}/2"))
        assert result.returncode == 0, result.stderr
    merged = run_cli("merge", *parts, "--out", tmp_path / "merged")
    assert merged.returncode == 0, merged.stderr
    assert_same_video_store(clean, tmp_path / "merged")
    assert run_cli("verify", tmp_path / "merged").returncode == 0


def test_a_rerun_with_other_video_settings_is_refused(clean, resume_src, tmp_path):
    copy = tmp_path / "store"
    shutil.copytree(clean, copy)
    args = video_args(resume_src, copy, "h264", "--workers", "0")
    args[args.index("--gop") + 1] = "4"
    result = run_cli(*args)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "existing store has a different fields (frames.video.gop): 8 there, 4 in this run" in \
           " ".join(result.stderr.split())


def test_bad_video_options_are_one_line(resume_src, tmp_path):
    odd = run_cli(*video_args(resume_src, tmp_path / "odd", "h264")[:5], "--resolution", "35x64",
                  "--frames-as", "video")
    assert odd.returncode != 0 and "needs an even height and width" in odd.stderr and "Traceback" not in odd.stderr
    assert not (tmp_path / "odd").exists()
    stray = run_cli("ingest", "vpt", resume_src, "--out", tmp_path / "stray", "--gop", "8")
    assert stray.returncode != 0 and "add --frames-as video" in stray.stderr


def test_tokenizer_trains_on_it_and_tokenize_reads_it(tmp_path):
    """``dreamer-train tokenizer`` and ``dreamer-data tokenize`` read a video store through the loaders unchanged."""
    import yaml
    from typer.testing import CliRunner

    from cli.data import app as data_app
    from cli.train import app as train_app
    from dreamer_data.store.manifest import load_manifest
    from dreamer_data.store.reader import StoreReader
    from test_train_tokenizer import MINI_RUN

    src = write_source(tmp_path / "src", "h264", lengths=(12, 14, 13, 11))
    store = tmp_path / "store"
    result = run_cli(*video_args(src, store, "h264", "--workers", "0")[:5], "--resolution", "16x16", "--frames-as",
                     "video", "--gop", "4", "--chunk-frames", "8")
    assert result.returncode == 0, result.stderr
    config = tmp_path / "mini.yaml"
    config.write_text(yaml.safe_dump(MINI_RUN))
    runner = CliRunner()
    trained = runner.invoke(train_app, ["tokenizer", "--data", str(store), "--out", str(tmp_path / "run"), "--config",
                                        str(config), "--steps", "2", "--lpips-weight", "0", "--device", "cpu"])
    assert trained.exit_code == 0, trained.output
    tokenized = runner.invoke(data_app, ["tokenize", str(store), "--ckpt", str(tmp_path / "run"), "--device", "cpu"])
    assert tokenized.exit_code == 0, tokenized.output
    manifest = load_manifest(str(store))
    assert manifest["fields"]["latents"]["shape"] == [4, 8] and manifest["fields"]["frames"]["storage"] == "video"
    latents = StoreReader(str(store)).array("latents")
    assert latents.shape[0] == 50 and np.isfinite(latents[:].astype(np.float32)).all()
    assert run_cli("verify", store).returncode == 0


def test_store_on_a_memory_url_reads_and_verifies_like_the_local_one(h264_store):
    """Clips behind fsspec (written with pipe_file, decoded from file objects): same frames, same checksums."""
    import uuid

    import fsspec
    from typer.testing import CliRunner

    from cli.data import app

    store = h264_store
    url = f"memory://stores/{uuid.uuid4().hex}"
    fs = fsspec.filesystem("memory")
    try:
        args = video_args(store.parent / "src", Path("unused"), "h264", "--workers", "2")
        args[args.index("--out") + 1] = url
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        assert [e["checksums"] for e in read_manifest_url(url)["episodes"]] == \
               [e["checksums"] for e in read_manifest(store)["episodes"]]
        remote, local = WindowDataset(url, length=16, load="frames"), WindowDataset(store, length=16, load="frames")
        for index in (0, 30, 100, len(local) - 1):
            assert torch.equal(remote[index]["frames"], local[index]["frames"])
        assert CliRunner().invoke(app, ["verify", url]).exit_code == 0
        clip = f"{url}/data/frames_video/clips/00000002.mp4"
        fs.pipe_file(clip, fs.cat_file(clip)[:-100])
        checked = CliRunner().invoke(app, ["verify", url])
        assert checked.exit_code == 1 and "clips/00000002.mp4: clip of episode ep00" in " ".join(checked.output.split())
    finally:
        if fs.exists(url):
            fs.rm(url, recursive=True)


def read_manifest_url(url: str) -> dict:
    from dreamer_data.store.manifest import load_manifest

    return load_manifest(url)


def test_a_frame_the_index_names_but_the_clip_lacks_is_an_error_never_a_neighbour(h264_store, tmp_path):
    copy = tmp_path / "store"
    shutil.copytree(h264_store, copy)
    index = zarr.open_group(str(copy), mode="r+")["data/frames_video/index"]
    row = index[100]
    index[100] = [row[0], row[1], row[2] + 1]  # a pts between two frames: decoding must not settle on either
    dataset = WindowDataset(copy, length=4, load="frames")
    with pytest.raises(StoreError, match=rf"clips/00000004\.mp4: no frame at pts {row[2] + 1} "):
        dataset[(LENGTHS[0] - 3) + 28]  # rows 98-101
    assert rows_of(dataset[(LENGTHS[0] - 3) + 31]["frames"]) == [101, 102, 103, 104]  # the decoder recovers
    result = run_cli("verify", copy)
    assert result.returncode == 1 and "clips and index of episode ep01 fail the episode's checksum" in \
        " ".join(result.stderr.split())
