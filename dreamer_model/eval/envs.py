"""The real environments an evaluation plays, with seeds shared by every policy.

Episode i of an evaluation with seed S plays the environment seeded by ``eval_seeds(S, i)`` (and
draws the behaviour policy's / the agent's randomness from the second number), so two policies
evaluated with the same seed face exactly the same environments (MinAtar's sticky actions and
spawns, Crafter's world). The seeds come from ``SeedSequence([EVAL_SALT, S, i])``, a different
stream from ``dreamer-data collect``'s ``SeedSequence(S, spawn_key=(i,))``, so evaluation episodes
are never the recorded training episodes.

``frame(observation)`` turns an observation into what the tokenizer reads: Crafter's RGB frame
(resized to the store's resolution when it differs), or MinAtar's grid drawn with MinAtar's colour
map at the store's resolution, in the store's palette and draw order (``dreamer_data.collect.minatar_render``,
as ingest does).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from dreamer_data.collect.crafter_env import ACHIEVEMENTS, CrafterEnv
from dreamer_data.collect.minatar_env import DEFAULT_STICKY_PROB, MinAtarEnv, check_game, game_channels
from dreamer_data.collect.minatar_render import (DEFAULT_DRAW_ORDER, DEFAULT_PALETTE, DRAW_ORDERS, PALETTES,
                                                 render_grids, top_channels)

from ..errors import ModelError

ENVS = ("crafter", "minatar")
EVAL_SALT = 0x4556414C  # "EVAL"


def eval_seeds(seed: int, index: int) -> tuple[int, int]:
    """(environment seed, policy seed) of evaluation episode ``index``: 32-bit (MinAtar's RandomState)."""
    env_seed, policy_seed = np.random.SeedSequence([EVAL_SALT, seed, index]).generate_state(2)
    return int(env_seed), int(policy_seed)


@dataclass
class EnvSettings:
    """What fixes the environment: kind, game (MinAtar), sticky actions, ramping, time limit, frame size."""

    env: str
    game: str | None = None
    sticky_prob: float = DEFAULT_STICKY_PROB
    ramping: bool = True
    max_steps: int = 1000
    size: tuple[int, int] = (64, 64)
    palette: str = DEFAULT_PALETTE  # MinAtar: the colours the store's frames were drawn in
    draw_order: str = DEFAULT_DRAW_ORDER  # MinAtar: what a cell showed where channels overlap
    extra: dict = field(default_factory=dict)

    def checked(self) -> "EnvSettings":
        if self.env not in ENVS:
            raise ModelError(f"unknown environment {self.env!r}; choose from {', '.join(ENVS)}")
        if self.env == "minatar":
            try:
                check_game(self.game)
            except Exception as error:
                raise ModelError(str(error)) from None
            if self.palette not in PALETTES:
                raise ModelError(f"unknown MinAtar palette {self.palette!r}; choose from {', '.join(PALETTES)}")
            if self.draw_order not in DRAW_ORDERS:
                raise ModelError(f"unknown MinAtar draw order {self.draw_order!r}; choose from {', '.join(DRAW_ORDERS)}")
        if self.max_steps < 1:
            raise ModelError(f"--max-steps must be >= 1, got {self.max_steps}")
        return self

    def to_dict(self) -> dict:
        return {"env": self.env, "game": self.game, "sticky_prob": self.sticky_prob, "ramping": self.ramping,
                "max_steps": self.max_steps, "size": list(self.size),
                **({"palette": self.palette, "draw_order": self.draw_order} if self.env == "minatar" else {})}


def make_env(settings: EnvSettings, env_seed: int):
    if settings.env == "crafter":
        return CrafterEnv(env_seed, length=settings.max_steps)
    return MinAtarEnv(settings.game, env_seed, sticky_prob=settings.sticky_prob, ramping=settings.ramping,
                      max_steps=settings.max_steps)


def frame(settings: EnvSettings, observation: dict[str, np.ndarray]) -> np.ndarray:
    """One observation → (H, W, 3) uint8 at the store's resolution."""
    if settings.env == "minatar":
        on_top = _top_channels(settings.game, settings.draw_order)
        return render_grids(observation["obs"][None], tuple(settings.size), settings.palette, on_top)[0]
    image = observation["frames"]
    if tuple(image.shape[:2]) != tuple(settings.size):
        from dreamer_data.imageops import resize_frames

        image = resize_frames(image[None], tuple(settings.size))[0]
    return image


@lru_cache(maxsize=None)
def _top_channels(game: str, draw_order: str) -> tuple[int, ...]:
    return top_channels(game, game_channels(game), draw_order)


def achievement_names(settings: EnvSettings) -> tuple[str, ...]:
    return ACHIEVEMENTS if settings.env == "crafter" else ()
