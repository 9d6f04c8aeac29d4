"""The Crafter and Minecraft control pages of dreamer-train play in a real browser (headless Chromium on the page
the real command serves), each on a tiny world model trained here for a few steps: these tests check the controls
path, not learning.

Crafter: a store of real episodes (collected, then ingested); each key of Crafter's own GUI keymap reaches the
server as that action's name. Minecraft: a VPT-like store ingested from real H.264 and jsonl lines in VPT's field
layout whose rows hold known keys, mouse buttons and integer mouse moves; the page is played with the same keys,
clicks and moves (under pointer lock) and the server's label of each step must be the store's own row: the same
buttons and the same one of 121 camera classes; replay plays the store's recorded row after the context beside
its next real frame. Both: the legend names every control, imagined frames change, and reset shows the store's
real context frame again, pixel for pixel.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
import zarr

import makers
from dreamer_data.actions.minecraft import BUTTONS, CAMERA_NULL_CLASS
from dreamer_data.collect.collector import CollectConfig, collect
from dreamer_data.ingest import IngestPlan, ingest
from dreamer_data.sources import ReadOptions, source_class
from dreamer_data.store.manifest import load_manifest
from play_page import Server, browser_page, read_canvas, wait_step

NET = {"dim": 32, "depth": 2, "heads": 2, "kv_heads": 1, "head_dim": 16, "registers": 1, "time_every": 2}
BOOKS = {"eval_every": 10 ** 6, "checkpoint_every": 10 ** 6, "log_every": 100, "threads": 1}
STEPS = 5  # training steps of each tiny model
CONTEXT = 2

# Crafter's own GUI keymap (crafter/run_gui.py): pygame key → action, as KeyboardEvent codes; no key = noop.
CRAFTER_GUI = {"KeyA": "move_left", "KeyD": "move_right", "KeyW": "move_up", "KeyS": "move_down", "Space": "do",
               "Tab": "sleep", "KeyR": "place_stone", "KeyT": "place_table", "KeyF": "place_furnace",
               "KeyP": "place_plant", "Digit1": "make_wood_pickaxe", "Digit2": "make_stone_pickaxe",
               "Digit3": "make_iron_pickaxe", "Digit4": "make_wood_sword", "Digit5": "make_stone_sword",
               "Digit6": "make_iron_sword"}

# VPT's keyboard names → the browser's KeyboardEvent codes that press them; VPT mouse buttons → playwright's.
VPT_KEY_CODES = {"key.keyboard.w": "KeyW", "key.keyboard.a": "KeyA", "key.keyboard.s": "KeyS",
                 "key.keyboard.d": "KeyD", "key.keyboard.space": "Space", "key.keyboard.left.shift": "ShiftLeft",
                 "key.keyboard.left.control": "ControlLeft", "key.keyboard.e": "KeyE", "key.keyboard.q": "KeyQ",
                 "key.keyboard.f": "KeyF", **{f"key.keyboard.{i}": f"Digit{i}" for i in range(1, 10)}}
VPT_MOUSE = {0: "left", 1: "right", 2: "middle"}  # attack, use, pickItem
# Recorded rows: (keys, mouse buttons, mouse dx, dy in mouse units); row 0 presses no mouse button (VPT's loader
# treats attack held from the first line as stuck).
ROWS = [(["key.keyboard.w", "key.keyboard.a"], [], 0, 0),
        (["key.keyboard.s", "key.keyboard.d", "key.keyboard.space"], [0], 20, -8),
        (["key.keyboard.left.shift", "key.keyboard.left.control", "key.keyboard.e"], [1], -45, 12),
        (["key.keyboard.1", "key.keyboard.2", "key.keyboard.3", "key.keyboard.q"], [2], 200, -100),  # clipped at 10°
        (["key.keyboard.4", "key.keyboard.5", "key.keyboard.6", "key.keyboard.f"], [], 3, 0),
        (["key.keyboard.7", "key.keyboard.8", "key.keyboard.9"], [], -7, 5),
        ([], [], 1, -1)]  # inside the middle bin: no move


def train_tiny(root: Path, kind: str, raw: Path, size: tuple[int, int], patch: int) -> dict:
    """Ingest ``raw`` at ``size``, train a tokenizer and a world model ``STEPS`` steps each (fixed seed)."""
    from dreamer_data.tokenize import tokenize_store
    from dreamer_model.tokenizer.frame_encoder import TokenizerFrameEncoder
    from dreamer_model.train.phase1 import Phase1TrainOptions, train_phase1
    from dreamer_model.train.tokenizer import TokenizerTrainOptions, train_tokenizer

    store = str(root / "store")
    assert not ingest(source_class(kind)(str(raw), ReadOptions(resolution=size)), store, IngestPlan(workers=0)).failed
    tokenizer = {"tokenizer": {"height": size[0], "width": size[1], "patch": patch, "latent_tokens": 4, "latent_dim": 8,
                               "context": 1, "mask_max": 0.0, "lpips_weight": 0.0, "encoder": NET, "decoder": NET},
                 "train": {"batch": 4, "lr": 1e-3, "warmup": 1, **BOOKS}}
    world_model = {"dynamics": {"context": CONTEXT, "transformer": NET},
                   "train": {"batch": 4, "lr": 1e-3, "warmup": 1, **BOOKS}}
    for name, config in (("tokenizer", tokenizer), ("phase1", world_model)):
        (root / f"{name}.yaml").write_text(yaml.safe_dump(config))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train_tokenizer(TokenizerTrainOptions(data=store, out=str(root / "tok"), steps=STEPS,
                                              config=str(root / "tokenizer.yaml"), seed=0, device="cpu"))
        tokenize_store(store, TokenizerFrameEncoder.from_checkpoint(str(root / "tok"), device="cpu"))
        train_phase1(Phase1TrainOptions(data=store, out=str(root / "wm"), steps=STEPS,
                                        config=str(root / "phase1.yaml"), seed=0, device="cpu"))
    finally:
        torch.set_num_threads(threads)
    manifest = load_manifest(store)
    episode = manifest["episodes"][0]
    return {"store": store, "wm": str(root / "wm"), "manifest": manifest, "episode": episode["id"],
            "context_row": episode["start"] + CONTEXT - 1}  # the last real context frame of frame 0's context


@pytest.fixture(scope="module")
def crafter_run(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("play-crafter")
    collect(CollectConfig("crafter", "random", seed=0, max_steps=12), root / "raw", episodes=2)
    return train_tiny(root, "crafter", root / "raw", (64, 64), 8)


@pytest.fixture(scope="module")
def minecraft_run(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("play-minecraft")
    lines = [makers.vpt_line(t, keys=keys, buttons=mouse, new_buttons=mouse, dx=float(dx), dy=float(dy))
             for t, (keys, mouse, dx, dy) in enumerate(ROWS)]
    lines += [makers.vpt_line(t) for t in range(len(ROWS), 10)]
    makers.write_vpt_episode(root / "raw", "player-0-2022.06.01", len(lines), lines=lines)
    makers.write_vpt_episode(root / "raw", "player-1-2022.06.01", 10, seed=1)
    return train_tiny(root, "vpt", root / "raw", (16, 32), 4)


@contextmanager
def playing(run: dict, folder: Path):
    """The page the real command serves for ``run``, paused on frame 0's real context; no page error allowed,
    nothing written by the server; a screenshot of the page at the end is kept as ``folder/play.png``."""
    cwd = folder / "cwd"
    cwd.mkdir()
    server = Server("--ckpt", run["wm"], "--episode", run["episode"], "--start", "0", "--context", str(CONTEXT),
                    "--port", "0", cwd=cwd)
    try:
        with browser_page(server.url) as page:
            page.wait_for_function("document.querySelectorAll('#legend tr').length > 1")
            page.click("#pause")
            page.click("#reset")
            wait_step(page, 0, "context")
            yield page
            page.screenshot(path=str(folder / "play.png"), full_page=True)
            print(f"screenshot: {folder / 'play.png'}")
        assert list(cwd.iterdir()) == []
    finally:
        assert server.stop() == 0


def legend(page) -> dict[str, str]:
    """The legend's rows: control label → what it does."""
    rows = page.eval_on_selector_all("#legend tr", "rows => rows.map(r => [...r.cells].map(c => c.innerText))")
    return {label: action for label, action in rows}


def context_frame(run: dict) -> np.ndarray:
    return zarr.open_group(run["store"], mode="r")["data/frames"][run["context_row"]]


def step_under_pointer_lock(page, n: int) -> str:
    """Step one frame while the pointer is locked to the frame (a click would go to the canvas, and Enter on the
    focused button is no click while Ctrl is held): the button's own click event. Returns the action label."""
    page.dispatch_event("#step-once", "click")
    wait_step(page, n)
    return page.inner_text("#action")


def test_crafter_keys_reach_the_server_as_its_17_actions(crafter_run, tmp_path):
    names = crafter_run["manifest"]["actions"]["discrete"]["names"]
    assert sorted([*CRAFTER_GUI.values(), "noop"]) == sorted(names)  # the GUI keymap covers the store's actions
    with playing(crafter_run, tmp_path) as page:
        shown = legend(page)
        labels = {"Space": "space", "Tab": "tab"}
        assert shown == {**{labels.get(code, code[-1]): action for code, action in CRAFTER_GUI.items()},
                         "no key": "noop"}
        np.testing.assert_array_equal(read_canvas(page, "imagined"), context_frame(crafter_run))

        frames = []
        for n, (code, action) in enumerate(CRAFTER_GUI.items(), start=1):
            page.keyboard.down(code)
            page.click("#step-once")
            wait_step(page, n)
            page.keyboard.up(code)
            assert page.inner_text("#action") == action, code
            frames.append(read_canvas(page, "imagined"))
        page.click("#step-once")
        wait_step(page, len(CRAFTER_GUI) + 1)
        assert page.inner_text("#action") == "noop"  # no key held
        assert len({frame.tobytes() for frame in frames}) > 1

        # a chord: the latest key wins; released key by key after the step, it leaves nothing pressed
        page.keyboard.down("KeyW")
        page.keyboard.down("Space")
        page.click("#step-once")
        wait_step(page, len(CRAFTER_GUI) + 2)
        assert page.inner_text("#action") == "do"
        page.keyboard.up("Space")
        page.keyboard.up("KeyW")
        page.click("#step-once")
        wait_step(page, len(CRAFTER_GUI) + 3)
        assert page.inner_text("#action") == "noop"

        page.click("#reset")
        wait_step(page, 0, "context")
        np.testing.assert_array_equal(read_canvas(page, "imagined"), context_frame(crafter_run))


def parse_label(label: str) -> tuple[set[str], int]:
    """The server's label of a Minecraft action → (held buttons, camera class)."""
    match = re.fullmatch(r"(.+?)(?:, camera class (\d+) \(.*\))?", label)
    buttons = set() if match[1] == "no button" else set(match[1].split(" + "))
    return buttons, int(match[2]) if match[2] else CAMERA_NULL_CLASS


def test_minecraft_keys_clicks_and_mouse_moves_reach_the_server_as_the_stores_rows(minecraft_run, tmp_path):
    arrays = zarr.open_group(minecraft_run["store"], mode="r")["data/actions"]
    first = minecraft_run["context_row"] - CONTEXT + 1  # row 0 of the episode
    stored = [({BUTTONS[i] for i in np.flatnonzero(arrays["buttons"][first + t])}, int(arrays["camera"][first + t]))
              for t in range(len(ROWS))]
    assert len({camera for _, camera in stored}) == len(ROWS) - 1 and stored[-1][1] == CAMERA_NULL_CLASS
    with playing(minecraft_run, tmp_path) as page:
        shown = legend(page)
        assert {*BUTTONS} - {*shown.values()} == {"ESC"}  # Esc frees the pointer, as browsers reserve it
        assert "121 mu-law classes" in shown["mouse move"]
        assert (shown["left click"], shown["right click"], shown["middle click"]) == ("attack", "use", "pickItem")
        np.testing.assert_array_equal(read_canvas(page, "imagined"), context_frame(minecraft_run))

        box = page.locator("#imagined").bounding_box()
        x, y, frames = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, []
        page.mouse.click(x, y)  # the first click only locks the pointer
        page.wait_for_function("document.pointerLockElement === document.getElementById('imagined')")
        assert step_under_pointer_lock(page, 1) == "no button"
        for n, ((keys, mouse, dx, dy), (buttons, camera)) in enumerate(zip(ROWS, stored), start=2):
            for key in keys:
                page.keyboard.down(VPT_KEY_CODES[key])
            for button in mouse:
                page.mouse.down(button=VPT_MOUSE[button])
            x, y = x + dx, y + dy
            page.mouse.move(x, y)
            page.evaluate("() => new Promise(requestAnimationFrame)")  # the page sends moves once per frame
            assert parse_label(step_under_pointer_lock(page, n)) == (buttons, camera), ROWS[n - 2]
            for key in keys:
                page.keyboard.up(VPT_KEY_CODES[key])
            for button in mouse:
                page.mouse.up(button=VPT_MOUSE[button])
            frames.append(read_canvas(page, "imagined"))
        assert len({frame.tobytes() for frame in frames}) > 1

        page.dispatch_event("#reset", "click")
        wait_step(page, 0, "context")
        np.testing.assert_array_equal(read_canvas(page, "imagined"), context_frame(minecraft_run))

        # replay: the first imagined frame follows the action recorded after the last context frame (row t holds
        # the action taken after seeing frame t), shown beside the store's next real frame
        page.dispatch_event("#replay", "click")
        page.dispatch_event("#step-once", "click")
        wait_step(page, 1, "replay")
        label = page.inner_text("#action")
        assert label.startswith("recorded: ") and parse_label(label[len("recorded: "):]) == stored[CONTEXT - 1]
        real = zarr.open_group(minecraft_run["store"], mode="r")["data/frames"][minecraft_run["context_row"] + 1]
        np.testing.assert_array_equal(read_canvas(page, "real"), real)
