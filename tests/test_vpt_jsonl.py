"""VPT jsonl → action arrays: key mapping, VPT's two recording fixes, null actions, lossless camera."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from dreamer_data.actions.minecraft import BUTTON_INDEX, BUTTONS
from dreamer_data.actions.vpt_jsonl import parse_vpt_jsonl, read_vpt_jsonl
from dreamer_data.errors import EpisodeError
from makers import vpt_line

ATTACK, USE, PICK = BUTTON_INDEX["attack"], BUTTON_INDEX["use"], BUTTON_INDEX["pickItem"]


def parse(lines: list[dict]):
    return parse_vpt_jsonl([json.dumps(line) for line in lines], "ep.jsonl")


def pressed(actions, row: int) -> set[str]:
    return {BUTTONS[i] for i in np.flatnonzero(actions.buttons[row])}


def test_each_key_and_mouse_button_sets_its_button():
    keys = {"key.keyboard.escape": "ESC", "key.keyboard.s": "back", "key.keyboard.q": "drop",
            "key.keyboard.w": "forward", "key.keyboard.e": "inventory", "key.keyboard.space": "jump",
            "key.keyboard.a": "left", "key.keyboard.d": "right", "key.keyboard.left.shift": "sneak",
            "key.keyboard.left.control": "sprint", "key.keyboard.f": "swapHands",
            **{f"key.keyboard.{i}": f"hotbar.{i}" for i in range(1, 10)}}
    lines = [vpt_line(t, keys=[key]) for t, key in enumerate(keys)]
    lines += [vpt_line(len(lines) + b, buttons=[b], new_buttons=[] if b else [0]) for b in (1, 2)]
    lines += [vpt_line(len(lines), keys=["key.keyboard.w", "key.keyboard.t", "key.mouse.left"])]  # unmapped keys
    actions = parse(lines)
    assert actions.buttons.shape == (len(lines), 23) and actions.buttons.dtype == np.uint8
    for row, button in enumerate(keys.values()):
        assert pressed(actions, row) == {button}
    assert pressed(actions, len(keys)) == {"use"}
    assert pressed(actions, len(keys) + 1) == {"pickItem"}
    assert pressed(actions, len(keys) + 2) == {"forward"}


def test_attack_stuck_from_first_line_is_dropped_until_a_fresh_press():
    lines = [
        vpt_line(0, buttons=[0], new_buttons=[0]),  # recording starts with attack "newly" down: stuck
        vpt_line(1, buttons=[0, 1], new_buttons=[1]),  # still stuck; use is real
        vpt_line(2, buttons=[], new_buttons=[]),
        vpt_line(3, buttons=[0], new_buttons=[]),  # held but not a fresh press: still ignored
        vpt_line(4, buttons=[0], new_buttons=[0]),  # fresh press: attack counts from here on
        vpt_line(5, buttons=[0], new_buttons=[]),
        vpt_line(6, buttons=[], new_buttons=[]),
        vpt_line(7, buttons=[0], new_buttons=[0]),
    ]
    actions = parse(lines)
    assert actions.buttons[:, ATTACK].tolist() == [0, 0, 0, 0, 1, 1, 0, 1]
    assert actions.buttons[:, USE].tolist() == [0, 1, 0, 0, 0, 0, 0, 0]


def test_attack_not_stuck_when_first_line_is_not_exactly_a_new_attack_press():
    held = parse([vpt_line(0, buttons=[0], new_buttons=[]), vpt_line(1, buttons=[0], new_buttons=[])])
    assert held.buttons[:, ATTACK].tolist() == [1, 1]
    both = parse([vpt_line(0, buttons=[0, 1], new_buttons=[0, 1]), vpt_line(1, buttons=[0])])
    assert both.buttons[:, ATTACK].tolist() == [1, 1]  # VPT checks newButtons == [0] exactly
    later = parse([vpt_line(0), vpt_line(1, buttons=[0], new_buttons=[0]), vpt_line(2, buttons=[0])])
    assert later.buttons[:, ATTACK].tolist() == [0, 1, 1]


def test_hotbar_change_only_in_hotbar_field_sets_the_new_slot_on_that_line():
    hotbars = [0, 0, 3, 3, 3, 0, 8, 8]
    actions = parse([vpt_line(t, hotbar=h) for t, h in enumerate(hotbars)])
    hotbar_cols = [BUTTON_INDEX[f"hotbar.{i}"] for i in range(1, 10)]
    expected = np.zeros((len(hotbars), 9), np.uint8)
    expected[2, 3] = expected[5, 0] = expected[6, 8] = 1  # hotbar.4, hotbar.1, hotbar.9 where it changes
    np.testing.assert_array_equal(actions.buttons[:, hotbar_cols], expected)
    assert actions.is_null_action.tolist() == [1, 1, 0, 1, 1, 0, 0, 1]


def test_hotbar_on_first_line_counts_as_a_change_from_slot_one():
    actions = parse([vpt_line(0, hotbar=2), vpt_line(1, hotbar=2, keys=["key.keyboard.3"])])
    assert pressed(actions, 0) == {"hotbar.3"}  # VPT's loader starts from last_hotbar = 0
    assert pressed(actions, 1) == {"hotbar.3"}  # the key itself still maps


def test_null_actions_are_flagged_never_dropped():
    lines = [vpt_line(0), vpt_line(1, dx=3.0), vpt_line(2), vpt_line(3, keys=["key.keyboard.w"]), vpt_line(4),
             vpt_line(5, keys=["key.keyboard.t"])]  # an unmapped key alone is still a null action
    actions = parse(lines)
    assert len(actions) == 6
    assert actions.is_null_action.tolist() == [1, 0, 1, 0, 1, 1]


def test_camera_degrees_are_lossless_pitch_from_dy_yaw_from_dx():
    lines = [vpt_line(0, dx=7.0, dy=-3.3), vpt_line(1, dx=0.5, dy=1.0), vpt_line(2, dx=-1234.0, dy=0.0),
             vpt_line(3, dx=1.0, dy=2.0)]
    actions = parse(lines)
    expected = np.array([[-3.3 * 0.15, 7 * 0.15], [0.15, 0.075], [0, -185.1], [0.3, 0.15]], np.float32)
    assert actions.camera_deg.dtype == np.float32
    np.testing.assert_array_equal(actions.camera_deg, expected)  # 1.05, -0.495, 0.075 stay non-integer
    assert actions.camera.tolist() == [
        4 * 11 + 6,  # pitch -0.495: v = -10*ln(1.495)/ln(11) = -1.676 -> 4.16 -> 4; yaw 1.05: v = 2.9935 -> 6.497 -> 6
        5 * 11 + 5,  # 0.15 deg and 0.075 deg: v = 0.57 and 0.30 -> 5.29, 5.15 -> 5
        5 * 11 + 0,  # -185.1 deg yaw clips to -10 -> bin 0
        6 * 11 + 5,  # 0.3 deg: 10*ln(1.3)/ln(11) = 1.094 -> 5.547 -> 6; 0.15 deg -> 5
    ]


def test_gui_flag_and_cursor_position_are_kept():
    actions = parse([vpt_line(0, gui=True, x=12.5, y=300.0), vpt_line(1)])
    assert actions.is_gui_open.tolist() == [1, 0]
    np.testing.assert_array_equal(actions.cursor_xy, [[12.5, 300.0], [320.0, 180.0]])


def test_trailing_blank_line_is_ignored():
    text = json.dumps(vpt_line(0)) + "\n" + json.dumps(vpt_line(1)) + "\n\n"
    assert len(read_vpt_jsonl(io.BytesIO(text.encode()), "ep.jsonl")) == 2


@pytest.mark.parametrize("bad_line, reason", [
    ('{"mouse": {"dx": 0, ', "malformed JSON"),
    (json.dumps({"keyboard": {"keys": []}}), "mouse"),
    (json.dumps({**vpt_line(0), "hotbar": 11}), "hotbar"),
    (json.dumps({**vpt_line(0), "keyboard": {"newKeys": []}}), "keyboard.keys"),
])
def test_bad_line_names_file_and_line_number(bad_line, reason):
    text = "\n".join([json.dumps(vpt_line(0)), json.dumps(vpt_line(1)), bad_line, json.dumps(vpt_line(3))])
    with pytest.raises(EpisodeError) as caught:
        read_vpt_jsonl(io.BytesIO(text.encode()), "data/ep.jsonl")
    assert caught.value.file == "data/ep.jsonl"
    assert "line 3" in caught.value.reason and reason in caught.value.reason
    assert "\n" not in str(caught.value)


def test_empty_or_binary_jsonl_fails_clearly():
    with pytest.raises(EpisodeError, match="no action lines"):
        read_vpt_jsonl(io.BytesIO(b"\n\n"), "ep.jsonl")
    with pytest.raises(EpisodeError, match="ep.jsonl"):
        read_vpt_jsonl(io.BytesIO(b"\xff\xfe\x00garbage"), "ep.jsonl")
