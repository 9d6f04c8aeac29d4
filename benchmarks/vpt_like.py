"""Synthetic VPT-like recordings for benchmarks: 640x360 H.264 at 20 fps with moving texture.

Flat test patterns decode unrealistically fast; a scrolling random texture plus noise gives the
decoder real work (bitrate in the range of VPT's contractor videos).
"""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np

HEIGHT, WIDTH, FPS = 360, 640, 20


def textured_frames(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    texture = rng.integers(0, 256, (HEIGHT * 2, WIDTH * 2, 3), dtype=np.uint8)
    texture = (texture // 32 * 32).astype(np.uint8)  # blocky, like Minecraft
    texture = np.repeat(np.repeat(texture[::40, ::40], 40, axis=0), 40, axis=1)[: HEIGHT * 2, : WIDTH * 2]
    for i in range(n):
        y, x = (3 * i) % HEIGHT, (5 * i) % WIDTH
        frame = texture[y:y + HEIGHT, x:x + WIDTH].copy()
        frame[rng.integers(0, HEIGHT, 300), rng.integers(0, WIDTH, 300)] = rng.integers(0, 256, (300, 3))
        yield frame


def write_recording(folder: Path, name: str, n_frames: int, seed: int = 0, gop: int = 100) -> tuple[Path, Path]:
    """NAME.mp4 (H.264, keyframe every ``gop`` frames) + NAME.jsonl in VPT's field layout."""
    folder.mkdir(parents=True, exist_ok=True)
    video = folder / f"{name}.mp4"
    with av.open(str(video), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"g": str(gop), "crf": "23", "preset": "ultrafast"}
        for frame in textured_frames(n_frames, seed):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    rng = np.random.default_rng(seed)
    with open(folder / f"{name}.jsonl", "w") as handle:
        for t in range(n_frames):
            keys = ["key.keyboard.w"] if rng.random() < 0.5 else []
            record = {"mouse": {"x": 320.0, "y": 180.0, "dx": float(rng.normal(0, 20)), "dy": float(rng.normal(0, 5)),
                                "scaledX": 0.0, "scaledY": 0.0, "dwheel": 0.0, "buttons": [], "newButtons": []},
                      "keyboard": {"keys": keys, "newKeys": [], "chars": ""}, "isGuiOpen": False,
                      "isGuiInventory": False, "hotbar": 0, "yaw": 0.0, "pitch": 0.0, "xpos": 0.0, "ypos": 64.0,
                      "zpos": 0.0, "tick": t, "milli": 50 * t, "inventory": [], "serverTick": t,
                      "serverTickDurationMs": 10.0, "stats": {}}
            handle.write(json.dumps(record) + "\n")
    return video, folder / f"{name}.jsonl"
