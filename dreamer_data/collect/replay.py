"""Replay a recorded episode in the real environment from its stored actions, and compare.

An episode's ``info`` (raw file) or ``notes`` (store manifest) holds the environment settings
(``env``, ``env_seed``, …); rebuilding that environment and feeding it the recorded actions must
reproduce every observation, reward, terminal flag and achievement exactly.
"""

from __future__ import annotations

import numpy as np

from ..errors import DreamerDataError
from .crafter_env import CrafterEnv
from .episode import EpisodeEnv, run_episode
from .minatar_env import MinAtarEnv


def env_from_settings(settings: dict) -> EpisodeEnv:
    """The environment an episode was recorded in, from its recorded settings."""
    try:
        if settings["env"] == "crafter":
            return CrafterEnv(settings["env_seed"], length=settings["length"])
        if settings["env"] == "minatar":
            return MinAtarEnv(settings["game"], settings["env_seed"], sticky_prob=settings["sticky_action_prob"],
                              ramping=settings["difficulty_ramping"], max_steps=settings["max_steps"])
    except KeyError as error:
        raise DreamerDataError(f"episode settings lack {error} needed to replay it") from None
    raise DreamerDataError(f"cannot replay an episode from environment {settings.get('env')!r}")


class _Recorded:
    """A policy that plays back a fixed action sequence."""

    def __init__(self, actions: np.ndarray):
        self.actions = actions
        self.t = 0

    def act(self, env) -> int:
        if self.t >= len(self.actions):
            raise DreamerDataError(f"replay: the environment went on after the recorded {len(self.actions)} steps")
        self.t += 1
        return int(self.actions[self.t - 1])


def replay(settings: dict, actions: np.ndarray, has_action: np.ndarray) -> dict[str, np.ndarray]:
    """Rows (raw-file names) of the episode replayed from ``actions`` where ``has_action`` is set."""
    recorded = np.asarray(actions)[np.asarray(has_action).astype(bool)]
    rows, summary = run_episode(env_from_settings(settings), _Recorded(recorded))
    if summary["steps"] != len(recorded):
        raise DreamerDataError(f"replay: the environment ended after {summary['steps']} steps, "
                               f"the recording after {len(recorded)}")
    return rows


def mismatches(recorded: dict[str, np.ndarray], replayed: dict[str, np.ndarray]) -> list[str]:
    """One line per array of ``recorded`` that differs from the replay (first differing row)."""
    problems = []
    for name, values in recorded.items():
        if name not in replayed:
            problems.append(f"{name}: not produced by the replay")
        elif values.shape != replayed[name].shape:
            problems.append(f"{name}: shape {values.shape} recorded, {replayed[name].shape} replayed")
        elif not np.array_equal(values, replayed[name]):
            differ = np.flatnonzero(np.any((values != replayed[name]).reshape(len(values), -1), axis=1))
            problems.append(f"{name}: {len(differ)} rows differ, first at row {int(differ[0])}")
    return problems
