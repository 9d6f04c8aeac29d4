"""MinAtar as an episode environment, through MinAtar's own ``Environment`` wrapper.

The wrapper draws sticky actions and the game's randomness from one ``RandomState`` seeded by
``Environment.seed``, so (game, seed, sticky-action prob, difficulty ramping) plus the agent's
actions replay an episode exactly. MinAtar has no time limit; ``max_steps`` cuts long episodes as a
time-limit truncation (``truncated``), never a terminal.
"""

from __future__ import annotations

import logging
import sys
from functools import lru_cache
from importlib.metadata import version

import numpy as np

from ..errors import DreamerDataError

GAMES: tuple[str, ...] = ("asterix", "breakout", "freeway", "seaquest", "space_invaders")
ACTION_NAMES: tuple[str, ...] = ("noop", "left", "up", "right", "down", "fire")  # MinAtar's 'n','l','u','r','d','f'
DEFAULT_STICKY_PROB = 0.1  # MinAtar's default
DEFAULT_MAX_STEPS = 10000
GUI_MODULES = ("matplotlib", "seaborn")
MINATAR_VERSION = version("minatar")


def minatar_environment() -> type:
    """MinAtar's ``Environment`` class, imported without its GUI dependencies.

    ``minatar`` imports matplotlib and seaborn at import time, only for ``display_state``; that
    costs seconds per process where they are installed, and logs a warning where they are not.
    We block both for the duration of the import (MinAtar catches the ImportError) and silence it.
    """
    if "minatar" not in sys.modules:
        blocked = [name for name in GUI_MODULES if name not in sys.modules]
        sys.modules.update(dict.fromkeys(blocked))
        logging.disable(logging.WARNING)
        try:
            import minatar  # noqa: F401
        finally:
            logging.disable(logging.NOTSET)
            for name in blocked:
                if sys.modules.get(name, ...) is None:
                    del sys.modules[name]
    from minatar import Environment

    return Environment


def check_game(game: str | None) -> str:
    if game is None:
        raise DreamerDataError(f"minatar needs --game, one of {', '.join(GAMES)}")
    if game not in GAMES:
        raise DreamerDataError(f"unknown MinAtar game {game!r}; choose from {', '.join(GAMES)}")
    return game


@lru_cache(maxsize=None)
def game_channels(game: str) -> tuple[str, ...]:
    """The names of ``game``'s grid channels, in channel order."""
    channels = minatar_environment()(check_game(game)).env.channels
    return tuple(sorted(channels, key=channels.get))


class MinAtarEnv:
    """One MinAtar episode. ``step`` returns (observation arrays, reward, terminal, truncated, step extras)."""

    kind = "minatar"
    n_actions = len(ACTION_NAMES)

    def __init__(self, game: str, seed: int, sticky_prob: float = DEFAULT_STICKY_PROB, ramping: bool = True,
                 max_steps: int = DEFAULT_MAX_STEPS):
        self.game = check_game(game)
        self.seed = int(seed)
        self.sticky_prob = float(sticky_prob)
        self.ramping = bool(ramping)
        self.max_steps = int(max_steps)
        self.env = minatar_environment()(game, sticky_action_prob=self.sticky_prob, difficulty_ramping=self.ramping)
        self.channels: dict[str, int] = dict(self.env.env.channels)
        self.steps = 0

    @property
    def n_channels(self) -> int:
        return len(self.channels)

    def reset(self) -> dict[str, np.ndarray]:
        self.env.seed(self.seed)
        self.env.reset()
        self.steps = 0
        return self._observation()

    def step(self, action: int) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, np.ndarray]]:
        reward, terminal = self.env.act(int(action))
        self.steps += 1
        truncated = not terminal and self.steps >= self.max_steps
        # last_action: the agent's action, or the previous one when it stuck
        return self._observation(), reward, terminal, truncated, {"executed_actions": self.env.last_action}

    def _observation(self) -> dict[str, np.ndarray]:
        return {"obs": self.env.state().view(np.uint8)}  # a fresh bool array each step: 0/1 bytes as they are

    @staticmethod
    def step_extras_null() -> dict[str, np.ndarray]:
        return {"executed_actions": 0}

    def view(self) -> np.ndarray:
        """The (10, 10, C) boolean grid: all a scripted policy looks at."""
        return self.env.state()

    def settings(self) -> dict:
        return {"env": self.kind, "game": self.game, "env_seed": self.seed, "sticky_action_prob": self.sticky_prob,
                "difficulty_ramping": self.ramping, "max_steps": self.max_steps,
                "minatar_version": MINATAR_VERSION}
