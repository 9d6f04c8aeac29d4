"""MineRL episodes, in the two layouts that exist on disk.

- raw v0.4: ``recording.mp4`` + ``rendered.npz`` (``action$…`` arrays, ``reward``) + ``metadata.json``.
  MineRL's publisher cut the first ticks from the arrays but not from the video, so the two align at
  the end: of S array steps and D decoded frames, the first D − (S + 1) frames are skipped (recorded as
  ``notes.video_frames_skipped``), action i follows kept frame i, and the final frame is kept with a
  flagged null action (``has_action = 0``). ``is_terminal`` marks the last action of an episode
  metadata.json calls a ``success`` (the task's goal reached); any other end is a truncation.
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
from typing import Callable, NamedTuple

import av
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


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# The metadata.json keys we read, each with the check its (untrusted) value must pass.
METADATA_KEYS: dict[str, tuple[Callable[[object], bool], str]] = {
    "true_video_frame_count": (_is_count, "a frame count"),
    "duration_steps": (_is_count, "a step count"),
    "success": (lambda value: isinstance(value, bool), "true or false"),
    "total_reward": (_is_number, "a number"),
}


class Labels(NamedTuple):
    """Everything a row holds besides its frame, one entry per kept frame."""

    buttons: np.ndarray
    camera: np.ndarray
    rewards: np.ndarray
    has_action: np.ndarray
    is_terminal: np.ndarray


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


def _count_steps(arrays: dict[str, np.ndarray], file: str) -> int:
    """S, the steps of rendered.npz: the length of its (untrusted) reward array."""
    if "reward" not in arrays:
        raise EpisodeError(file, "no 'reward' array")
    reward = arrays["reward"]
    if reward.ndim != 1 or reward.dtype.kind not in "biuf":
        raise EpisodeError(file, f"'reward' should be one number per step, got {reward.shape} {reward.dtype}")
    return len(reward)


def _load_metadata(source: Source, path: str) -> dict:
    """The keys of ``METADATA_KEYS`` found in metadata.json (none if it is absent), each checked."""
    if not source.exists(path):
        return {}
    try:
        with source.open(path) as handle:
            metadata = json.load(handle)
    except (OSError, ValueError) as error:  # ValueError: malformed JSON or text that is not UTF-8
        raise EpisodeError(path, f"malformed metadata ({error})") from None
    if not isinstance(metadata, dict):
        raise EpisodeError(path, f"expected a JSON object, got {type(metadata).__name__}")
    for key, (valid, expected) in METADATA_KEYS.items():
        if key in metadata and not valid(metadata[key]):
            raise EpisodeError(path, f"{key} should be {expected}, got {json.dumps(metadata[key])[:40]}")
    return {key: metadata[key] for key in METADATA_KEYS if key in metadata}


def _count_frames(source: Source, video: str) -> int:
    """Decoded frames (as MineRL counted true_video_frame_count): decoding without pixel conversion is
    cheap next to the pass that stores frames, and aligning by the end needs the count first."""
    try:
        with source.open(video) as handle, av.open(handle, mode="r") as container:
            if not container.streams.video:
                raise EpisodeError(video, "no video stream")
            return sum(1 for _ in container.decode(container.streams.video[0]))
    except (av.error.FFmpegError, OSError) as error:
        raise EpisodeError(video, f"undecodable video ({error})") from None


def _raw_labels(arrays: dict[str, np.ndarray], steps: int, file: str, success: bool) -> tuple[Labels, list[str]]:
    """Rows for S steps + the final frame: its null action gets ``has_action = 0``; a success ends the
    episode with the last action (``is_terminal``), any other end is a truncation."""
    buttons, camera, unmapped = minerl_actions(arrays, steps, file)
    is_terminal = np.zeros(steps + 1, np.uint8)
    if success and steps:
        is_terminal[steps - 1] = 1  # the row of the action that reached the goal, not the final frame's
    labels = Labels(buttons=np.concatenate([buttons, np.zeros((1, N_BUTTONS), np.uint8)]),
                    camera=np.concatenate([camera, np.zeros((1, 2), np.float32)]),
                    rewards=np.append(arrays["reward"].astype(np.float32), np.float32(0)),
                    has_action=(np.arange(steps + 1) < steps).astype(np.uint8), is_terminal=is_terminal)
    return labels, unmapped


def _raw_notes(skip: int, decoded: int, unmapped: list[str], metadata: dict) -> dict:
    """What a raw episode's manifest entry says: the skip always, a frame count metadata.json
    disagrees with, and metadata.json's own record of the episode."""
    notes: dict = {"layout": "raw-v0.4", "video_frames_skipped": skip}
    if unmapped:
        notes["unmapped_actions"] = unmapped
    if metadata.get("true_video_frame_count", decoded) != decoded:
        notes["video_frame_count_mismatch"] = {"metadata": metadata["true_video_frame_count"], "decoded": decoded}
    for key in ("success", "duration_steps", "total_reward"):
        if key in metadata:
            notes[key] = metadata[key]
    return notes


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

    def _emit_rows(self, emit: Emit, frames: np.ndarray, start: int, labels: Labels) -> None:
        rows = slice(start, start + len(frames))
        n = len(frames)
        emit(minecraft_rows(frames, labels.buttons[rows], labels.camera[rows], rewards=labels.rewards[rows],
                            has_action=labels.has_action[rows], is_terminal=labels.is_terminal[rows],
                            is_gui_open=np.zeros(n, np.uint8), cursor_xy=np.zeros((n, 2), np.float32)))

    def _emit_video(self, emit: Emit, video: str, skip: int, labels: Labels) -> tuple[int, str]:
        """Store decoded frames ``skip …`` as rows 0, 1, …; return how many frames the decoder gave, and
        which decoder read them (the one asked for, or the one it fell back to)."""
        o = self.options
        seen = written = 0
        with self.open(video) as handle:
            decoded = decode_video(handle, file=video, size=o.resolution, backend=o.video_backend,
                                   threads=o.decode_threads, chunk=o.frame_chunk_rows)
            for frames in decoded:
                first = max(skip - seen, 0)
                seen += len(frames)
                kept = frames[first:first + len(labels.rewards) - written]
                if len(kept):
                    self._emit_rows(emit, kept, written, labels)
                    written += len(kept)
        return seen, decoded.backend

    def _read_raw(self, ref: EpisodeRef, emit: Emit) -> dict:
        video, rendered = ref.files["video"], ref.files["rendered"]
        arrays = _load_npz(self, rendered)
        steps = _count_steps(arrays, rendered)
        metadata = _load_metadata(self, ref.files["metadata"])
        labels, unmapped = _raw_labels(arrays, steps, rendered, success=metadata.get("success") is True)
        decoded = _count_frames(self, video)
        if decoded < steps + 1:
            raise EpisodeError(video, f"video has {decoded} frames, fewer than the {steps + 1} that the "
                                      f"{steps} steps of {rendered} need")
        # Align by the end, as MineRL's reader does, but with the frames we decoded (see FORMAT.md).
        skip = decoded - (steps + 1)
        delivered, decoder = self._emit_video(emit, video, skip, labels)
        if delivered != decoded:
            raise EpisodeError(video, f"the {decoder} decoder gave {delivered} frames, "
                                      f"{decoded} were counted: cannot align by the end")
        return {**_raw_notes(skip, decoded, unmapped, metadata), "decoder": decoder}

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
        labels = Labels(buttons, camera, rewards, has_action=np.ones(length, np.uint8),
                        is_terminal=np.zeros(length, np.uint8))
        step = self.options.frame_chunk_rows
        for start in range(0, length, step):
            chunk = frames[start:start + step]
            if self.options.resolution:
                chunk = resize_frames(chunk, self.options.resolution)
            self._emit_rows(emit, chunk, start, labels)
        notes: dict = {"layout": "extracted"}
        if unmapped:
            notes["unmapped_actions"] = unmapped
        return notes
