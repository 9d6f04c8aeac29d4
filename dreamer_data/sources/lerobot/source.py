"""The ``lerobot`` source: one camera's frames plus actions, state, rewards and terminals per row."""

from __future__ import annotations

from typing import Generator

import numpy as np
import pyarrow as pa

from ...errors import EpisodeError
from ...store.fields import FieldSpec
from ...video import DecodedVideo
from ..base import DEFAULT_ROW_CHUNK_ROWS, EpisodeRef, Emit, ReadOptions, Source
from .columns import (
    EPISODE_INDEX, FRAME_INDEX, episode_rows, frame_indices, read_columns, read_episode_rows, scalar_column,
    vector_column,
)
from .frames import IMAGE_DECODER, frames_at, image_frames
from .layout import ACTION, DONE_KEYS, REWARD_KEYS, STATE, Feature, LeRobotLayout
from .stats import action_statistics

STATS_SCOPE = ("every episode of the source dataset with readable action rows, whatever --part / --limit "
               "(so the parts of one dataset agree and merge)")


def _episode_id(index: int) -> str:
    return f"episode_{index:06d}"


def _episode_index(episode_id: str) -> int:
    return int(episode_id.rsplit("_", 1)[1])


class LeRobotSource(Source):
    kind = "lerobot"

    def __init__(self, src: str, options: ReadOptions):
        super().__init__(src, options)
        self._layout: LeRobotLayout | None = None
        self._action_stats: dict | None = None

    @property
    def layout(self) -> LeRobotLayout:
        """Read on first use in the main process; travels to workers inside the pickled source."""
        if self._layout is None:
            self._layout = LeRobotLayout(self.src, self.options.camera)
        return self._layout

    @property
    def rewards_present(self) -> bool:  # type: ignore[override]
        return self.layout.feature(REWARD_KEYS) is not None

    def _vectors(self) -> tuple[Feature | None, Feature | None]:
        return self.layout.feature(ACTION), self.layout.feature(STATE)

    # --- what the store holds ------------------------------------------------------------------
    def list_episodes(self) -> list[EpisodeRef]:
        refs = []
        for index in self.layout.episode_indices:
            entry = self.layout.entry(int(index))
            files = {"data": entry.data} if entry.video is None else {"data": entry.data, "video": entry.video}
            refs.append(EpisodeRef(_episode_id(entry.index), files))
        return refs

    def fields(self) -> dict[str, FieldSpec]:
        height, width = self.options.resolution or self.layout.native_size
        action, state = self._vectors()
        rows = DEFAULT_ROW_CHUNK_ROWS
        specs = [FieldSpec("frames", "uint8", (height, width, 3), self.options.frame_chunk_rows)]
        if action is not None:
            specs.append(FieldSpec("actions/continuous", "float32", (action.width,), rows))
        if state is not None:
            specs.append(FieldSpec("state", "float32", (state.width,), rows))
        specs += [FieldSpec(name, dtype, (), rows) for name, dtype in
                  (("rewards", "float32"), ("is_terminal", "uint8"), ("has_action", "uint8"),
                   ("is_null_action", "uint8"))]
        return {spec.name: spec for spec in specs}

    def observation_spec(self) -> dict:
        layout = self.layout
        height, width = self.options.resolution or layout.native_size
        spec = {"height": height, "width": width, "channels": 3, "fps": layout.fps,
                "native_height": layout.native_size[0], "native_width": layout.native_size[1],
                "resize": "area, no crop", "camera": layout.camera, "lerobot_version": layout.version}
        state = self._vectors()[1]
        if state is not None:
            spec["state"] = {"size": state.width, "names": state.names, "dtype": "float32"}
        return spec

    def action_spec(self) -> dict:
        action = self._vectors()[0]
        if action is None:
            return {}
        if self._action_stats is None:
            self._action_stats = self._scan_action_statistics(action)
        return {"continuous": {"kind": "continuous", "size": action.width, "dtype": "float32",
                               "names": action.names or [f"action_{d}" for d in range(action.width)],
                               "stats": self._action_stats}}

    def settings(self) -> dict:
        return {**super().settings(), "camera": self.layout.camera}

    # --- statistics ----------------------------------------------------------------------------
    def _scan_action_statistics(self, action: Feature) -> dict:
        """Exact statistics over the action rows of all episodes, reading only the action columns."""
        layout = self.layout
        by_file: dict[str, list] = {}
        for index in layout.episode_indices:
            entry = layout.entry(int(index))
            by_file.setdefault(entry.data, []).append(entry)
        blocks: list[np.ndarray] = []
        counted, unreadable = 0, []
        for url, entries in by_file.items():
            try:
                with self.open(url) as handle:
                    table = read_columns(handle, url, [EPISODE_INDEX, ACTION])
            except (EpisodeError, OSError):
                unreadable += [_episode_id(entry.index) for entry in entries]
                continue
            for entry in entries:
                try:
                    rows = episode_rows(table, entry.index, url)
                    if rows.num_rows != entry.length:
                        raise EpisodeError(url, "row count differs from meta/episodes")
                    if ACTION in rows.column_names:
                        values, valid = vector_column(rows, ACTION, action.width, url)
                        blocks.append(values[valid])
                except EpisodeError:
                    unreadable.append(_episode_id(entry.index))
                    continue
                counted += 1
        stats = action_statistics(blocks, action.width)
        stats.update(episodes=counted, scope=STATS_SCOPE)
        if unreadable:
            stats["episodes_left_out"] = unreadable
        return stats

    # --- rows ----------------------------------------------------------------------------------
    def read_episode(self, ref: EpisodeRef, emit: Emit) -> dict:
        layout = self.layout
        entry = layout.entry(_episode_index(ref.id))
        action, state = self._vectors()
        reward, done = layout.feature(REWARD_KEYS), layout.feature(DONE_KEYS)
        images = entry.video is None  # the camera is an image column of the data rows
        columns = [EPISODE_INDEX, FRAME_INDEX] + [f.key for f in (action, state, reward, done) if f is not None]
        columns += [layout.camera] if images else []
        try:
            with self.open(entry.data) as handle:
                table = read_episode_rows(handle, entry.data, entry.index, columns)
        except FileNotFoundError:
            raise EpisodeError(entry.data, "missing data file") from None
        except OSError as error:
            raise EpisodeError(entry.data, f"cannot read ({error})") from None
        if table.num_rows != entry.length:
            raise EpisodeError(entry.data, f"episode {entry.index} has {table.num_rows} rows but meta/episodes "
                                           f"says {entry.length}")
        rows = self._row_arrays(table, entry.data, action, state, reward, done)
        notes: dict = {"episode_index": entry.index}
        if action is not None and not rows["has_action"].all():
            notes["rows_without_action"] = int((rows["has_action"] == 0).sum())
        if images:
            if layout.camera not in table.column_names:
                raise EpisodeError(entry.data, f"no column {layout.camera!r} although meta/info.json lists it")
            self._emit_frames(image_frames(table.column(layout.camera), layout.camera, entry.data, self.options),
                              entry.data, rows, emit)
            return {**notes, "decoder": IMAGE_DECODER}
        wanted = entry.video_start + frame_indices(table, entry.data)
        if entry.video_end is not None and len(wanted) and wanted[-1] >= entry.video_end:
            raise EpisodeError(entry.video, f"video is shorter than the parquet rows: episode {entry.index} spans "
                                            f"frames {entry.video_start}..{entry.video_end - 1} of this file "
                                            f"(from/to_timestamp) but its rows need frame {wanted[-1]}")
        notes["video_start_frame"] = entry.video_start
        if not self.exists(entry.video):
            raise EpisodeError(entry.video, "missing video file")
        try:
            handle = self.open(entry.video)
        except OSError as error:
            raise EpisodeError(entry.video, f"cannot read ({error})") from None
        with handle:
            decoded = frames_at(handle, entry.video, wanted, layout.fps, self.options)
            self._emit_frames(decoded, entry.video, rows, emit)
        return {**notes, "decoder": decoded.backend}

    def _emit_frames(self, chunks: Generator[np.ndarray, None, None] | DecodedVideo, file: str,
                     rows: dict[str, np.ndarray], emit: Emit) -> None:
        """Pair frame chunks with their rows, checking the frame size against meta/info.json."""
        expected = tuple(self.options.resolution or self.layout.native_size)
        start = 0
        try:
            for frames in chunks:
                if frames.shape[1:3] != expected:
                    raise EpisodeError(file, f"frames are {frames.shape[1]}x{frames.shape[2]} (HxW), "
                                             f"meta/info.json says {expected[0]}x{expected[1]}")
                end = start + len(frames)
                emit({"frames": frames, **{name: values[start:end] for name, values in rows.items()}})
                start = end
        finally:
            chunks.close()

    def _row_arrays(self, table: pa.Table, file: str, action: Feature | None, state: Feature | None,
                    reward: Feature | None, done: Feature | None) -> dict[str, np.ndarray]:
        """Every non-frame field of the episode (small: a few numbers per row)."""
        n = table.num_rows
        for feature in (state, reward, done):
            if feature is not None and feature.key not in table.column_names:
                raise EpisodeError(file, f"no column {feature.key!r} although meta/info.json lists it")
        rows: dict[str, np.ndarray] = {}
        has_action = np.zeros(n, dtype=bool)
        if action is not None:
            values = np.zeros((n, action.width), np.float32)
            if action.key in table.column_names:  # an episode without the column is unlabeled video
                values, has_action = vector_column(table, action.key, action.width, file)
            rows["actions/continuous"] = values
        if state is not None:
            rows["state"] = vector_column(table, state.key, state.width, file)[0]
        rows["rewards"] = (scalar_column(table, reward.key, file) if reward else np.zeros(n)).astype(np.float32)
        rows["is_terminal"] = (scalar_column(table, done.key, file) != 0 if done else np.zeros(n)).astype(np.uint8)
        rows["has_action"] = has_action.astype(np.uint8)
        rows["is_null_action"] = (~has_action).astype(np.uint8)  # continuous actions have no "no-op" value
        return rows
