"""Real raw inputs for tests: H.264 mp4s written with PyAV, VPT jsonl lines, MineRL npz files."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np

VPT_HEIGHT, VPT_WIDTH, VPT_FPS = 360, 640, 20
# Small 16:9 size for tests that do not need VPT's native 640x360 (decoding cost scales with pixels).
SMALL_HEIGHT, SMALL_WIDTH = 72, 128

_LEVEL0, _LEVEL_STEP, _DIGITS = 16, 14, 16  # 16 brightness levels 14 apart: robust to H.264 + resizing


def pattern_level(index: int) -> int:
    """Brightness of the left half of frame ``index`` (its index mod 16)."""
    return _LEVEL0 + _LEVEL_STEP * (index % _DIGITS)


def frame_pattern(index: int, height: int, width: int) -> np.ndarray:
    """A grey frame whose brightness encodes its index: left half = index mod 16, right half = index // 16.

    Levels are 14 apart, so any index < 256 survives H.264, yuv420 and area downscaling, and two
    frames one or two apart never look alike (see ``pattern_index``).
    """
    frame = np.empty((height, width, 3), dtype=np.uint8)
    frame[:, : width // 2] = pattern_level(index)
    frame[:, width // 2:] = _LEVEL0 + _LEVEL_STEP * ((index // _DIGITS) % _DIGITS)
    return frame


def pattern_index(frame: np.ndarray) -> int:
    """Read back the index ``frame_pattern`` wrote, from a decoded (possibly resized) frame."""
    height, width = frame.shape[:2]
    rows = slice(height // 4, max(height // 4 + 1, 3 * height // 4))

    def digit(columns: slice) -> int:
        level = float(frame[rows, columns].mean())
        return int(np.clip(round((level - _LEVEL0) / _LEVEL_STEP), 0, _DIGITS - 1))

    low = digit(slice(width // 8, max(width // 8 + 1, 3 * width // 8)))
    high = digit(slice(5 * width // 8, max(5 * width // 8 + 1, 7 * width // 8)))
    return high * _DIGITS + low


def write_h264(path: Path, n_frames: int, height: int = VPT_HEIGHT, width: int = VPT_WIDTH, fps: int = VPT_FPS,
               gop: int = 20, frames: np.ndarray | None = None) -> Path:
    """Write a real H.264 mp4 (yuv420p) with PyAV; frames default to ``frame_pattern``."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"g": str(gop), "crf": "18", "preset": "ultrafast"}
        for i in range(n_frames):
            image = frames[i] if frames is not None else frame_pattern(i, height, width)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def vpt_line(tick: int, keys: list[str] = (), buttons: list[int] = (), new_buttons: list[int] = (),
             dx: float = 0.0, dy: float = 0.0, hotbar: int = 0, gui: bool = False, x: float = 320.0,
             y: float = 180.0, new_keys: list[str] = ()) -> dict:
    """One jsonl record in the full VPT contractor field layout."""
    return {
        "mouse": {"x": x, "y": y, "dx": dx, "dy": dy, "scaledX": x - 320.0, "scaledY": y - 180.0, "dwheel": 0.0,
                  "buttons": list(buttons), "newButtons": list(new_buttons)},
        "keyboard": {"keys": list(keys), "newKeys": list(new_keys), "chars": ""},
        "isGuiOpen": gui, "isGuiInventory": gui, "hotbar": hotbar, "yaw": 0.0, "pitch": 0.0,
        "xpos": 0.5, "ypos": 64.0, "zpos": 0.5, "tick": tick, "milli": 1650000000000 + 50 * tick,
        "inventory": [], "serverTick": tick, "serverTickDurationMs": 12.5, "stats": {},
    }


def random_vpt_lines(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    keys = ["key.keyboard.w", "key.keyboard.a", "key.keyboard.space", "key.keyboard.left.shift", "key.keyboard.e"]
    lines, hotbar = [], 0
    for t in range(n):
        if rng.random() < 0.1:
            hotbar = int(rng.integers(9))
        pressed = [k for k in keys if rng.random() < 0.3]
        buttons = [b for b in (0, 1) if rng.random() < 0.2]
        lines.append(vpt_line(t, keys=pressed, buttons=buttons, new_buttons=buttons,
                              dx=float(rng.normal(0, 30)) if rng.random() < 0.5 else 0.0,
                              dy=float(rng.normal(0, 10)) if rng.random() < 0.5 else 0.0, hotbar=hotbar,
                              gui=bool(rng.random() < 0.05)))
    return lines


def write_jsonl(path: Path, lines: list[dict]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def write_vpt_episode(folder: Path, name: str, n_frames: int, n_lines: int | None = None, seed: int = 0,
                      height: int = SMALL_HEIGHT, width: int = SMALL_WIDTH,
                      lines: list[dict] | None = None) -> tuple[Path, Path]:
    """``NAME.mp4`` (pattern frames) + ``NAME.jsonl`` (random lines unless ``lines`` is given)."""
    folder.mkdir(parents=True, exist_ok=True)
    video = write_h264(folder / f"{name}.mp4", n_frames, height, width)
    if lines is None:
        lines = random_vpt_lines(n_lines if n_lines is not None else n_frames, seed)
    actions = write_jsonl(folder / f"{name}.jsonl", lines)
    return video, actions


def truncate_file(path: Path, keep: float = 0.5) -> Path:
    """Cut a file to a fraction of its bytes (an interrupted download)."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


MINERL_BUTTON_KEYS = ("forward", "back", "left", "right", "jump", "sneak", "sprint", "attack")
# Enum-valued MineRL v0.4 action keys (ObtainDiamond): item names, or "none" for no action.
MINERL_ENUM_KEYS = {"place": "dirt", "craft": "planks", "equip": "wooden_pickaxe", "nearbyCraft": "furnace",
                    "nearbySmelt": "iron_ingot"}


def minerl_action_arrays(n: int, seed: int = 0, with_enums: bool = True) -> dict[str, np.ndarray]:
    """``action$…`` arrays as MineRL stores them: int64 buttons, float32 (pitch, yaw) camera, str enums."""
    rng = np.random.default_rng(seed)
    arrays = {f"action${key}": (rng.random(n) < 0.3).astype(np.int64) for key in MINERL_BUTTON_KEYS}
    arrays["action$camera"] = rng.normal(0, 5, size=(n, 2)).astype(np.float32)
    if with_enums:
        for key, item in MINERL_ENUM_KEYS.items():
            arrays[f"action${key}"] = np.where(rng.random(n) < 0.2, item, "none")
    return arrays


def write_minerl_raw(folder: Path, n_frames: int, seed: int = 0, size: int = 64, surplus: int = 0,
                     success: bool = True) -> Path:
    """MineRL v0.4 layout: recording.mp4 + rendered.npz (n-1 steps) + metadata.json.

    The video holds ``surplus`` leading frames more than the n that pair with the arrays (MineRL's
    publisher cut those ticks from the arrays only); frame i shows ``frame_pattern(i)``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    write_h264(folder / "recording.mp4", surplus + n_frames, size, size)
    rng = np.random.default_rng(seed)
    arrays = minerl_action_arrays(n_frames - 1, seed)
    arrays["reward"] = rng.integers(0, 2, n_frames - 1).astype(np.float64)
    # observation arrays sit beside the actions in the real files; ingest must ignore them
    arrays["observation$inventory$dirt"] = rng.integers(0, 64, n_frames - 1).astype(np.int64)
    arrays["observation$equipped_items.mainhand.type"] = np.full(n_frames - 1, "none")
    np.savez(folder / "rendered.npz", **arrays)
    (folder / "metadata.json").write_text(json.dumps({"success": success, "duration_steps": n_frames - 1,
                                                      "total_reward": float(arrays["reward"].sum()),
                                                      "true_video_frame_count": surplus + n_frames}))
    return folder


def write_minerl_extracted(folder: Path, n_frames: int, seed: int = 0, size: int = 64) -> Path:
    """The extracted layout: frames.npy (T, H, W, 3) + actions.npz (T steps) + rewards.npy (T,)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    np.save(folder / "frames.npy", rng.integers(0, 256, (n_frames, size, size, 3), dtype=np.uint8))
    np.savez(folder / "actions.npz", **minerl_action_arrays(n_frames, seed, with_enums=False))
    np.save(folder / "rewards.npy", rng.random(n_frames).astype(np.float32))
    return folder
