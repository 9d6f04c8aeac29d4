"""Real LeRobot-layout datasets for tests: parquet via pyarrow, H.264 mp4s via PyAV, v2.1 and v3.0.

Every frame encodes its global frame index (and camera) in brightness, and every action row holds
that same index in dimension 0, so a test can check frame/action alignment row by row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

LEVEL0, STEP, DIGITS = 16, 14, 16  # two base-16 digits as grey levels 14 apart survive H.264 + resizing
CAMERA_CODE = 128  # camera c shows code g + 128 c


def code_frame(code: int, height: int, width: int) -> np.ndarray:
    """Left half = code mod 16, right half = code // 16, as grey levels."""
    frame = np.empty((height, width, 3), dtype=np.uint8)
    frame[:, : width // 2] = LEVEL0 + STEP * (code % DIGITS)
    frame[:, width // 2:] = LEVEL0 + STEP * ((code // DIGITS) % DIGITS)
    return frame


def read_code(frame: np.ndarray) -> int:
    """Inverse of ``code_frame`` on a decoded, possibly resized frame (reads the middle of each half)."""
    height, width = frame.shape[:2]
    rows = slice(height // 4, max(height // 4 + 1, 3 * height // 4))

    def digit(columns: slice) -> int:
        return int(np.clip(round((float(frame[rows, columns].mean()) - LEVEL0) / STEP), 0, DIGITS - 1))

    return digit(slice(5 * width // 8, max(5 * width // 8 + 1, 7 * width // 8))) * DIGITS + \
        digit(slice(width // 8, max(width // 8 + 1, 3 * width // 8)))


def action_row(g: int, width: int) -> np.ndarray:
    """Action of global frame g: dimension 0 is g itself, the rest vary in scale and sign."""
    values = [g, 0.5 * g - 3.0, np.sin(g), -2.0 * g, 7.0] + [np.cos(g * d) for d in range(5, width)]
    return np.array(values[:width], dtype=np.float32)


def state_row(g: int, width: int) -> np.ndarray:
    values = [10.0 + g, -float(g), 0.25 * g] + [np.sin(g + d) for d in range(3, width)]
    return np.array(values[:width], dtype=np.float32)


Painter = Callable[[int, int, int], np.ndarray]  # (code, height, width) -> (height, width, 3) uint8


def write_video(path: Path, codes: list[int], height: int, width: int, fps: int, gop: int = 4,
                bframes: int = 2, paint: Painter = code_frame, crf: int = 12, codec: str = "libx264") -> Path:
    """mp4 of painted frames: H.264 with a short GOP and B-frames (seeking and reordering are real), or
    AV1 (``libsvtav1``, LeRobot's default codec)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"g": str(gop), "crf": str(crf), **(
            {"preset": "ultrafast", "x264-params": f"bframes={bframes}"} if codec == "libx264" else {"preset": "11"})}
        for code in codes:
            for packet in stream.encode(av.VideoFrame.from_ndarray(paint(code, height, width), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@dataclass
class Dataset:
    """What a test needs to know about a dataset it wrote."""

    root: Path
    version: str
    lengths: list[int]
    cameras: tuple[str, ...]
    action_dim: int | None
    state_dim: int | None
    fps: int
    per_data_file: int = 2  # v3 grouping of episodes into files
    per_video_file: int = 3

    @property
    def starts(self) -> list[int]:
        return [int(s) for s in np.cumsum([0] + self.lengths[:-1])]

    def actions(self, episode: int) -> np.ndarray:
        start = self.starts[episode]
        return np.stack([action_row(g, self.action_dim) for g in range(start, start + self.lengths[episode])])

    def data_file(self, episode: int) -> Path:
        if self.version.startswith("v2"):
            return self.root / f"data/chunk-000/episode_{episode:06d}.parquet"
        return self.root / f"data/chunk-000/file-{episode // self.per_data_file:03d}.parquet"

    def video_file(self, episode: int, camera: int = 0) -> Path:
        if self.version.startswith("v2"):
            return self.root / f"videos/chunk-000/{self.cameras[camera]}/episode_{episode:06d}.mp4"
        return self.root / f"videos/{self.cameras[camera]}/chunk-000/file-{episode // self.per_video_file:03d}.mp4"


def _features(cameras, height, width, fps, action_dim, state_dim, reward_done) -> dict:
    features = {cam: {"dtype": "video", "shape": [height, width, 3], "names": ["height", "width", "channels"],
                      "info": {"video.fps": float(fps), "video.codec": "h264", "video.pix_fmt": "yuv420p"}}
                for cam in cameras}
    if action_dim:
        features["action"] = {"dtype": "float32", "shape": [action_dim],
                              "names": [f"joint_{d}" for d in range(action_dim)]}
    if state_dim:
        features["observation.state"] = {"dtype": "float32", "shape": [state_dim],
                                         "names": {"motors": [f"motor_{d}" for d in range(state_dim)]}}
    if reward_done:
        features["next.reward"] = {"dtype": "float32", "shape": [1], "names": None}
        features["next.done"] = {"dtype": "bool", "shape": [1], "names": None}
    for key, dtype in (("timestamp", "float32"), ("frame_index", "int64"), ("episode_index", "int64"),
                       ("index", "int64"), ("task_index", "int64")):
        features[key] = {"dtype": dtype, "shape": [1], "names": None}
    return features


def _rows(episode: int, start: int, length: int, fps: int, action_dim, state_dim, reward_done) -> dict:
    g = np.arange(start, start + length)
    columns = {}
    if action_dim:
        columns["action"] = pa.array([action_row(i, action_dim).tolist() for i in g], pa.list_(pa.float32()))
    if state_dim:
        columns["observation.state"] = pa.array([state_row(i, state_dim).tolist() for i in g], pa.list_(pa.float32()))
    if reward_done:
        columns["next.reward"] = pa.array((g % 3 == 0).astype(np.float32))
        columns["next.done"] = pa.array(np.arange(length) == length - 1)
    columns.update(timestamp=pa.array((np.arange(length) / fps).astype(np.float32)),
                   frame_index=pa.array(np.arange(length)), episode_index=pa.array(np.full(length, episode)),
                   index=pa.array(g), task_index=pa.array(np.zeros(length, np.int64)))
    return columns


def write_lerobot(root: Path, version: str, lengths: list[int], *, cameras: tuple[str, ...] = ("observation.images.top",),
                  height: int = 32, width: int = 64, fps: int = 10, action_dim: int | None = 3,
                  state_dim: int | None = 2, reward_done: bool = True, unlabeled: tuple[int, ...] = (),
                  per_data_file: int = 2, per_video_file: int = 3, row_group_rows: int = 8,
                  video: dict | None = None) -> Dataset:
    """A LeRobot dataset: v2.1 (one parquet + mp4 per episode) or v3.0 (``per_data_file`` episodes per
    parquet file in row groups of ``row_group_rows``, ``per_video_file`` episodes concatenated per mp4).

    Episodes in ``unlabeled`` have no actions: v2 files lack the column, v3 rows hold nulls.
    ``video`` passes encoder settings (gop, bframes, crf, paint, codec) on to ``write_video``.
    """
    dataset = Dataset(root, version, list(lengths), tuple(cameras), action_dim, state_dim, fps, per_data_file,
                      per_video_file)
    video = video or {}
    starts = dataset.starts
    tables = []
    for e, n in enumerate(lengths):
        table = pa.table(_rows(e, starts[e], n, fps, action_dim, state_dim, reward_done))
        if e in unlabeled and version.startswith("v2"):
            table = table.drop_columns(["action"])
        elif e in unlabeled:
            table = table.set_column(table.schema.get_field_index("action"), "action", pa.nulls(n, pa.list_(pa.float32())))
        tables.append(table)
    info = {"codebase_version": version, "robot_type": "test_arm", "total_episodes": len(lengths),
            "total_frames": int(sum(lengths)), "total_tasks": 1, "chunks_size": 1000, "fps": fps,
            "splits": {"train": f"0:{len(lengths)}"},
            "features": _features(cameras, height, width, fps, action_dim, state_dim, reward_done)}
    (root / "meta").mkdir(parents=True, exist_ok=True)
    if version.startswith("v2"):
        info.update(data_path="data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
                    video_path="videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4",
                    total_chunks=1, total_videos=len(lengths) * len(cameras))
        for e, table in enumerate(tables):
            dataset.data_file(e).parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, dataset.data_file(e))
            for c in range(len(cameras)):
                write_video(dataset.video_file(e, c), [g + CAMERA_CODE * c for g in range(starts[e], starts[e] + lengths[e])],
                            height, width, fps, **video)
        (root / "meta/episodes.jsonl").write_text("".join(
            json.dumps({"episode_index": e, "tasks": ["pick the cube"], "length": n}) + "\n" for e, n in enumerate(lengths)))
    else:
        info.update(data_path="data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
                    video_path="videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
                    data_files_size_in_mb=100, video_files_size_in_mb=500)
        for k in range(0, len(lengths), per_data_file):
            dataset.data_file(k).parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.concat_tables(tables[k:k + per_data_file]), dataset.data_file(k),
                           row_group_size=row_group_rows)
        episodes = {"episode_index": list(range(len(lengths))), "tasks": [["pick the cube"]] * len(lengths),
                    "length": list(lengths), "data/chunk_index": [0] * len(lengths),
                    "data/file_index": [e // per_data_file for e in range(len(lengths))],
                    "dataset_from_index": starts, "dataset_to_index": [s + n for s, n in zip(starts, lengths)]}
        for c, cam in enumerate(cameras):
            froms, tos = [], []
            for k in range(0, len(lengths), per_video_file):
                group = range(k, min(k + per_video_file, len(lengths)))
                codes = [g + CAMERA_CODE * c for e in group for g in range(starts[e], starts[e] + lengths[e])]
                write_video(dataset.video_file(k, c), codes, height, width, fps, **video)
                offset = 0
                for e in group:  # float seconds as LeRobot accumulates them (not exact multiples of 1/fps)
                    froms.append(offset * (1.0 / fps))
                    tos.append((offset + lengths[e]) * (1.0 / fps))
                    offset += lengths[e]
            episodes.update({f"videos/{cam}/chunk_index": [0] * len(lengths),
                             f"videos/{cam}/file_index": [e // per_video_file for e in range(len(lengths))],
                             f"videos/{cam}/from_timestamp": froms, f"videos/{cam}/to_timestamp": tos})
        (root / "meta/episodes/chunk-000").mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(episodes), root / "meta/episodes/chunk-000/file-000.parquet")
    (root / "meta/info.json").write_text(json.dumps(info, indent=2))
    return dataset
