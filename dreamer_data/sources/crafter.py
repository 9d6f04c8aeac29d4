"""Crafter episodes: a RAW folder written by ``dreamer-data collect crafter``, or a folder of
``.npz`` episodes saved by Crafter's own ``crafter.Recorder`` (shifted into our row convention at
ingest; see ``dreamer_data.collect.crafter_recorder``; such episodes have no seed to replay from).

Store fields (row t = frame t, the action after it, what that action produced):
- ``frames`` (N, 64, 64, 3) uint8: Crafter's native render, unchanged (``--resolution`` resizes by
  area averaging);
- ``actions/discrete`` (N,) int64 in [0, 17), names in the manifest (0 = ``noop``);
- ``rewards`` (N,) float32: Crafter's reward (+1 per first unlock of an achievement, ±0.1 per
  health point gained / lost); ``is_terminal`` (N,) uint8: the player died (the 10,000-step time
  limit is not a terminal); ``has_action`` / ``is_null_action`` as everywhere (noop counts as null);
- ``achievements`` (N, 22) uint8: how much row t's action raised each achievement counter
  (names in ``manifest.observation.achievements``). First unlocks are the first non-zero entry per
  episode and column, so a task reward for any achievement, Crafter's own reward
  (first unlocks + health deltas) and per-episode success all derive from it;
- ``inventory`` (N, 16) uint8: the inventory shown with frame t (health, food, drink, energy, …);
- ``semantic`` (N, 7, 9) uint8: the id of each tile frame t shows ([row, column] as drawn; names in
  ``manifest.observation.semantic_classes``), the ground truth object fidelity is scored against
  (``dreamer_model.eval.tiles``). Only for RAW folders collected with it (``collect.json`` has
  ``semantic_view``); Crafter's recorder saves no such map.
"""

from __future__ import annotations

import io
import posixpath
import zipfile

import numpy as np

from ..collect.crafter_env import (ACHIEVEMENTS, ACTION_NAMES, CRAFTER_FPS, INVENTORY_ITEMS, LOCAL_VIEW, NATIVE_SIZE,
                                   SEMANTIC_CLASSES)
from ..collect.crafter_recorder import recorder_rows
from ..collect.raw import RUN_FILE
from ..collect.source import RawEpisodeSource, check_member, null_action_flags
from ..errors import DreamerDataError, EpisodeError
from ..imageops import resize_frames
from ..store.fields import FieldSpec
from .base import DEFAULT_ROW_CHUNK_ROWS, EpisodeRef, Emit, Source


class CrafterSource(RawEpisodeSource):
    kind = "crafter"
    observation_member = "frames"

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.options.resolution or NATIVE_SIZE)

    @property
    def has_semantic(self) -> bool:
        """Whether the episodes carry the view's tile ids (RAW runs collected since they were recorded)."""
        if getattr(self, "_has_semantic", None) is None:
            self._has_semantic = self.is_raw and self.run.get("semantic_view") == list(LOCAL_VIEW)
        return self._has_semantic

    @property
    def is_raw(self) -> bool:
        """SRC is a collect RAW folder or a folder of them (else: a folder of Crafter recorder episodes)."""
        if getattr(self, "_is_raw", None) is None:
            self._is_raw = self.has_run() or bool(self.run_folders())
        return self._is_raw

    def list_episodes(self) -> list[EpisodeRef]:
        if self.is_raw:
            return super().list_episodes()
        refs = [EpisodeRef(self.episode_id(path, drop_extension=True), {"recorder": path})
                for path in self.walk_files()
                if path.endswith(".npz") and not posixpath.basename(path).startswith(".")]
        if not refs:
            raise DreamerDataError(f"{self.src}: neither a collect RAW folder (no {RUN_FILE}) nor a folder of "
                                   f"Crafter recorder .npz episodes")
        return sorted(refs, key=lambda ref: ref.id)

    def settings(self) -> dict:
        if self.is_raw:
            return super().settings()
        return {**Source.settings(self), "layout": "crafter-recorder"}

    def read_episode(self, ref: EpisodeRef, emit: Emit) -> dict:
        if "recorder" not in ref.files:
            return super().read_episode(ref, emit)
        file = ref.files["recorder"]
        try:
            with np.load(io.BytesIO(self.read_bytes(file)), allow_pickle=False) as npz:
                arrays = {key: npz[key] for key in npz.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
            raise EpisodeError(file, f"not a readable npz episode ({error})") from None
        rows, info = recorder_rows(arrays, file)
        self.emit_rows(rows, file, emit)
        return info

    def fields(self) -> dict[str, FieldSpec]:
        rows = DEFAULT_ROW_CHUNK_ROWS
        specs = [
            FieldSpec("frames", "uint8", (*self.size, 3), self.options.frame_chunk_rows),
            FieldSpec("actions/discrete", "int64", (), rows),
            FieldSpec("rewards", "float32", (), rows),
            FieldSpec("is_terminal", "uint8", (), rows),
            FieldSpec("has_action", "uint8", (), rows),
            FieldSpec("is_null_action", "uint8", (), rows),
            FieldSpec("achievements", "uint8", (len(ACHIEVEMENTS),), rows),
            FieldSpec("inventory", "uint8", (len(INVENTORY_ITEMS),), rows),
        ]
        if self.has_semantic:
            specs.append(FieldSpec("semantic", "uint8", LOCAL_VIEW, rows))
        return {spec.name: spec for spec in specs}

    def observation_spec(self) -> dict:
        height, width = self.size
        return {"height": height, "width": width, "channels": 3, "fps": CRAFTER_FPS,
                "native_height": NATIVE_SIZE[0], "native_width": NATIVE_SIZE[1],
                "resize": "none" if self.size == NATIVE_SIZE else "area, no crop",
                "achievements": list(ACHIEVEMENTS), "inventory": list(INVENTORY_ITEMS),
                "fps_note": "nominal: Crafter is turn-based",
                **({"semantic_classes": list(SEMANTIC_CLASSES)} if self.has_semantic else {})}

    def action_spec(self) -> dict:
        return {"discrete": {"kind": "categorical", "size": len(ACTION_NAMES), "names": list(ACTION_NAMES),
                             "dtype": "int64", "null_class": 0}}

    def check_rows(self, rows: dict[str, np.ndarray], file: str) -> None:
        check_member(rows, "frames", (*NATIVE_SIZE, 3), "uint8", file)
        check_member(rows, "achievements", (len(ACHIEVEMENTS),), "uint8", file)
        check_member(rows, "inventory", (len(INVENTORY_ITEMS),), "uint8", file)
        if self.has_semantic:
            check_member(rows, "semantic", LOCAL_VIEW, "uint8", file)

    def store_rows(self, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        frames = rows["frames"] if self.size == NATIVE_SIZE else resize_frames(rows["frames"], self.size)
        return {
            "frames": frames,
            "actions/discrete": rows["actions"],
            "rewards": rows["rewards"],
            "is_terminal": rows["is_terminal"],
            "has_action": rows["has_action"],
            "is_null_action": null_action_flags(rows["actions"], rows["has_action"]),
            "achievements": rows["achievements"],
            "inventory": rows["inventory"],
            **({"semantic": rows["semantic"]} if self.has_semantic else {}),
        }
