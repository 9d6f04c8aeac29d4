"""OpenAI VPT contractor recordings: ``NAME.mp4`` + ``NAME.jsonl`` (one jsonl line per frame).

SRC is a folder (local or fsspec URL) searched recursively, or one of VPT's published index
files (``{"basedir": URL, "relpaths": [".../NAME.mp4", …]}``).
"""

from __future__ import annotations

import json
import posixpath

import numpy as np

from ..actions.vpt_jsonl import read_vpt_jsonl
from ..errors import DreamerDataError, EpisodeError
from ..store.fields import FieldSpec
from ..video import decode_video
from .base import EpisodeRef, Emit, Source
from .minecraft_fields import (
    NATIVE_HEIGHT, NATIVE_WIDTH, minecraft_action_spec, minecraft_fields, minecraft_observation, minecraft_rows,
)


class VptSource(Source):
    kind = "vpt"
    rewards_present = False

    def list_episodes(self) -> list[EpisodeRef]:
        if self.src.endswith(".json"):
            return self._from_index()
        files = self.walk_files()
        stems: dict[str, dict[str, str]] = {}
        for path in files:
            stem, ext = posixpath.splitext(path)
            if ext in (".mp4", ".jsonl"):
                stems.setdefault(stem, {})[ext[1:]] = path
        refs = []
        for stem, found in sorted(stems.items()):
            episode_id = self.episode_id(stem + ".mp4", drop_extension=True)
            refs.append(EpisodeRef(episode_id, {"video": found.get("mp4", stem + ".mp4"),
                                                "actions": found.get("jsonl", stem + ".jsonl")}))
        return refs

    def _from_index(self) -> list[EpisodeRef]:
        try:
            with self.open(self.src) as handle:
                index = json.load(handle)
            basedir, relpaths = index["basedir"], index["relpaths"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as error:
            raise DreamerDataError(f"{self.src}: not a VPT index file ({error})") from None
        refs: dict[str, EpisodeRef] = {}
        for rel in relpaths:
            stem = posixpath.splitext(rel)[0]
            episode_id = posixpath.basename(stem).replace(".", "_")
            url = posixpath.join(basedir.rstrip("/"), stem) if "://" in basedir else f"{basedir.rstrip('/')}/{stem}"
            if episode_id in refs:
                raise DreamerDataError(f"{self.src}: episode id {episode_id!r} appears twice")
            refs[episode_id] = EpisodeRef(episode_id, {"video": url + ".mp4", "actions": url + ".jsonl"})
        return [refs[k] for k in sorted(refs)]

    def fields(self) -> dict[str, FieldSpec]:
        return minecraft_fields(self.options, (NATIVE_HEIGHT, NATIVE_WIDTH))

    def observation_spec(self) -> dict:
        return minecraft_observation(self.options, (NATIVE_HEIGHT, NATIVE_WIDTH))

    def action_spec(self) -> dict:
        return minecraft_action_spec()

    def read_episode(self, ref: EpisodeRef, emit: Emit) -> dict:
        video, actions_file = ref.files["video"], ref.files["actions"]
        for path in (video, actions_file):
            if not self.exists(path):
                raise EpisodeError(path, "missing partner file (every NAME.mp4 needs NAME.jsonl and vice versa)")
        try:
            with self.open(actions_file) as handle:
                actions = read_vpt_jsonl(handle, actions_file)
        except OSError as error:
            raise EpisodeError(actions_file, f"cannot read ({error})") from None
        n_actions = len(actions)
        o = self.options
        written = 0
        video_frames = 0
        try:
            handle = self.open(video)
        except OSError as error:
            raise EpisodeError(video, f"cannot read ({error})") from None
        with handle:
            decoded = decode_video(handle, file=video, size=o.resolution, backend=o.video_backend,
                                   threads=o.decode_threads, chunk=o.frame_chunk_rows)
            for frames in decoded:
                video_frames += len(frames)
                if video_frames - n_actions > o.length_tolerance:
                    raise EpisodeError(video, f"video has at least {video_frames} frames but {actions_file} "
                                              f"has {n_actions} action lines (tolerance {o.length_tolerance})")
                take = min(len(frames), n_actions - written)
                if take <= 0:
                    continue
                rows = slice(written, written + take)
                emit(minecraft_rows(
                    frames[:take], actions.buttons[rows], actions.camera_deg[rows],
                    rewards=np.zeros(take, np.float32), has_action=np.ones(take, np.uint8),
                    is_gui_open=actions.is_gui_open[rows], cursor_xy=actions.cursor_xy[rows],
                    is_terminal=np.zeros(take, np.uint8)))
                written += take
        mismatch = video_frames - n_actions
        if abs(mismatch) > o.length_tolerance:
            raise EpisodeError(video, f"video has {video_frames} frames but {actions_file} has {n_actions} action "
                                      f"lines (tolerance {o.length_tolerance})")
        notes = {"decoder": decoded.backend}  # the one asked for, or the one it fell back to
        if mismatch:
            notes["length_mismatch"] = {"video_frames": video_frames, "action_lines": n_actions, "kept": written}
        return notes
