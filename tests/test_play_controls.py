"""dreamer-train play, without a browser: the controls read from real stores' manifests (MinAtar, Crafter and
VPT episodes, each collected or written and then ingested), the checks on what the page may send, and the
latest-action-wins slot between ticks."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from dreamer_data.actions.minecraft import BUTTONS, CAMERA_NULL_CLASS, encode_camera
from dreamer_data.collect.collector import CollectConfig, collect
from dreamer_data.ingest import IngestPlan, ingest
from dreamer_data.sources import ReadOptions, source_class
from dreamer_data.store.manifest import load_manifest
from dreamer_model.dynamics.actions import action_fields
from dreamer_model.play.controls import CAMERA_LIMIT_DEG, Action, controls_for
from dreamer_model.play.latest import LatestAction
from dreamer_model.play.messages import MAX_MESSAGE_CHARS, MessageError, parse

import makers


def ingested(tmp_path_factory, kind: str, raw, resolution=None) -> dict:
    store = tmp_path_factory.mktemp(kind) / "store"
    report = ingest(source_class(kind)(str(raw), ReadOptions(resolution=resolution)), str(store), IngestPlan(workers=0))
    assert not report.failed
    return load_manifest(str(store))


@pytest.fixture(scope="module")
def manifests(tmp_path_factory) -> dict[str, dict]:
    """The manifests of a real MinAtar breakout store, a real Crafter store and a VPT store (H.264 + jsonl)."""
    out = {}
    for env, game in (("minatar", "breakout"), ("crafter", None)):
        raw = tmp_path_factory.mktemp(f"{env}-raw")
        collect(CollectConfig(env, "random", seed=0, game=game, max_steps=8), raw, episodes=1)
        out[env] = ingested(tmp_path_factory, env, raw, (20, 20) if env == "minatar" else None)
    vpt = tmp_path_factory.mktemp("vpt-raw")
    makers.write_vpt_episode(vpt, "player-0-2022.06.01", 12, seed=0)
    out["vpt"] = ingested(tmp_path_factory, "vpt", vpt, (36, 64))
    return out


def controls_of(manifest: dict):
    return controls_for(manifest["actions"], action_fields(manifest["actions"]))


def test_minatar_arrows_and_space_encode_the_stores_own_classes(manifests):
    manifest = manifests["minatar"]
    controls = controls_of(manifest)
    names = manifest["actions"]["discrete"]["names"]
    assert controls.scheme == "discrete"
    keys = {code: action for code, _, action in controls.keys}
    assert keys == {"ArrowLeft": "left", "ArrowRight": "right", "ArrowUp": "up", "ArrowDown": "down", "Space": "fire"}
    for action in ("left", "right", "fire"):
        inputs, has = controls.encode(Action(name=action))
        assert inputs["discrete"].tolist() == [[names.index(action)]] and has.tolist() == [[True]]
    inputs, has = controls.encode(Action())  # no key held: the store's null class (noop), still an action
    assert inputs["discrete"].tolist() == [[manifest["actions"]["discrete"]["null_class"]]] and has.tolist() == [[True]]
    assert controls.describe(Action()) == "noop"
    assert controls.describe_inputs({"discrete": torch.tensor([[3]])}, torch.tensor([[True]])) == names[3] == "right"
    assert controls.describe_inputs({"discrete": torch.tensor([[3]])}, torch.tensor([[False]])) == "no action"


def test_crafter_keys_name_each_of_its_17_actions(manifests):
    manifest = manifests["crafter"]
    controls = controls_of(manifest)
    names = manifest["actions"]["discrete"]["names"]
    assert controls.scheme == "discrete" and len(names) == 17
    bound = [action for _, _, action in controls.keys]
    assert sorted(bound) == sorted(set(names) - {"noop"})  # every action but noop (no key) has exactly one key
    page = controls.page()
    assert {k["code"] for k in page["keys"]} >= {"KeyW", "KeyA", "KeyS", "KeyD", "Space", "Tab", "Digit1"}
    for code, _, action in controls.keys:
        assert controls.encode(Action(name=action))[0]["discrete"].item() == names.index(action), code


def test_minecraft_buttons_and_camera_use_the_stores_encoding(manifests):
    manifest = manifests["vpt"]
    controls = controls_of(manifest)
    assert controls.scheme == "minecraft"
    keys = {code: action for code, _, action in controls.keys}
    assert (keys["KeyW"], keys["KeyA"], keys["KeyS"], keys["KeyD"]) == ("forward", "left", "back", "right")
    assert (keys["Space"], keys["ShiftLeft"], keys["ControlLeft"], keys["KeyE"]) == ("jump", "sneak", "sprint",
                                                                                     "inventory")
    assert [keys[f"Digit{i}"] for i in range(1, 10)] == [f"hotbar.{i}" for i in range(1, 10)]
    assert controls.page()["mouse"] == {"0": "attack", "2": "use", "1": "pickItem"}
    names = manifest["actions"]["buttons"]["names"]
    inputs, has = controls.encode(Action(buttons=frozenset({"forward", "attack"}), camera=(2.0, -5.0)))
    assert inputs["buttons"].shape == (1, 1, len(names)) and has.tolist() == [[True]]
    assert sorted(np.flatnonzero(inputs["buttons"][0, 0].numpy())) == sorted([names.index("forward"),
                                                                             names.index("attack")])
    assert inputs["camera"].item() == int(encode_camera(np.array([2.0, -5.0])))
    assert controls.encode(Action())[0]["camera"].item() == CAMERA_NULL_CLASS == manifest["actions"]["camera"][
        "null_class"]
    # far moves are clipped at ±10° per step, as the store's encoding does
    assert controls.encode(Action(camera=(90.0, -90.0)))[0]["camera"].item() == int(encode_camera(np.array([10, -10])))
    # the label says what the world model receives: the camera's class (a move inside the middle bin is no move)
    label = controls.describe_inputs(inputs, has)
    assert label.startswith(f"attack + forward, camera class {inputs['camera'].item()} (") and label.endswith("°)")
    assert controls.describe(Action(buttons=frozenset({"forward", "attack"}), camera=(2.0, -5.0))) == label
    assert controls.describe(Action(camera=(0.1, -0.1))) == "no button"


def test_an_unknown_action_space_gets_a_message_and_plays_on_without_actions():
    spec = {"joints": {"kind": "continuous", "size": 6, "stats": {"mean": [0] * 6, "std": [1] * 6}}}
    controls = controls_for(spec, action_fields(spec))
    assert controls.scheme == "none" and controls.keys == ()
    assert "no keyboard controls" in controls.page()["message"] and "joints (continuous, 6)" in controls.message
    inputs, has = controls.encode(Action())
    assert has.tolist() == [[False]] and inputs["joints"].shape == (1, 1, 6)
    # a discrete space with other names than MinAtar's or Crafter's is not guessed at either
    other = {"discrete": {"kind": "categorical", "size": 6, "names": ["a", "b", "c", "d", "e", "f"]}}
    assert controls_for(other, action_fields(other)).scheme == "none"


GOOD = [
    ('{"type": "action", "name": "left"}', "action"), ('{"type": "action", "name": null}', "action"),
    ('{"type": "action", "name": "left", "held": ["fire", "left"]}', "action"),
    ('{"type": "action", "name": null, "held": []}', "action"),
    ('{"type": "pause"}', "pause"), ('{"type": "resume"}', "resume"), ('{"type": "step"}', "step"),
    ('{"type": "reset"}', "reset"), ('{"type": "replay"}', "replay"),
    ('{"type": "start", "episode": "episodes/000003", "start": 5}', "start"),
    ('{"type": "record", "on": true}', "record"), ('{"type": "record", "on": false, "format": "mp4"}', "record"),
]
BAD = [
    ("not json", "not JSON"), ("[1, 2]", "JSON object"), ('{"type": "exec", "code": "1"}', "unknown message type"),
    ('{"name": "left"}', "unknown message type"), ('{"type": "action", "name": "jump"}', "unknown action"),
    ('{"type": "action", "name": 1}', "unknown action"),
    ('{"type": "action", "name": "left", "held": ["fire"]}', "one of the held"),
    ('{"type": "action", "name": null, "held": ["fire"]}', "one of the held"),
    ('{"type": "action", "name": "left", "held": "left"}', "held must be"),
    ('{"type": "action", "name": "left", "held": ["left", "jump"]}', "held must be"),
    ('{"type": "pause", "path": "/etc/passwd"}', "unexpected key"),
    ('{"type": "start", "episode": "episodes/000003", "start": -1}', "≥ 0"),
    ('{"type": "start", "episode": "episodes/000003", "start": true}', "integer"),
    ('{"type": "start", "episode": "episodes/000003", "start": 1.5}', "integer"),
    ('{"type": "start", "episode": 3}', "episode id"), ('{"type": "record", "on": "yes"}', "true or false"),
    ('{"type": "record", "on": false, "format": "avi"}', "format"),
    ('{"type": "action", "buttons": ["forward"]}', "no buttons"),
    ('{"type": "action", "name": "' + "x" * MAX_MESSAGE_CHARS + '"}', "longer than"),
]


def test_the_page_messages_are_checked_by_type_keys_and_range(manifests):
    minatar = controls_of(manifests["minatar"])
    for text, kind in GOOD:
        assert parse(text, minatar).type == kind
    assert parse('{"type": "action", "name": "left"}', minatar).action == Action(name="left")
    assert parse('{"type": "action", "name": "left", "held": ["fire", "left"]}', minatar).action == Action(
        name="left", held=frozenset({"fire", "left"}))
    start = parse('{"type": "start", "episode": "episodes/000003", "start": 5}', minatar)
    assert (start.episode, start.start) == ("episodes/000003", 5)
    for text, problem in BAD:
        with pytest.raises(MessageError, match=problem):
            parse(text, minatar)
    with pytest.raises(MessageError, match="JSON text"):
        parse(b'{"type": "pause"}', minatar)


def test_minecraft_messages_carry_known_buttons_and_bounded_camera_moves(manifests):
    minecraft = controls_of(manifests["vpt"])
    command = parse(json.dumps({"type": "action", "buttons": ["forward", "attack"], "camera": [1.5, -3]}), minecraft)
    assert command.action == Action(buttons=frozenset({"forward", "attack"}), camera=(1.5, -3.0))
    for camera in ([0, CAMERA_LIMIT_DEG + 1], [0], [0, "1"], [True, 0]):
        with pytest.raises(MessageError, match="camera"):
            parse(json.dumps({"type": "action", "buttons": [], "camera": camera}), minecraft)
    with pytest.raises(MessageError, match="camera"):  # json.loads accepts NaN; the check does not
        parse('{"type": "action", "buttons": [], "camera": [NaN, 0]}', minecraft)
    with pytest.raises(MessageError, match="unknown button"):
        parse(json.dumps({"type": "action", "buttons": ["fly"]}), minecraft)
    for text in ('{"type": "action", "name": "left"}', '{"type": "action", "held": []}'):
        with pytest.raises(MessageError, match="not a name"):
            parse(text, minecraft)
    assert set(BUTTONS) == minecraft.actions


def test_keys_pressed_between_ticks_do_not_queue_the_latest_wins():
    slot = LatestAction()
    for name in ["left", "right"] * 50 + ["left"]:  # a hundred presses before one tick
        slot.set(Action(name=name))
    assert slot.take() == Action(name="left")
    assert slot.take() == Action(name="left")  # still held
    slot.set(Action())  # released
    assert slot.take() == Action()
    slot.set(Action(name="fire"))  # tapped and released between two ticks: counted once
    slot.set(Action())
    assert slot.take() == Action(name="fire") and slot.take() == Action()
    slot.set(Action(buttons=frozenset({"attack"}), camera=(3.0, 4.0)))
    slot.set(Action(buttons=frozenset({"forward"}), camera=(2.0, 1.0)))
    assert slot.take() == Action(buttons=frozenset({"attack", "forward"}), camera=(5.0, 5.0))
    assert slot.take() == Action(buttons=frozenset({"forward"}), camera=(0.0, 0.0))
    # a chord held through a tick, released key by key, presses nothing: discrete (the page says which keys are
    # down, so a key that comes back as the latest is no new press) and Minecraft buttons
    slot.set(Action(name="left", held=frozenset({"left"})))
    slot.set(Action(name="fire", held=frozenset({"left", "fire"})))
    assert slot.take() == Action(name="fire")
    slot.set(Action(name="left", held=frozenset({"left"})))
    slot.set(Action(held=frozenset()))
    assert slot.take() == Action()
    slot.set(Action(name="fire", held=frozenset({"fire"})))  # tapped again after a release: a press
    slot.set(Action(held=frozenset()))
    assert slot.take() == Action(name="fire")
    slot.set(Action(buttons=frozenset({"forward", "left"})))
    slot.take()
    slot.set(Action(buttons=frozenset({"left"})))
    slot.set(Action())
    assert slot.take() == Action()
    for _ in range(1000):
        slot.set(Action(camera=(90.0, -90.0)))
    assert slot.take().camera == (CAMERA_LIMIT_DEG, -CAMERA_LIMIT_DEG) and math.isfinite(CAMERA_LIMIT_DEG)
