"""Scripted MinAtar players that read only the (10, 10, C) observation grid.

breakout: move the paddle to where the ball will reach the bottom row, simulating its flight
(direction from the trail channel) off walls, ceiling and the visible bricks.
freeway: cross upward, waiting (or stepping back) when a car is next to the chicken's column.
space_invaders: dodge bullets falling onto the cannon, fire when an alien is above, else move under
the nearest alien column. asterix: take the move that keeps clear of enemies and gets closer to
gold. seaquest: surface when oxygen runs low, else line up with the nearest enemy and fire at it.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .minatar_env import ACTION_NAMES, check_game

A = {name: index for index, name in enumerate(ACTION_NAMES)}
Script = Callable[[np.ndarray, dict[str, int]], int]


def _where(grid: np.ndarray, channels: dict[str, int], *names: str) -> np.ndarray:
    """(k, 2) (row, col) cells where any of the named channels is set."""
    mask = np.zeros(grid.shape[:2], bool)
    for name in names:
        mask |= grid[:, :, channels[name]].astype(bool)
    return np.argwhere(mask)


def _toward(current: int, target: int) -> int:
    if target < current:
        return A["left"]
    if target > current:
        return A["right"]
    return A["noop"]


def breakout(grid: np.ndarray, channels: dict[str, int]) -> int:
    paddle, ball, trail = (_where(grid, channels, name) for name in ("paddle", "ball", "trail"))
    if len(paddle) == 0 or len(ball) == 0 or len(trail) == 0:
        return A["noop"]
    (row, col), (last_row, last_col) = (int(v) for v in ball[0]), (int(v) for v in trail[0])
    if col != last_col:
        step_col = col - last_col
    else:  # clamped at a wall (or the start): it moves away from the wall next
        step_col = 1 if col < 5 else -1
    if row != last_row:
        step_row = row - last_row
    else:  # it just bounced: off the paddle (row 8, now rising) or off a brick / the ceiling (now falling)
        step_row = -1 if row == 8 else 1
    bricks = grid[:, :, channels["brick"]].astype(bool)
    return _toward(int(paddle[0][1]), _landing_column(bricks, row, col, step_row, step_col))


def _landing_column(bricks: np.ndarray, row: int, col: int, step_row: int, step_col: int) -> int:
    """Column where the ball reaches the bottom row, following MinAtar's rules for walls and bricks."""
    bricks = bricks.copy()
    for _ in range(200):
        new_row, new_col = row + step_row, col + step_col
        if not 0 <= new_col <= 9:
            new_col, step_col = min(9, max(0, new_col)), -step_col
        if new_row < 0:
            new_row, step_row = 0, -step_row
        elif bricks[new_row, new_col]:
            bricks[new_row, new_col] = False
            new_row, step_row = row, -step_row
        elif new_row == 9:
            return new_col
        row, col = new_row, new_col
    return col


def freeway(grid: np.ndarray, channels: dict[str, int]) -> int:
    chicken = _where(grid, channels, "chicken")
    if len(chicken) == 0:
        return A["up"]
    row = int(chicken[0][0])
    cars = grid[:, :, channels["car"]].astype(bool)

    def danger(r: int) -> bool:
        return 0 <= r < 10 and bool(cars[r, 3:6].any())

    if not danger(row - 1):
        return A["up"]
    if danger(row) and not danger(row + 1):
        return A["down"]
    return A["noop"]


def space_invaders(grid: np.ndarray, channels: dict[str, int]) -> int:
    cannon = _where(grid, channels, "cannon")
    if len(cannon) == 0:
        return A["noop"]
    col = int(cannon[0][1])
    bullets = grid[6:9, :, channels["enemy_bullet"]].astype(bool)
    if bullets[:, col].any():
        safe = [c for c in (col - 1, col + 1) if 0 <= c < 10 and not bullets[:, c].any()]
        return _toward(col, safe[0]) if safe else A["noop"]
    aliens = _where(grid, channels, "alien")
    if len(aliens) == 0:
        return A["noop"]
    if (aliens[:, 1] == col).any():
        return A["fire"]
    nearest = int(aliens[np.argmin(np.abs(aliens[:, 1] - col)), 1])
    return _toward(col, nearest)


def asterix(grid: np.ndarray, channels: dict[str, int]) -> int:
    player = _where(grid, channels, "player")
    if len(player) == 0:
        return A["noop"]
    row, col = (int(v) for v in player[0])
    enemies = _where(grid, channels, "enemy")
    gold = _where(grid, channels, "gold")
    moves = {A["noop"]: (0, 0), A["left"]: (0, -1), A["right"]: (0, 1), A["up"]: (-1, 0), A["down"]: (1, 0)}
    best, best_score = A["noop"], -np.inf
    for action, (dr, dc) in moves.items():
        r, c = min(8, max(1, row + dr)), min(9, max(0, col + dc))
        score = 0.0
        if len(enemies) and ((enemies[:, 0] == r) & (np.abs(enemies[:, 1] - c) <= 1)).any():
            score -= 100.0
        if len(gold):
            score -= float(np.min(np.abs(gold[:, 0] - r) + np.abs(gold[:, 1] - c)))
        if score > best_score:
            best, best_score = action, score
    return best


def seaquest(grid: np.ndarray, channels: dict[str, int]) -> int:
    front, back = _where(grid, channels, "sub_front"), _where(grid, channels, "sub_back")
    if len(front) == 0:
        return A["noop"]
    row, col = (int(v) for v in front[0])
    oxygen = int(grid[9, :, channels["oxygen_guage"]].sum())
    if oxygen < 3 and row > 0:
        return A["up"]
    enemies = _where(grid, channels, "enemy_fish", "enemy_sub")
    enemies = enemies[enemies[:, 0] < 9] if len(enemies) else enemies
    if len(enemies) == 0:
        return A["down"] if row < 4 else A["noop"]
    target_row, target_col = (int(v) for v in enemies[np.argmin(np.abs(enemies[:, 0] - row) * 10
                                                                + np.abs(enemies[:, 1] - col))])
    if target_row != row:
        return A["up"] if target_row < row else A["down"]
    facing_right = len(back) == 0 or int(back[0][1]) == (col - 1) % 10
    if (target_col > col) == facing_right:
        return A["fire"]
    return A["right"] if target_col > col else A["left"]


SCRIPTS: dict[str, Script] = {"asterix": asterix, "breakout": breakout, "freeway": freeway, "seaquest": seaquest,
                              "space_invaders": space_invaders}


def scripted_for(game: str) -> Script:
    return SCRIPTS[check_game(game)]
