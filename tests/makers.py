"""Real raw inputs for tests: H.264 mp4s written with PyAV, VPT jsonl lines, MineRL npz files."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np

VPT_HEIGHT, VPT_WIDTH, VPT_FPS = 360, 640, 20


def frame_pattern(index: int, height: int, width: int) -> np.ndarray:
    """A frame whose mean brightness encodes its index (survives H.264 and downscaling)."""
    level = 16 + (index * 37) % 224
    frame = np.full((height, width, 3), level, dtype=np.uint8)
    frame[: height // 4, : width // 4, 0] = 255 - level  # some structure so the encoder has edges
    return frame


def pattern_level(index: int) -> int:
    return 16 + (index * 37) % 224


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
             y: float = 180.0) -> dict:
    """One jsonl record in the full VPT contractor field layout."""
    return {
        "mouse": {"x": x, "y": y, "dx": dx, "dy": dy, "scaledX": x - 320.0, "scaledY": y - 180.0, "dwheel": 0.0,
                  "buttons": list(buttons), "newButtons": list(new_buttons)},
        "keyboard": {"keys": list(keys), "newKeys": [], "chars": ""},
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
                      height: int = VPT_HEIGHT, width: int = VPT_WIDTH) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    video = write_h264(folder / f"{name}.mp4", n_frames, height, width)
    actions = write_jsonl(folder / f"{name}.jsonl", random_vpt_lines(n_lines if n_lines is not None else n_frames, seed))
    return video, actions


MINERL_BUTTON_KEYS = ("forward", "back", "left", "right", "jump", "sneak", "sprint", "attack")


def minerl_action_arrays(n: int, seed: int = 0, with_place: bool = True) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = {f"action${key}": (rng.random(n) < 0.3).astype(np.int64) for key in MINERL_BUTTON_KEYS}
    arrays["action$camera"] = rng.normal(0, 5, size=(n, 2)).astype(np.float32)
    if with_place:
        arrays["action$place"] = np.where(rng.random(n) < 0.1, "dirt", "none")
        arrays["action$craft"] = np.where(rng.random(n) < 0.05, "planks", "none")
    return arrays


def write_minerl_raw(folder: Path, n_frames: int, seed: int = 0, size: int = 64) -> Path:
    """MineRL v0.4 layout: recording.mp4 (n frames) + rendered.npz (n-1 steps) + metadata.json."""
    folder.mkdir(parents=True, exist_ok=True)
    write_h264(folder / "recording.mp4", n_frames, size, size)
    arrays = minerl_action_arrays(n_frames - 1, seed)
    arrays["reward"] = np.random.default_rng(seed).integers(0, 2, n_frames - 1).astype(np.float32)
    np.savez(folder / "rendered.npz", **arrays)
    (folder / "metadata.json").write_text(json.dumps({"success": True, "duration_steps": n_frames - 1,
                                                      "total_reward": float(arrays["reward"].sum())}))
    return folder


def write_minerl_extracted(folder: Path, n_frames: int, seed: int = 0, size: int = 64) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    np.save(folder / "frames.npy", rng.integers(0, 256, (n_frames, size, size, 3), dtype=np.uint8))
    np.savez(folder / "actions.npz", **minerl_action_arrays(n_frames, seed, with_place=False))
    np.save(folder / "rewards.npy", rng.random(n_frames).astype(np.float32))
    return folder
