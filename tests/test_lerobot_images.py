"""LeRobot image-in-parquet datasets (camera feature dtype "image"): v2.1 and v3.0 written with pyarrow.

Such a dataset keeps each frame in its data rows as a struct {bytes: PNG or JPEG, path}, as LeRobot
(through Hugging Face ``datasets.Image``) writes it; there are no video files and no video columns.
"""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from conftest import read_manifest, run_cli
from dreamer_data.ingest import IngestPlan, ingest
from dreamer_data.sources import ReadOptions
from dreamer_data.sources.lerobot import LeRobotSource
from dreamer_data.store.reader import StoreReader
from dreamer_data.store.verify import verify_store
from lerobot_makers import Dataset, action_row, code_frame, read_code, state_row, write_lerobot

LENGTHS = [7, 12, 9, 20, 5]  # v3: data files hold episodes 0-1, 2-3 and 4, in row groups of 8
CAMERA = "observation.images.top"
HEIGHT, WIDTH = 32, 64
JPEG_EPISODE = 2  # its frames are JPEG, the others PNG


def picture(g: int) -> np.ndarray:
    """Global frame g: its code (so alignment is readable after any resize) plus seeded full-range noise."""
    noise = np.random.default_rng(g).integers(-6, 7, (HEIGHT, WIDTH, 3))
    return (code_frame(g, HEIGHT, WIDTH) + noise).astype(np.uint8)


def encoded(g: int, kind: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(picture(g)).save(buffer, format=kind)
    return buffer.getvalue()


def image_column(globals_: np.ndarray, episodes: np.ndarray) -> pa.StructArray:
    kinds = ["JPEG" if e == JPEG_EPISODE else "PNG" for e in episodes]
    data = pa.array([encoded(int(g), kind) for g, kind in zip(globals_, kinds)], pa.binary())
    paths = pa.array([f"frame_{int(g):06d}.{kind.lower()}" for g, kind in zip(globals_, kinds)], pa.string())
    return pa.StructArray.from_arrays([data, paths], names=["bytes", "path"])


def write_image_dataset(root, version: str) -> Dataset:
    """A LeRobot dataset whose camera is an image feature: the maker's parquet rows plus an image column,
    info.json's camera of dtype "image" with ``video_path`` null, no videos/ and no video columns."""
    dataset = write_lerobot(root, version, LENGTHS, height=HEIGHT, width=WIDTH)
    shutil.rmtree(root / "videos")
    for path in sorted((root / "data").rglob("*.parquet")):
        table = pq.read_table(path)
        column = image_column(table.column("index").to_numpy(), table.column("episode_index").to_numpy())
        pq.write_table(table.add_column(0, CAMERA, column), path, row_group_size=8)
    info = json.loads((root / "meta/info.json").read_text())
    info["features"][CAMERA] = {"dtype": "image", "shape": [HEIGHT, WIDTH, 3],
                                "names": ["height", "width", "channel"]}
    info.update(video_path=None, **({"total_videos": 0} if version.startswith("v2") else {}))
    (root / "meta/info.json").write_text(json.dumps(info, indent=2))
    if version.startswith("v3"):
        meta = root / "meta/episodes/chunk-000/file-000.parquet"
        table = pq.read_table(meta)
        pq.write_table(table.drop_columns([c for c in table.column_names if c.startswith("videos/")]), meta)
    return dataset


def run_ingest(src, out, resolution=None) -> tuple:
    source = LeRobotSource(str(src), ReadOptions(resolution=resolution))
    return ingest(source, str(out), IngestPlan(workers=0)), StoreReader(str(out))


def expected_frame(g: int, episode: int, size: tuple[int, int] | None) -> np.ndarray:
    """What the store must hold, restated with PIL: the decoded image, box-filtered (area) to ``size``."""
    image = Image.open(io.BytesIO(encoded(g, "JPEG" if episode == JPEG_EPISODE else "PNG"))).convert("RGB")
    if size is not None:
        image = image.resize((size[1], size[0]), Image.BOX)
    return np.asarray(image)


@pytest.mark.parametrize("version", ["v2.1", "v3.0"])
@pytest.mark.parametrize("size", [None, (16, 32)])
def test_image_datasets_ingest_like_video_ones(tmp_path, version, size):
    dataset = write_image_dataset(tmp_path / "ds", version)
    report, reader = run_ingest(tmp_path / "ds", tmp_path / "store", size)
    assert report.failed == [] and report.frames == sum(LENGTHS)
    g = np.arange(sum(LENGTHS))
    episode = np.repeat(np.arange(len(LENGTHS)), LENGTHS)
    frames = reader.array("frames")[:]
    expected = np.stack([expected_frame(int(i), int(e), size) for i, e in zip(g, episode)])
    np.testing.assert_array_equal(frames, expected)
    if size is None:  # PNG is lossless: the very pixels written
        png = episode != JPEG_EPISODE
        np.testing.assert_array_equal(frames[png], np.stack([picture(int(i)) for i in g[png]]))
    assert [read_code(f) for f in frames] == g.tolist()
    np.testing.assert_array_equal(reader.array("actions/continuous")[:], np.stack([action_row(i, 3) for i in g]))
    np.testing.assert_array_equal(reader.array("state")[:], np.stack([state_row(i, 2) for i in g]))
    np.testing.assert_array_equal(reader.array("rewards")[:], (g % 3 == 0).astype(np.float32))
    assert reader.group["meta/episode_ends"][:].tolist() == np.cumsum(LENGTHS).tolist()
    assert [e["notes"] for e in reader.episodes] == [{"episode_index": e, "decoder": "pil"} for e in range(5)]
    assert [e["source_file"] for e in reader.episodes] == [str(dataset.data_file(e)) for e in range(5)]
    height, width = size or (HEIGHT, WIDTH)
    observation = reader.manifest["observation"]
    assert (observation["height"], observation["width"], observation["camera"]) == (height, width, CAMERA)
    assert (observation["native_height"], observation["native_width"]) == (HEIGHT, WIDTH)
    assert verify_store(str(tmp_path / "store")) == []


def test_bad_image_rows_fail_their_episode_naming_file_and_row(tmp_path):
    dataset = write_image_dataset(tmp_path / "ds", "v2.1")
    for episode, row, replace in ((1, 5, b"not an image"), (3, 0, None)):
        path = dataset.data_file(episode)
        table = pq.read_table(path)
        column = table.column(CAMERA).combine_chunks()
        data = column.field("bytes").to_pylist()
        data[row] = replace
        fixed = pa.StructArray.from_arrays([pa.array(data, pa.binary()), column.field("path")], names=["bytes", "path"])
        pq.write_table(table.set_column(table.schema.get_field_index(CAMERA), CAMERA, fixed), path)
    report, reader = run_ingest(tmp_path / "ds", tmp_path / "store")
    failed = {f["id"]: (f["file"], f["reason"]) for f in report.failed}
    assert sorted(failed) == ["episode_000001", "episode_000003"]
    file, reason = failed["episode_000001"]
    assert file == str(dataset.data_file(1))
    assert reason.startswith(f"column '{CAMERA}' row 5 is not a readable image (") and "\n" not in reason
    assert failed["episode_000003"] == (str(dataset.data_file(3)), f"column '{CAMERA}' row 0 has no image bytes "
                                        f"(only a path, 'frame_000028.png': images must be embedded)")
    assert [e["id"] for e in reader.episodes] == ["episode_000000", "episode_000002", "episode_000004"]


def test_image_dataset_through_the_cli(tmp_path):
    write_image_dataset(tmp_path / "ds", "v3.0")
    result = run_cli("ingest", "lerobot", tmp_path / "ds", "--out", tmp_path / "store", "--resolution", "16x32",
                     "--workers", "2")
    assert result.returncode == 0, result.stderr
    manifest = read_manifest(tmp_path / "store")
    assert manifest["totals"] == {"episodes": 5, "frames": sum(LENGTHS)}
    reader = StoreReader(str(tmp_path / "store"))
    assert [read_code(f) for f in reader.array("frames")[:]] == list(range(sum(LENGTHS)))
