"""dreamer-train play in a real browser: headless Chromium (Debian's, driven by playwright) on the page that the
real command serves (a subprocess) for a small world model trained here on real MinAtar breakout.

What the page shows is read back from its canvas, cell by cell: the imagined frames change while keys are
pressed; reset shows the store's own context frame again, pixel for pixel; from that context and the same
noise, ← and → give different imagined frames and ← twice gives the same ones (the key reaches the world
model, and nothing else differs); replay shows the episode's real frames beside the imagined ones; a recording
downloads as a GIF of the frames shown.

Not asserted: that ← and → move the imagined paddle in opposite directions. No world model trainable within
this test's budget on a 2-core CPU does that reliably (benchmarks/results/play.md: a 10x10 or 20x20 model
trained 1,500-12,000 steps moves it right under → but barely left under ←); ``paddle_columns`` prints
the measured columns in the test output.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess

import numpy as np
import pytest
import torch
import yaml
import zarr
from PIL import Image

from conftest import cli_command
from dreamer_data.collect.collector import CollectConfig, collect
from dreamer_data.collect.minatar_render import GRID, palette
from dreamer_data.ingest import IngestPlan, ingest
from dreamer_data.sources import ReadOptions, source_class
from dreamer_data.store.manifest import load_manifest
from play_page import Server, browser_page, read_canvas, wait_step


SIZE = 10  # frames drawn at 1 pixel per MinAtar cell
NET = {"dim": 32, "depth": 2, "heads": 2, "kv_heads": 1, "head_dim": 16, "registers": 1, "time_every": 2}
BOOKS = {"eval_every": 10 ** 6, "checkpoint_every": 10 ** 6, "log_every": 100, "threads": 1}
TOKENIZER = {"tokenizer": {"height": SIZE, "width": SIZE, "patch": 2, "latent_tokens": 8, "latent_dim": 8,
                           "context": 1, "mask_max": 0.0, "lpips_weight": 0.0, "focal_gamma": 1.0,
                           "encoder": NET, "decoder": NET},
             "train": {"batch": 32, "lr": 3e-3, "warmup": 20, **BOOKS}}
WORLD_MODEL = {"dynamics": {"context": 2, "transformer": {**NET, "dim": 64}},
               "train": {"batch": 16, "lr": 2e-3, "warmup": 20, **BOOKS}}
TOKENIZER_STEPS, WORLD_MODEL_STEPS = 400, 300
CONTEXT = 2
HORIZON = 2  # steps under one held key before the frame is read
TICK_FPS = 1000  # a tick faster than any CPU generates: the page must say that generation is behind


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """A store of real breakout episodes, its tokenizer and a world model (fixed steps and seed)."""
    from dreamer_data.tokenize import tokenize_store
    from dreamer_model.tokenizer.frame_encoder import TokenizerFrameEncoder
    from dreamer_model.train.phase1 import Phase1TrainOptions, train_phase1
    from dreamer_model.train.tokenizer import TokenizerTrainOptions, train_tokenizer

    root = tmp_path_factory.mktemp("play")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        collect(CollectConfig("minatar", "noisy-scripted", seed=0, game="breakout", max_steps=200, epsilon=0.5,
                              sticky_prob=0.0), root / "raw", episodes=24)
        store = str(root / "store")
        assert not ingest(source_class("minatar")(str(root / "raw"), ReadOptions(resolution=(SIZE, SIZE))), store,
                          IngestPlan(workers=0)).failed
        for name, config in (("tokenizer", TOKENIZER), ("phase1", WORLD_MODEL)):
            (root / f"{name}.yaml").write_text(yaml.safe_dump(config))
        train_tokenizer(TokenizerTrainOptions(data=store, out=str(root / "tok"), steps=TOKENIZER_STEPS,
                                              config=str(root / "tokenizer.yaml"), seed=0, device="cpu"))
        tokenize_store(store, TokenizerFrameEncoder.from_checkpoint(str(root / "tok"), device="cpu"))
        train_phase1(Phase1TrainOptions(data=store, out=str(root / "wm"), steps=WORLD_MODEL_STEPS,
                                        config=str(root / "phase1.yaml"), seed=0, device="cpu"))
    finally:
        torch.set_num_threads(threads)
    return {"root": root, "store": store, "wm": str(root / "wm")}


def middle_context(store: str) -> tuple[str, int]:
    """(episode, start) of a context whose last frame has the paddle in the middle columns (room both ways)."""
    manifest = load_manifest(store)
    grids = zarr.open_group(store, mode="r")["data/obs_grid"]
    for episode in manifest["episodes"]:
        paddle = grids[episode["start"]:episode["end"], GRID - 1, :, 0].argmax(-1)  # the bottom row's paddle
        for start in range(episode["length"] - CONTEXT - HORIZON):
            if paddle[start + CONTEXT - 1] in (4, 5):
                return episode["id"], start
    raise AssertionError("no breakout frame with the paddle in the middle")


def paddle_columns(frames: list[np.ndarray], colour: np.ndarray) -> list[float | None]:
    """The paddle's column (grid units) in (10, 10, 3) frames: the mean of the paddle-coloured bottom-row cells."""
    near = [np.flatnonzero(np.abs(f[GRID - 1].astype(float) - colour).max(-1) < 80) for f in frames]
    return [round(float(n.mean()), 2) if n.size else None for n in near]


def steps_under(page, key: str) -> np.ndarray:
    """From the real context: hold ``key`` for HORIZON single steps; the frame shown after them."""
    page.click("#reset")
    wait_step(page, 0, "context")
    page.keyboard.down(key)
    for n in range(1, HORIZON + 1):
        page.click("#step-once")
        wait_step(page, n)
    page.keyboard.up(key)
    return read_canvas(page, "imagined")


def test_the_page_plays_the_world_model(trained, tmp_path):
    store = trained["store"]
    episode, start = middle_context(store)
    manifest = load_manifest(store)
    channels = manifest["observation"]["grid_channels"]
    colour = np.array(palette(len(channels), manifest["observation"]["palette"])[1 + channels.index("paddle")])
    real = zarr.open_group(store, mode="r")["data/frames"]
    row = next(e["start"] for e in manifest["episodes"] if e["id"] == episode) + start + CONTEXT - 1
    context_frame = real[row]  # the last real context frame
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    server = Server("--ckpt", trained["wm"], "--episode", episode, "--start", str(start), "--context", str(CONTEXT),
                    "--fps", str(TICK_FPS), "--port", "0", cwd=cwd)
    try:
        with browser_page(server.url) as page:
            page.wait_for_function("document.getElementById('legend').textContent.includes('fire')")
            legend = page.inner_text("#legend")
            assert "←" in legend and "left" in legend and "space" in legend and "fire" in legend
            assert page.inner_text("#k") == "4" and page.inner_text("#context") == f"{CONTEXT} real frames"
            assert page.inner_text("#origin").startswith(f"{episode}, frames {start}")

            # it plays on its own (as fast as it can: behind the tick), and the frames change while keys are pressed
            page.wait_for_function("Number(document.getElementById('imagined').dataset.step) >= 2")
            shown = []
            for key in ("ArrowLeft", "ArrowRight", "ArrowLeft"):
                page.keyboard.down(key)
                step = int(page.get_attribute("#imagined", "data-step"))
                page.wait_for_function(f"Number(document.getElementById('imagined').dataset.step) > {step + 1}")
                shown.append(read_canvas(page, "imagined"))
                page.keyboard.up(key)
            assert len({frame.tobytes() for frame in shown}) > 1
            assert "slower than the tick" in page.inner_text("#speed")  # no CPU makes 4 model calls a millisecond

            # reset shows the store's real context frame again, pixel for pixel
            page.click("#pause")
            page.click("#reset")
            wait_step(page, 0, "context")
            np.testing.assert_array_equal(read_canvas(page, "imagined"), context_frame)

            # ← and → from the same context and noise: different frames; ← again: the same frames
            left, right, left_again = (steps_under(page, key) for key in ("ArrowLeft", "ArrowRight", "ArrowLeft"))
            np.testing.assert_array_equal(left, left_again)
            assert not np.array_equal(left, right)
            print("paddle column (context, after ←, after →):", paddle_columns(
                [context_frame, left, right], colour))

            # replay: the recorded actions, beside the real frames of the episode
            page.click("#replay")
            page.click("#step-once")
            wait_step(page, 1, "replay")
            np.testing.assert_array_equal(read_canvas(page, "real"), real[row + 1])
            assert page.inner_text("#action").startswith("recorded: ")

            # a recording: a GIF of what was shown, downloaded from the server, nothing written to disk
            page.click("#record")
            for n in range(2, 5):
                page.click("#step-once")
                wait_step(page, n, "replay")
            page.click("#record")
            page.wait_for_selector("#download:not([hidden])")
            gif = page.request.get(page.evaluate("document.getElementById('download').href")).body()
            with Image.open(io.BytesIO(gif)) as image:
                assert image.format == "GIF" and image.n_frames == 3
            assert list(cwd.iterdir()) == []

            # a malformed message gets an error back and the session goes on
            replies = page.evaluate("""() => new Promise((resolve) => {
                const ws = new WebSocket(new URL("ws", location.href.replace(/^http/, "ws"))), got = [];
                ws.onmessage = (e) => {
                    const m = JSON.parse(e.data);
                    if (m.type === "hello") {
                        ws.send("{not json"); ws.send(JSON.stringify({type: "start", episode: "../../etc", start: 0}));
                        ws.send(JSON.stringify({type: "pause"})); ws.send(JSON.stringify({type: "step"}));
                    }
                    if (m.type === "error") got.push(m.message);
                    if (m.type === "frame" && got.length === 2) { got.push("frame"); ws.close(); resolve(got); }
                };
            })""")
            assert replies[0] == "message is not JSON" and "no episode '../../etc'" in replies[1]
            assert replies[-1] == "frame"

            shot = tmp_path / "play.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot: {shot}")
    finally:
        assert server.stop() == 0


def test_bad_input_is_one_line_and_a_non_zero_exit(trained, tmp_path):
    """A missing checkpoint, a store that does not fit the world model, a port in use."""
    wrong = tmp_path / "store"
    shutil.copytree(trained["store"], wrong)
    manifest = json.loads((wrong / "manifest.json").read_text())
    manifest["latents"]["shape"] = [4, 16]
    (wrong / "manifest.json").write_text(json.dumps(manifest))
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    cases = {
        "missing checkpoint": (["--ckpt", str(tmp_path / "nothing")], "no such checkpoint file or run directory"),
        "store mismatch": (["--ckpt", trained["wm"], "--data", str(wrong)], "latents are (4, 16) per frame"),
        "port in use": (["--ckpt", trained["wm"], "--port", str(taken.getsockname()[1])], "is the port in use"),
    }
    runs = {name: subprocess.Popen([*cli_command("dreamer-train"), "play", *args], env=env, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE) for name, (args, _) in cases.items()}
    try:
        for name, process in runs.items():
            out, err = process.communicate(timeout=120)
            lines = [line for line in err.splitlines() if line.strip()]
            assert process.returncode == 2, (name, err)
            assert len(lines) == 1 and lines[0].startswith("dreamer-train play: error:"), (name, err)
            assert cases[name][1] in lines[0], (name, lines[0])
    finally:
        taken.close()
