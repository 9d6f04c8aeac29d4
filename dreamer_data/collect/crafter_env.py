"""Crafter as an episode environment: one seeded world, steps reported in our row convention.

Crafter's ``Env(seed=S)`` generates its first world from ``hash((S, 1))`` (integers hash the same
in every process), so a fresh ``Env`` per episode plus the stored actions should replay the episode.
Two details make that hold:
- crafter 1.8.3 is not reproducible as released (danijar/crafter#31, #36): every 10 steps
  ``Env._balance_object`` picks a creature to despawn by a random index into a ``set`` of
  objects, whose order follows memory addresses. ``DeterministicCrafter`` hands it the same
  creatures ordered by spawn index instead; the pick stays uniform, so the game's statistics are
  unchanged, but a replay picks the same creature.
- rendering draws night-time noise from the world's random state, so the render size is part of
  the dynamics: we always render at the native 64x64 and never render anything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import version

import crafter
import numpy as np
from crafter import constants

ACTION_NAMES: tuple[str, ...] = tuple(constants.actions)
ACHIEVEMENTS: tuple[str, ...] = tuple(constants.achievements)
INVENTORY_ITEMS: tuple[str, ...] = tuple(constants.items)
NATIVE_SIZE = (64, 64)
DEFAULT_LENGTH = 10000  # Crafter's standard episode limit (a time-limit truncation, not a terminal)
CRAFTER_VERSION = version("crafter")
CRAFTER_FPS = 5  # nominal: Crafter is turn-based; its own GUI (crafter.run_gui) plays at 5 fps

# Ids of info['semantic'] / the semantic view: materials first (0 = out of world), then objects.
MATERIAL_IDS: dict[str, int] = {name: index + 1 for index, name in enumerate(constants.materials)}
OBJECT_IDS: dict[str, int] = {name: len(MATERIAL_IDS) + 1 + index for index, name in
                              enumerate(("player", "cow", "zombie", "skeleton", "arrow", "plant"))}
SEMANTIC_CLASSES: tuple[str, ...] = ("outside", *MATERIAL_IDS, *OBJECT_IDS)  # name of each id, in id order

# What the frame shows: a 9x7-tile local view (the bottom two tile rows of the 9x9 grid hold the
# inventory), 7 px per tile at the native 64x64 (64 // 9; one black pixel column at the right), the
# player at tile (row 3, column 4).
LOCAL_VIEW = (7, 9)  # (rows, columns) of tiles
TILE_PX = 64 // 9


class DeterministicCrafter(crafter.Env):
    """crafter.Env whose creature balancing does not depend on memory addresses (see above)."""

    def _balance_object(self, chunk, objs, *args):
        index = self._world._obj_map
        return super()._balance_object(chunk, sorted(objs, key=lambda obj: index[tuple(obj.pos)]), *args)


@dataclass(frozen=True)
class CrafterView:
    """What a scripted policy may look at: the world map, where the player is and faces, its inventory."""

    semantic: np.ndarray  # (64, 64) int ids, indexed [x, y]
    pos: tuple[int, int]
    facing: tuple[int, int]
    inventory: dict[str, int]
    sleeping: bool


class CrafterEnv:
    """One Crafter episode. ``step`` returns (observation arrays, reward, terminal, truncated, step extras)."""

    kind = "crafter"
    n_actions = len(ACTION_NAMES)

    def __init__(self, seed: int, length: int = DEFAULT_LENGTH):
        self.seed = int(seed)
        self.length = int(length)
        self.env = DeterministicCrafter(area=(64, 64), view=(9, 9), size=NATIVE_SIZE, reward=True, length=self.length,
                               seed=self.seed)
        self._counts = np.zeros(len(ACHIEVEMENTS), np.int64)
        self._inventory: dict[str, int] = {}

    def reset(self) -> dict[str, np.ndarray]:
        frame = self.env.reset()
        self._counts[:] = 0
        self._inventory = {name: info["initial"] for name, info in constants.items.items()}
        return self._observation(frame)

    def step(self, action: int) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, np.ndarray]]:
        frame, reward, done, info = self.env.step(int(action))
        counts = np.array([info["achievements"][name] for name in ACHIEVEMENTS], np.int64)
        unlocked = (counts - self._counts).astype(np.uint8)
        self._counts = counts
        self._inventory = info["inventory"]
        terminal = info["discount"] == 0.0
        truncated = bool(done) and not terminal
        return self._observation(frame), float(reward), terminal, truncated, {"achievements": unlocked}

    def _observation(self, frame: np.ndarray) -> dict[str, np.ndarray]:
        inventory = np.array([self._inventory[name] for name in INVENTORY_ITEMS], np.uint8)
        return {"frames": np.ascontiguousarray(frame), "inventory": inventory, "semantic": self.semantic_view()}

    def semantic_view(self) -> np.ndarray:
        """(7, 9) uint8: the id (``SEMANTIC_CLASSES``) of each tile the frame shows, [row, column] as drawn.

        Crafter's renderer puts world cell ``player.pos + (column, row) - (4, 3)`` at tile (row, column)
        and draws objects over materials, as its semantic map does; cells outside the world are 0."""
        world = self.env._sem_view()  # (64, 64) ids, indexed [x, y]
        rows, columns = LOCAL_VIEW
        x = self.env._player.pos[0] + np.arange(columns) - columns // 2  # (9,) world x of each column
        y = self.env._player.pos[1] + np.arange(rows) - rows // 2  # (7,) world y of each row
        inside = ((y[:, None] >= 0) & (y[:, None] < world.shape[1]) & (x[None, :] >= 0) & (x[None, :] < world.shape[0]))
        view = world[np.clip(x, 0, world.shape[0] - 1)[None, :], np.clip(y, 0, world.shape[1] - 1)[:, None]]
        return np.where(inside, view, 0).astype(np.uint8)  # (7, 9)

    @staticmethod
    def step_extras_null() -> dict[str, np.ndarray]:
        """Step extras of the final row, where no action follows the last frame."""
        return {"achievements": np.zeros(len(ACHIEVEMENTS), np.uint8)}

    def view(self) -> CrafterView:
        # Crafter exposes facing and sleep only on its player object; read them here and nowhere else.
        player = self.env._player
        return CrafterView(semantic=self.env._sem_view(), pos=(int(player.pos[0]), int(player.pos[1])),
                           facing=(int(player.facing[0]), int(player.facing[1])),
                           inventory=dict(player.inventory), sleeping=bool(player.sleeping))

    def settings(self) -> dict:
        """Everything needed to rebuild this environment exactly (recorded per episode)."""
        return {"env": self.kind, "env_seed": self.seed, "length": self.length, "area": [64, 64], "view": [9, 9],
                "size": list(NATIVE_SIZE), "crafter_version": CRAFTER_VERSION,
                "balance_order": "spawn index"}
