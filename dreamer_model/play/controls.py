"""Keyboard and mouse controls for a store's action space, read from its manifest's ``actions`` entry.

The page never sends model inputs: it sends what the player does (an action name, the held buttons, a
camera move in degrees) and ``Controls.encode`` turns that into the world model's action inputs the
way the store encoded its own rows. Three schemes, each recognised from the manifest alone:

* ``discrete`` MinAtar (``noop left up right down fire``): arrows and space = fire, as MinAtar's own
  display plays;
* ``discrete`` Crafter (its 17 actions): Crafter's own GUI keymap (``crafter/run_gui.py``): WASD moves,
  space = do, tab = sleep, R T F P place, 1-6 make tools;
* ``minecraft`` (23 buttons + 121 camera classes, docs/FORMAT.md): the VPT key names of
  ``dreamer_data.actions.minecraft`` on KeyboardEvent codes, left / right click = attack / use, and mouse
  movement → degrees (×360/2400 per mouse unit) → the same mu-law bins the store used.

Anything else has no controls: the page says so and the world model plays on with "no action"
(``has_action`` = 0, as for unlabeled video).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import torch

from dreamer_data.actions.minecraft import (BUTTONS, CAMERA_DEGREES_PER_MOUSE_UNIT, CAMERA_MAXVAL, CAMERA_NULL_CLASS,
                                            N_CAMERA_CLASSES, decode_camera, encode_camera)
from dreamer_data.collect.crafter_env import ACTION_NAMES as CRAFTER_ACTIONS
from dreamer_data.collect.minatar_env import ACTION_NAMES as MINATAR_ACTIONS

from ..dynamics.actions import ActionField

# KeyboardEvent.code → action name, with the label the legend shows.
MINATAR_KEYS = (("ArrowLeft", "←", "left"), ("ArrowRight", "→", "right"), ("ArrowUp", "↑", "up"),
                ("ArrowDown", "↓", "down"), ("Space", "space", "fire"))
CRAFTER_KEYS = (("KeyA", "A", "move_left"), ("KeyD", "D", "move_right"), ("KeyW", "W", "move_up"),
                ("KeyS", "S", "move_down"), ("Space", "space", "do"), ("Tab", "tab", "sleep"),
                ("KeyR", "R", "place_stone"), ("KeyT", "T", "place_table"), ("KeyF", "F", "place_furnace"),
                ("KeyP", "P", "place_plant"), ("Digit1", "1", "make_wood_pickaxe"),
                ("Digit2", "2", "make_stone_pickaxe"), ("Digit3", "3", "make_iron_pickaxe"),
                ("Digit4", "4", "make_wood_sword"), ("Digit5", "5", "make_stone_sword"),
                ("Digit6", "6", "make_iron_sword"))
# VPT's keyboard → button names (dreamer_data/actions/minecraft.py KEYBOARD_TO_BUTTON), as browser key codes.
MINECRAFT_KEYS = (("KeyW", "W", "forward"), ("KeyA", "A", "left"), ("KeyS", "S", "back"), ("KeyD", "D", "right"),
                  ("Space", "space", "jump"), ("ShiftLeft", "shift", "sneak"), ("ControlLeft", "ctrl", "sprint"),
                  *((f"Digit{i}", str(i), f"hotbar.{i}") for i in range(1, 10)),
                  ("KeyE", "E", "inventory"), ("KeyQ", "Q", "drop"), ("KeyF", "F", "swapHands"))
MINECRAFT_MOUSE = {0: "attack", 2: "use", 1: "pickItem"}  # MouseEvent.button: left, right, middle (VPT 0, 1, 2)
CAMERA_LIMIT_DEG = 180.0  # the most one message may turn the camera (the store clips each step at ±10°)


@dataclass(frozen=True)
class Action:
    """What the player does during one tick, as the page reports it (already validated)."""

    name: str | None = None  # discrete schemes: an action name (None: no key held → the null class)
    held: frozenset[str] | None = None  # discrete: every action whose key is down (None: the page did not say)
    buttons: frozenset[str] = frozenset()  # minecraft: held buttons
    camera: tuple[float, float] = (0.0, 0.0)  # minecraft: (pitch, yaw) degrees moved since the last message


@dataclass
class Controls:
    """One store's control scheme: the legend the page shows and the encoding of a player's action."""

    scheme: str  # "discrete", "minecraft" or "none"
    fields: list[ActionField]
    keys: tuple[tuple[str, str, str], ...] = ()  # (KeyboardEvent.code, label, action name)
    names: tuple[str, ...] = ()  # discrete: class index → name
    null_class: int = 0
    message: str = ""  # "none": why there are no controls
    mouse: dict[int, str] = field(default_factory=dict)

    def page(self) -> dict:
        """What the page needs to draw the legend and map keys and mouse (no model detail)."""
        out = {"scheme": self.scheme, "keys": [{"code": c, "label": label, "action": a} for c, label, a in self.keys],
               "message": self.message}
        if self.scheme == "minecraft":
            out["mouse"] = {str(button): name for button, name in self.mouse.items()}
            out["camera"] = {"degrees_per_unit": CAMERA_DEGREES_PER_MOUSE_UNIT, "limit": CAMERA_LIMIT_DEG,
                             "clip": CAMERA_MAXVAL}
        return out

    @property
    def actions(self) -> frozenset[str]:
        """Every action name a message may carry (discrete: the classes; minecraft: the buttons)."""
        return frozenset(self.names if self.scheme == "discrete" else BUTTONS if self.scheme == "minecraft" else ())

    def describe(self, action: Action) -> str:
        """The label of the player's action, as the world model receives it (Minecraft: the camera's class)."""
        return self.describe_inputs(*self.encode(action))

    def describe_inputs(self, inputs: Mapping[str, torch.Tensor], has: torch.Tensor) -> str:
        """The label of model inputs ({name: (1, 1, …)}, has_action (1, 1)): a recorded or a player's action."""
        if not bool(has.reshape(-1)[0]):
            return "no action"
        if self.scheme == "discrete":
            return self.names[int(inputs[self.fields[0].name].reshape(-1)[0])]
        if self.scheme == "minecraft":
            label = " + ".join(sorted(BUTTONS[i] for i in inputs["buttons"].reshape(-1).nonzero().flatten().tolist()))
            camera = int(inputs["camera"].reshape(-1)[0])
            if camera == CAMERA_NULL_CLASS:
                return label or "no button"
            pitch, yaw = decode_camera(camera).tolist()  # the bin's centre: what the class means to the model
            return f"{label or 'no button'}, camera class {camera} ({pitch:+.1f}°/{yaw:+.1f}°)"
        return "recorded action"

    def encode(self, action: Action) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """``action`` → (action inputs {name: (1, 1, …)}, has_action (1, 1)) for the frame it leads to."""
        inputs: dict[str, torch.Tensor] = {}
        for f in self.fields:
            shape = (1, 1) if f.kind == "categorical" else (1, 1, f.size)
            inputs[f.name] = torch.zeros(shape, dtype=torch.long if f.kind == "categorical" else torch.float32)
        if self.scheme == "discrete":
            index = self.names.index(action.name) if action.name else self.null_class
            inputs[self.fields[0].name][0, 0] = index
        elif self.scheme == "minecraft":
            for name in action.buttons:
                inputs["buttons"][0, 0, BUTTONS.index(name)] = 1.0
            inputs["camera"][0, 0] = int(encode_camera(np.array(action.camera)))
        return inputs, torch.tensor([[self.scheme != "none"]])


def controls_for(manifest_actions: Mapping | None, fields: list[ActionField]) -> Controls:
    """The control scheme of a manifest's ``actions`` entry for a world model reading ``fields``."""
    spec = dict(manifest_actions or {})
    if len(fields) == 1 and fields[0].kind == "categorical":
        names = tuple(spec.get(fields[0].name, {}).get("names") or ())
        null = int(spec.get(fields[0].name, {}).get("null_class") or 0)
        for known, keys in ((MINATAR_ACTIONS, MINATAR_KEYS), (CRAFTER_ACTIONS, CRAFTER_KEYS)):
            if names == tuple(known) and fields[0].size == len(known):
                return Controls("discrete", fields, keys, names, null)
    by_name = {f.name: f for f in fields}
    if (set(by_name) == {"buttons", "camera"} and by_name["camera"].size == N_CAMERA_CLASSES
            and tuple(spec.get("buttons", {}).get("names") or ()) == BUTTONS):
        return Controls("minecraft", fields, MINECRAFT_KEYS, mouse=MINECRAFT_MOUSE)
    described = ", ".join(f"{f.name} ({f.kind}, {f.size})" for f in fields) or "no actions"
    return Controls("none", fields, message=f"no keyboard controls for this store's action space ({described}): "
                                            f"the world model plays on with no action")
