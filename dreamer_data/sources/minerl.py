"""MineRL episodes, in the two layouts that exist on disk.

- raw v0.4: ``recording.mp4`` + ``rendered.npz`` (``action$…`` arrays, ``reward``) + ``metadata.json``.
  Arrays hold one step fewer than the video: action i follows frame i, and the final frame is kept
  with a flagged null action (``has_action = 0``).
- extracted: ``frames.npy`` (T, H, W, 3) + ``actions.npz`` (``action$…``) + ``rewards.npy``, already
  one row per frame.

``action$<button>`` keys map by name onto the 23 VPT buttons; ``action$camera`` is (pitch, yaw) in
degrees; ``action$place`` (an item name, or 'none') maps to ``use``. Keys with no VPT button
(craft, equip, nearbyCraft, nearbySmelt) are listed per episode under ``notes.unmapped_actions``.
"""

from __future__ import annotations

import io
import json
import posixpath
import zipfile
import zlib

import numpy as np

from ..actions.minecraft import BUTTON_INDEX, N_BUTTONS
from ..errors import EpisodeError
from ..imageops import resize_frames
from ..store.fields import FieldSpec
from ..video import decode_video
from .base import EpisodeRef, Emit, Source
from .minecraft_fields import minecraft_action_spec, minecraft_fields, minecraft_observation, minecraft_rows

RAW_MARKER, EXTRACTED_MARKER = "recording.mp4", "frames.npy"
MINERL_NATIVE = (64, 64)
PLACE_KEY = "action$place"


def _load_npz(source: Source, path: str) -> dict[str, np.ndarray]:
    try:
        with source.open(path) as handle:
            with np.load(io.BytesIO(handle.read()), allow_pickle=False) as npz:
                return {key: npz[key] for key in npz.files}
    except FileNotFoundError:
        raise EpisodeError(path, "missing file") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:  # npz is a zip archive
        raise EpisodeError(path, f"unreadable npz ({error})") from None


def _is_pressed(values: np.ndarray) -> np.ndarray:
    """Binary press per step; enum keys (strings) count as pressed unless 'none'."""
    if values.dtype.kind in "US":
        return (values.astype(str) != "none").astype(np.uint8)
    return (values != 0).astype(np.uint8)


def minerl_actions(arrays: dict[str, np.ndarray], steps: int, file: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``action$…`` arrays → buttons (steps, 23), camera_deg (steps, 2), unmapped key names."""
    buttons = np.zeros((steps, N_BUTTONS), dtype=np.uint8)
    camera = np.zeros((steps, 2), dtype=np.float32)
    unmapped = []
    for key, values in arrays.items():
        if not key.startswith("action$"):
            continue
        if len(values) != steps:
            raise EpisodeError(file, f"{key} has {len(values)} steps, expected {steps}")
        name = key.removeprefix("action$")
        if name == "camera":
            if values.shape[1:] != (2,):
                raise EpisodeError(file, f"action$camera has shape {values.shape}, expected ({steps}, 2)")
            camera = values.astype(np.float32)
        elif name in BUTTON_INDEX:
            buttons[:, BUTTON_INDEX[name]] |= _is_pressed(values)
        elif key == PLACE_KEY:
            buttons[:, BUTTON_INDEX["use"]] |= _is_pressed(values)
        else:
            unmapped.append(name)
    if "action$camera" not in arrays:
        raise EpisodeError(file, "no action$camera array")
    return buttons, camera, sorted(unmapped)


class MineRLSource(Source):
    kind = "minerl"

    def list_episodes(self) -> list[EpisodeRef]:
        refs = []
        for path in self.walk_files():
            name = posixpath.basename(path)
            if name not in (RAW_MARKER, EXTRACTED_MARKER):
                continue
            folder = posixpath.dirname(path)
            episode_id = self.episode_id(folder, drop_extension=False)
            if name == RAW_MARKER:
                files = {"video": path, "rendered": f"{folder}/rendered.npz", "metadata": f"{folder}/metadata.json"}
            else:
                files = {"frames": path, "actions": f"{folder}/actions.npz", "rewards": f"{folder}/rewards.npy"}
            refs.append(EpisodeRef(episode_id, files))
        return sorted(refs, key=lambda r: r.id)

    def fields(self) -> dict[str, FieldSpec]:
        return minecraft_fields(self.options, MINERL_NATIVE)

    def observation_spec(self) -> dict:
        return minecraft_observation(self.options, MINERL_NATIVE)

    def action_spec(self) -> dict:
        return minecraft_action_spec()

    def read_episode(self, ref: EpisodeRef, emit: Emit) -> dict:
        if "video" in ref.files:
            return self._read_raw(ref, emit)
        return self._read_extracted(ref, emit)

    def _emit_rows(self, emit: Emit, frames: np.ndarray, start: int, buttons, camera, rewards, has_action) -> None:
        rows = slice(start, start + len(frames))
        n = len(frames)
        emit(minecraft_rows(frames, buttons[rows], camera[rows], rewards=rewards[rows], has_action=has_action[rows],
                            is_gui_open=np.zeros(n, np.uint8), cursor_xy=np.zeros((n, 2), np.float32),
                            is_terminal=np.zeros(n, np.uint8)))

    def _read_raw(self, ref: EpisodeRef, emit: Emit) -> dict:
        video, rendered = ref.files["video"], ref.files["rendered"]
        arrays = _load_npz(self, rendered)
        if "reward" not in arrays:
            raise EpisodeError(rendered, "no 'reward' array")
        steps = len(arrays["reward"])
        buttons, camera, unmapped = minerl_actions(arrays, steps, rendered)
        # The video has one frame more than the arrays: pad a null action (has_action = 0) at the end.
        length = steps + 1
        buttons = np.concatenate([buttons, np.zeros((1, N_BUTTONS), np.uint8)])
        camera = np.concatenate([camera, np.zeros((1, 2), np.float32)])
        rewards = np.concatenate([arrays["reward"].astype(np.float32), np.zeros(1, np.float32)])
        has_action = np.concatenate([np.ones(steps, np.uint8), np.zeros(1, np.uint8)])
        metadata = {}
        if self.exists(ref.files["metadata"]):
            try:
                with self.open(ref.files["metadata"]) as handle:
                    metadata = json.load(handle)
            except (OSError, json.JSONDecodeError) as error:
                raise EpisodeError(ref.files["metadata"], f"malformed metadata ({error})") from None
        o = self.options
        written = video_frames = 0
        with self.open(video) as handle:
            for frames in decode_video(handle, file=video, size=o.resolution, backend=o.video_backend,
                                       threads=o.decode_threads, chunk=o.frame_chunk_rows):
                video_frames += len(frames)
                take = min(len(frames), length - written)
                if take > 0:
                    self._emit_rows(emit, frames[:take], written, buttons, camera, rewards, has_action)
                    written += take
        if abs(video_frames - length) > o.length_tolerance:
            raise EpisodeError(video, f"video has {video_frames} frames but {rendered} has {steps} steps "
                                      f"(expected {length} frames, tolerance {o.length_tolerance})")
        notes: dict = {"layout": "raw-v0.4"}
        if unmapped:
            notes["unmapped_actions"] = unmapped
        if video_frames != length:
            notes["length_mismatch"] = {"video_frames": video_frames, "action_steps": steps, "kept": written}
        for key in ("success", "duration_steps", "total_reward"):
            if key in metadata:
                notes[key] = metadata[key]
        return notes

    def _read_extracted(self, ref: EpisodeRef, emit: Emit) -> dict:
        frames_file = ref.files["frames"]
        try:
            with self.open(frames_file) as handle:
                frames = np.load(io.BytesIO(handle.read()), allow_pickle=False)
        except (OSError, ValueError, EOFError) as error:
            raise EpisodeError(frames_file, f"unreadable npy ({error})") from None
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise EpisodeError(frames_file, f"expected (T, H, W, 3) uint8 frames, got {frames.shape} {frames.dtype}")
        length = len(frames)
        arrays = _load_npz(self, ref.files["actions"])
        buttons, camera, unmapped = minerl_actions(arrays, length, ref.files["actions"])
        rewards = np.zeros(length, np.float32)
        if self.exists(ref.files["rewards"]):
            try:
                with self.open(ref.files["rewards"]) as handle:
                    rewards = np.load(io.BytesIO(handle.read()), allow_pickle=False).astype(np.float32)
            except (OSError, ValueError, EOFError) as error:
                raise EpisodeError(ref.files["rewards"], f"unreadable npy ({error})") from None
            if rewards.shape != (length,):
                raise EpisodeError(ref.files["rewards"], f"has shape {rewards.shape}, expected ({length},)")
        has_action = np.ones(length, np.uint8)
        step = self.options.frame_chunk_rows
        for start in range(0, length, step):
            chunk = frames[start:start + step]
            if self.options.resolution:
                chunk = resize_frames(chunk, self.options.resolution)
            self._emit_rows(emit, chunk, start, buttons, camera, rewards, has_action)
        notes: dict = {"layout": "extracted"}
        if unmapped:
            notes["unmapped_actions"] = unmapped
        return notes
