"""Where a LeRobot dataset keeps what: ``meta/info.json``, the episode table, file paths per episode.

The episode table is a handful of integer arrays (not objects) because the source, table
included, is pickled once per episode handed to a worker. A camera is a feature of dtype ``video``
(mp4 files, one per episode or, in v3, per group of episodes) or ``image`` (the frames themselves,
in a parquet column of the data files: no video file and no video columns in the episode table).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.core import url_to_fs

from ...errors import DreamerDataError

INFO_FILE = "meta/info.json"
EPISODES_JSONL = "meta/episodes.jsonl"  # v2.x
EPISODES_GLOB = "meta/episodes/chunk-*/file-*.parquet"  # v3.0
ACTION, STATE = "action", "observation.state"
CAMERA_DTYPES = ("video", "image")
REWARD_KEYS = ("next.reward", "reward")
DONE_KEYS = ("next.done", "done")


@dataclass(frozen=True)
class Feature:
    """One ``features`` entry of info.json."""

    key: str
    dtype: str
    shape: tuple[int, ...]
    names: list[str] | None

    @property
    def width(self) -> int:
        """Values per row of a vector feature (shape [A] or [1])."""
        return int(np.prod(self.shape)) if self.shape else 1


@dataclass(frozen=True)
class EpisodeEntry:
    """Where one episode's rows and frames are."""

    index: int
    length: int
    data: str  # URL of the parquet file holding its rows
    video: str | None  # URL of the mp4 holding its frames; None where they are images in the data rows
    video_start: int  # its first frame inside that file
    video_end: int | None  # exclusive end frame inside that file (v3: from to_timestamp); None = file end


def join(root: str, rel: str) -> str:
    return f"{root.rstrip('/')}/{rel}"


def _read_json(url: str) -> Any:
    try:
        with fsspec.open(url, "rb") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise DreamerDataError(f"{url}: missing (not a LeRobot dataset folder?)") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DreamerDataError(f"{url}: unreadable JSON ({error})") from None


def _vector_names(names: Any, width: int) -> list[str] | None:
    """info.json names come as a list, or as {"motors": [...]}-style dicts; keep them only if they fit."""
    if isinstance(names, dict) and len(names) == 1:
        names = next(iter(names.values()))
    if isinstance(names, list) and len(names) == width and all(isinstance(n, str) for n in names):
        return list(names)
    return None


def _image_size(feature: dict, key: str, where: str) -> tuple[int, int]:
    shape, names = feature.get("shape") or [], feature.get("names") or []
    if len(shape) != 3:
        raise DreamerDataError(f"{where}: feature {key!r} has shape {shape}, expected 3 dims")
    if isinstance(names, list) and "height" in names and "width" in names:
        return int(shape[names.index("height")]), int(shape[names.index("width")])
    return (int(shape[0]), int(shape[1])) if shape[-1] == 3 else (int(shape[1]), int(shape[2]))


class LeRobotLayout:
    """info.json plus the episode table for one camera; built once in the main process."""

    def __init__(self, src: str, camera: str | None):
        self.src = src.rstrip("/")
        self.info_url = join(self.src, INFO_FILE)
        info = _read_json(self.info_url)
        if not isinstance(info, dict):
            raise DreamerDataError(f"{self.info_url}: expected a JSON object")
        try:
            version = str(info["codebase_version"])
            self.fps = info["fps"]
            self.data_path = info["data_path"]
            raw_features = info["features"]
        except KeyError as error:
            raise DreamerDataError(f"{self.info_url}: missing key {error}") from None
        if not version.startswith(("v2.", "v3.")):
            raise DreamerDataError(f"{self.info_url}: codebase_version {version!r} is not supported (v2.x or v3.0)")
        self.version = version
        self.major = int(version[1])
        self.chunks_size = int(info.get("chunks_size", 1000))
        self.features = {key: Feature(key, str(f.get("dtype")), tuple(int(s) for s in f.get("shape") or ()),
                                      _vector_names(f.get("names"), int(np.prod(f.get("shape") or [1]))))
                         for key, f in raw_features.items()}
        self.camera = self._pick_camera(raw_features, camera)
        self.camera_dtype = str(raw_features[self.camera]["dtype"])
        self.video_path = info.get("video_path")
        if self.camera_dtype == "video" and not isinstance(self.video_path, str):
            raise DreamerDataError(f"{self.info_url}: camera {self.camera!r} is a video but video_path is "
                                   f"{self.video_path!r}")
        self.native_size = _image_size(raw_features[self.camera], self.camera, self.info_url)
        self._load_table()

    # --- features ----------------------------------------------------------------------------------
    def _pick_camera(self, raw: dict, camera: str | None) -> str:
        cameras = sorted(key for key, f in raw.items() if isinstance(f, dict) and f.get("dtype") in CAMERA_DTYPES)
        if camera is not None:
            if camera not in raw:
                raise DreamerDataError(f"{self.info_url}: no feature {camera!r}; cameras: "
                                       f"{', '.join(cameras) or 'none'}")
            if camera not in cameras:
                raise DreamerDataError(f"{self.info_url}: feature {camera!r} has dtype {raw[camera].get('dtype')!r}; "
                                       f"only video cameras or image features are supported (cameras: "
                                       f"{', '.join(cameras) or 'none'})")
            return camera
        if len(cameras) == 1:
            return cameras[0]
        if not cameras:
            raise DreamerDataError(f"{self.info_url}: no camera (no feature of dtype video or image)")
        raise DreamerDataError(f"{self.info_url}: several cameras ({', '.join(cameras)}); choose one with --camera")

    def feature(self, keys: tuple[str, ...] | str) -> Feature | None:
        for key in (keys,) if isinstance(keys, str) else keys:
            if key in self.features:
                return self.features[key]
        return None

    # --- episode table -----------------------------------------------------------------------------
    def _load_table(self) -> None:
        if self.major == 2:
            columns = self._v2_episodes()
        else:
            columns = self._v3_episodes()
        order = np.argsort(columns["index"], kind="stable")
        self.table = {name: np.asarray(values, dtype=np.int64)[order] for name, values in columns.items()}
        index = self.table["index"]
        if len(np.unique(index)) != len(index):
            raise DreamerDataError(f"{self.src}: meta/episodes lists an episode_index twice")

    def _v2_episodes(self) -> dict[str, list[int]]:
        url = join(self.src, EPISODES_JSONL)
        index, length = [], []
        try:
            with fsspec.open(url, "rt") as handle:
                for number, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    try:
                        record = json.loads(line)
                        index.append(int(record["episode_index"]))
                        length.append(int(record["length"]))
                    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
                        raise DreamerDataError(f"{url}: line {number} is not an episode record ({error})") from None
        except FileNotFoundError:
            raise DreamerDataError(f"{url}: missing (a v2 dataset lists its episodes there)") from None
        except OSError as error:
            raise DreamerDataError(f"{url}: unreadable ({error})") from None
        chunk = [i // self.chunks_size for i in index]
        none = [-1] * len(index)
        return {"index": index, "length": length, "data_chunk": chunk, "data_file": none, "video_chunk": chunk,
                "video_file": none, "video_start": [0] * len(index), "video_end": none}

    def _v3_episodes(self) -> dict[str, list[int]]:
        fs, root = url_to_fs(self.src)
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        paths = sorted(fs.glob(f"{root}/{EPISODES_GLOB}"))
        if not paths:
            raise DreamerDataError(f"{join(self.src, 'meta/episodes')}: no episode parquet files (a v3 dataset "
                                   f"lists its episodes in {EPISODES_GLOB})")
        video = f"videos/{self.camera}"
        wanted = {"index": "episode_index", "length": "length", "data_chunk": "data/chunk_index",
                  "data_file": "data/file_index"}
        if self.camera_dtype == "video":
            wanted.update(video_chunk=f"{video}/chunk_index", video_file=f"{video}/file_index",
                          start=f"{video}/from_timestamp", end=f"{video}/to_timestamp")
        columns: dict[str, list] = {name: [] for name in wanted}
        for path in paths:
            url = path if protocol in ("file", "local") else f"{protocol}://{path}"
            try:
                with fsspec.open(url, "rb") as handle:
                    table = pq.read_table(handle, columns=list(wanted.values()))
            except (OSError, pa.ArrowException) as error:
                raise DreamerDataError(f"{url}: unreadable episode table ({str(error).splitlines()[0]})") from None
            for name, column in wanted.items():
                values = table.column(column).to_pylist()
                if None in values:
                    raise DreamerDataError(f"{url}: column {column!r} has empty entries")
                columns[name].extend(values)
        if self.camera_dtype != "video":
            none = [-1] * len(columns["index"])
            return {**columns, "video_chunk": none, "video_file": none, "video_start": none, "video_end": none}
        start = [round(t * self.fps) for t in columns.pop("start")]  # timestamps only locate the episode
        end = [round(t * self.fps) for t in columns.pop("end")]
        return {**columns, "video_start": start, "video_end": end}

    @property
    def episode_indices(self) -> np.ndarray:
        return self.table["index"]

    def entry(self, episode_index: int) -> EpisodeEntry:
        position = int(np.searchsorted(self.table["index"], episode_index))
        if position >= len(self.table["index"]) or self.table["index"][position] != episode_index:
            raise DreamerDataError(f"{self.src}: no episode {episode_index} in meta/episodes")
        row = {name: int(values[position]) for name, values in self.table.items()}
        names = {"episode_index": episode_index, "video_key": self.camera}
        try:
            data = self.data_path.format(episode_chunk=row["data_chunk"], chunk_index=row["data_chunk"],
                                         file_index=row["data_file"], **names)
            video = None if self.camera_dtype != "video" else self.video_path.format(
                episode_chunk=row["video_chunk"], chunk_index=row["video_chunk"], file_index=row["video_file"], **names)
        except (KeyError, IndexError, ValueError) as error:
            raise DreamerDataError(f"{self.info_url}: path template has an unknown field ({error})") from None
        return EpisodeEntry(index=episode_index, length=row["length"], data=join(self.src, data),
                            video=None if video is None else join(self.src, video),
                            video_start=max(row["video_start"], 0),
                            video_end=row["video_end"] if row["video_end"] >= 0 else None)
