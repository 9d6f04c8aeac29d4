"""A scripted Crafter player: survive, chop trees, place a table, make tools, mine upward.

It sees only what the frame shows (the 9x7 cells around the player, from the semantic map) plus
its inventory, and walks by breadth-first search over walkable cells to the nearest cell next to
a target. Rules, first match wins: fight an adjacent zombie; sleep when tired and no zombie is in
sight; drink / eat when low and water / a cow is in sight (when urgent, walk back to where they
were last seen); make every tool the nearby table (and furnace) allows; place a table, then a
furnace, when there is none in sight; mine coal, iron, diamond, stone with the right pickaxe;
chop trees; plant saplings; otherwise explore in a persistent random direction.
"""

from __future__ import annotations

from collections import deque

import numpy as np
from crafter import constants

from .crafter_env import ACTION_NAMES, MATERIAL_IDS, OBJECT_IDS, CrafterView

ACTION = {name: index for index, name in enumerate(ACTION_NAMES)}
MOVES = {(-1, 0): ACTION["move_left"], (1, 0): ACTION["move_right"], (0, -1): ACTION["move_up"],
         (0, 1): ACTION["move_down"]}
REACH_X, REACH_Y = 4, 3  # the visible world: 9 cells wide, 7 high, centred on the player
WALKABLE = {MATERIAL_IDS[name] for name in constants.walkable}
TOOLS = ("wood_pickaxe", "wood_sword", "stone_pickaxe", "stone_sword", "iron_pickaxe", "iron_sword")
THIRSTY = HUNGRY = 6  # drink / food level at which the player goes for water / a cow in sight
URGENT = 3  # level at which it walks back to where it last saw them
NEED = {"water": "drink", "cow": "food"}
TIRED = 2  # energy level at which the player sleeps
KEEP = {"wood": 5, "stone": 5, "coal": 1, "iron": 1}  # stock worth gathering before moving on
TURN_PROB = 0.05  # chance per step that exploration picks a new direction


def _ids(*names: str) -> set[int]:
    return {MATERIAL_IDS.get(name, OBJECT_IDS.get(name)) for name in names}


class CrafterScripted:
    """The rules above; ``act`` returns one Crafter action index."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.heading = (0, 1)
        self.seen: dict[str, tuple[int, int]] = {}  # where water / a cow was last in sight

    def act(self, env) -> int:
        view: CrafterView = env.view()
        inv = view.inventory
        self._remember(view)
        if view.sleeping:
            return ACTION["noop"]
        for rule in (self._fight, self._sleep, self._drink, self._eat, self._craft, self._place_station,
                     self._mine, self._chop, self._plant):
            action = rule(view, inv)
            if action is not None:
                return action
        return self._explore(view)

    # --- rules ----------------------------------------------------------------------------------
    def _fight(self, view: CrafterView, inv: dict) -> int | None:
        return _approach(view, _ids("zombie"), search=False)

    def _sleep(self, view: CrafterView, inv: dict) -> int | None:
        if inv["energy"] > TIRED or OBJECT_IDS["zombie"] in _visible(view):
            return None
        return ACTION["sleep"]

    def _drink(self, view: CrafterView, inv: dict) -> int | None:
        return self._seek(view, "water") if inv["drink"] <= THIRSTY else None

    def _eat(self, view: CrafterView, inv: dict) -> int | None:
        return self._seek(view, "cow") if inv["food"] <= HUNGRY else None

    def _seek(self, view: CrafterView, name: str) -> int | None:
        """Approach ``name`` in sight; else, once in need, head back to where it was last seen."""
        action = _approach(view, _ids(name))
        if action is not None or name not in self.seen or view.inventory[NEED[name]] > URGENT:
            return action
        (x, y), (px, py) = self.seen[name], view.pos
        if abs(x - px) <= REACH_X and abs(y - py) <= REACH_Y:
            del self.seen[name]  # it is gone from there
            return None
        for direction in ((int(np.sign(x - px)), 0), (0, int(np.sign(y - py)))):
            if direction != (0, 0) and _cell(view, px + direction[0], py + direction[1]) in WALKABLE:
                return MOVES[direction]
        return None

    def _remember(self, view: CrafterView) -> None:
        x0, y0 = max(0, view.pos[0] - REACH_X), max(0, view.pos[1] - REACH_Y)
        window = view.semantic[x0: view.pos[0] + REACH_X + 1, y0: view.pos[1] + REACH_Y + 1]
        for name in NEED:
            cells = np.argwhere(np.isin(window, list(_ids(name)))) + (x0, y0)
            if len(cells):
                nearest = cells[np.argmin(np.abs(cells - view.pos).sum(axis=1))]
                self.seen[name] = (int(nearest[0]), int(nearest[1]))

    def _craft(self, view: CrafterView, inv: dict) -> int | None:
        nearby = _nearby(view)
        wanted = [tool for tool in TOOLS if inv[tool] == 0 and _affordable(constants.make[tool]["uses"], inv)]
        for tool in wanted:
            if all(MATERIAL_IDS[util] in nearby for util in constants.make[tool]["nearby"]):
                return ACTION[f"make_{tool}"]
        needs_table = [tool for tool in wanted if constants.make[tool]["nearby"] == ["table"]]
        if needs_table and MATERIAL_IDS["table"] not in nearby:
            return _approach(view, _ids("table"))
        return None

    def _place_station(self, view: CrafterView, inv: dict) -> int | None:
        visible = _visible(view)
        for station in ("table", "furnace"):
            cost = constants.place[station]["uses"]
            if MATERIAL_IDS[station] in visible or not _affordable(cost, inv):
                continue
            if station == "furnace" and MATERIAL_IDS["table"] not in _nearby(view):
                continue
            if station == "table" and inv["wood"] < cost["wood"] + 1:  # keep one wood for a pickaxe
                continue
            if _facing_free(view, constants.place[station]["where"]):
                return ACTION[f"place_{station}"]
        if inv["stone"] > KEEP["stone"] and _facing_free(view, constants.place["stone"]["where"]):
            return ACTION["place_stone"]
        return None

    def _mine(self, view: CrafterView, inv: dict) -> int | None:
        for material in ("diamond", "iron", "coal", "stone"):
            needs = constants.collect[material]["require"]
            if _affordable(needs, inv) and inv[material] < KEEP.get(material, 9):
                action = _approach(view, _ids(material))
                if action is not None:
                    return action
        return None

    def _chop(self, view: CrafterView, inv: dict) -> int | None:
        return _approach(view, _ids("tree")) if inv["wood"] < KEEP["wood"] else None

    def _plant(self, view: CrafterView, inv: dict) -> int | None:
        if inv["sapling"] > 0 and _facing_free(view, constants.place["plant"]["where"]):
            return ACTION["place_plant"]
        if inv["sapling"] == 0 and _facing_free(view, ["grass"]) and self.rng.random() < 0.2:
            return ACTION["do"]  # grass gives a sapling one time in ten
        return None

    def _explore(self, view: CrafterView) -> int:
        ahead = _cell(view, view.pos[0] + self.heading[0], view.pos[1] + self.heading[1])
        if ahead not in WALKABLE or self.rng.random() < TURN_PROB:
            options = [d for d in MOVES if _cell(view, view.pos[0] + d[0], view.pos[1] + d[1]) in WALKABLE]
            if options:
                self.heading = options[int(self.rng.integers(len(options)))]
        return MOVES[self.heading]


# --- perception and walking ---------------------------------------------------------------------
def _cell(view: CrafterView, x: int, y: int) -> int:
    """Semantic id at (x, y), or 0 outside the world."""
    semantic = view.semantic
    if 0 <= x < semantic.shape[0] and 0 <= y < semantic.shape[1]:
        return int(semantic[x, y])
    return 0


def _visible(view: CrafterView) -> set[int]:
    x, y = view.pos
    window = view.semantic[max(0, x - REACH_X): x + REACH_X + 1, max(0, y - REACH_Y): y + REACH_Y + 1]
    return set(np.unique(window).tolist())


def _nearby(view: CrafterView) -> set[int]:
    """What Crafter's crafting check sees: the 3x3 cells around the player."""
    x, y = view.pos
    return set(np.unique(view.semantic[max(0, x - 1): x + 2, max(0, y - 1): y + 2]).tolist())


def _affordable(cost: dict[str, int], inv: dict[str, int]) -> bool:
    return all(inv[item] >= amount for item, amount in cost.items())


def _facing_free(view: CrafterView, materials: list[str]) -> bool:
    target = _cell(view, view.pos[0] + view.facing[0], view.pos[1] + view.facing[1])
    return target in {MATERIAL_IDS[name] for name in materials}


def _approach(view: CrafterView, targets: set[int], search: bool = True) -> int | None:
    """``do`` when facing a target; turn to an adjacent one; else the first step toward the nearest.

    None when no target is adjacent (``search=False``) or reachable within the visible window.
    """
    px, py = view.pos
    if _cell(view, px + view.facing[0], py + view.facing[1]) in targets:
        return ACTION["do"]
    for direction, action in MOVES.items():
        if _cell(view, px + direction[0], py + direction[1]) in targets:
            return action  # the target blocks the way, so moving toward it only turns the player
    if not search:
        return None
    first_step: dict[tuple[int, int], tuple[int, int]] = {}
    queue = deque()
    for direction in MOVES:
        cell = (px + direction[0], py + direction[1])
        if _cell(view, *cell) in WALKABLE:
            first_step[cell] = direction
            queue.append(cell)
    while queue:
        x, y = queue.popleft()
        if any(_cell(view, x + dx, y + dy) in targets for dx, dy in MOVES):
            return MOVES[first_step[(x, y)]]
        for dx, dy in MOVES:
            cell = (x + dx, y + dy)
            if (cell not in first_step and abs(cell[0] - px) <= REACH_X and abs(cell[1] - py) <= REACH_Y
                    and _cell(view, *cell) in WALKABLE):
                first_step[cell] = first_step[(x, y)]
                queue.append(cell)
    return None
