"""dreamer-train play's recordings: what was shown, as a GIF or an H.264 mp4 built in memory, read back with
Pillow and PyAV; on disk only inside --out."""

from __future__ import annotations

import io

import av
import numpy as np
from PIL import Image

from dreamer_model.play.recording import Recorder, encode_video, save_recording


def shown_frames(count: int) -> list[np.ndarray]:
    """Frames a 10x10 world model could show: a bright cell walking along the bottom row."""
    frames = []
    for i in range(count):
        frame = np.zeros((10, 10, 3), np.uint8)
        frame[9, i % 10] = (255, 64, 64)
        frames.append(frame)
    return frames


def test_gif_and_mp4_hold_every_recorded_frame(tmp_path):
    recorder = Recorder()
    for frame in shown_frames(6):
        recorder.add(frame, None)
    panels = recorder.panels()  # one labelled column, upscaled 4x
    assert panels.shape[0] == 6 and panels.shape[2] >= 40
    with Image.open(io.BytesIO(encode_video(panels, "gif", 20))) as gif:
        assert gif.format == "GIF" and gif.n_frames == 6
    with av.open(io.BytesIO(encode_video(panels, "mp4", 20))) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == 6 and decoded[0].shape == panels.shape[1:]
    # the walking cell is where it was drawn (H.264 is lossy: compare the brightest column of the bottom strip)
    for frame, shown in zip(decoded, shown_frames(6)):
        column = int(np.flatnonzero(shown[9].any(-1))[0])
        strip = frame[-4:].astype(int).sum(-1).sum(0)  # the bottom grid row, scaled 4x
        assert abs(int(strip.argmax()) // 4 - column) <= 1
    assert list(tmp_path.iterdir()) == []  # encoding wrote nothing


def test_replayed_frames_are_recorded_beside_the_real_ones(tmp_path):
    recorder = Recorder()
    frames = shown_frames(3)
    recorder.add(frames[0], None)  # a frame before replay started: its real column stays black
    recorder.add(frames[1], frames[2])
    wide = recorder.panels()
    assert wide.shape[2] > 2 * 40  # two columns
    path = save_recording(tmp_path / "out", encode_video(wide, "gif", 5), "gif")
    assert path.parent == tmp_path / "out" and path.suffix == ".gif"
    assert [p.name for p in (tmp_path / "out").iterdir()] == [path.name]  # no temp file left beside it
