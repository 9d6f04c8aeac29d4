"""Latest action wins: what the player did between two ticks, kept in one slot instead of a queue.

Keys pressed faster than the world model generates must not pile up (a backlog would replay old keys
seconds late). The slot keeps the action held now and what was newly pressed since the previous tick,
so a key tapped and released between two ticks still counts once, and a key held through a tick does not
count again when it is released; camera moves add up until the tick takes them (bounded: the store clips each
step at ±10° anyway).
"""

from __future__ import annotations

from .controls import CAMERA_LIMIT_DEG, Action


def _clamp(value: float) -> float:
    return max(-CAMERA_LIMIT_DEG, min(CAMERA_LIMIT_DEG, value))


class LatestAction:
    def __init__(self) -> None:
        self.held = Action()
        self.tapped: Action | None = None
        self.camera = (0.0, 0.0)

    def set(self, action: Action) -> None:
        """The player's state now (replaces the previous one; nothing is queued)."""
        pressed = action.buttons - self.held.buttons  # a chord released key by key presses nothing
        down = self.held.held if self.held.held is not None else {self.held.name}  # discrete keys down before
        name = action.name if action.name not in down else None  # a key down before comes back as the latest
        if name is not None or pressed:
            before = self.tapped if self.tapped is not None else Action()
            self.tapped = Action(name=name or before.name, buttons=before.buttons | pressed)
        self.held = Action(name=action.name, held=action.held, buttons=action.buttons)
        self.camera = (_clamp(self.camera[0] + action.camera[0]), _clamp(self.camera[1] + action.camera[1]))

    def take(self) -> Action:
        """The action for this tick: the held one, else the last one pressed since the previous tick; then
        forget what was pressed and moved."""
        name = self.held.name or (self.tapped.name if self.tapped is not None else None)
        buttons = self.held.buttons | (self.tapped.buttons if self.tapped is not None else frozenset())
        action = Action(name=name, buttons=buttons, camera=self.camera)  # what the tick plays, without ``held``
        self.tapped, self.camera = None, (0.0, 0.0)
        return action
