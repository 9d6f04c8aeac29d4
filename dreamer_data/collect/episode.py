"""One episode of an environment under a policy, recorded in our row convention.

Row t holds observation t, the action taken after seeing it, and the reward / terminal flag that
action produced. The final observation gets a row of its own with a null action (``has_action =
0``, action 0, reward 0, step extras 0). ``is_terminal`` marks a true termination; an episode cut by
a time limit ends with no terminal row.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from .policies import Policy

Observation = dict[str, np.ndarray]


class EpisodeEnv(Protocol):
    kind: str
    n_actions: int

    def reset(self) -> Observation: ...

    def step(self, action: int) -> tuple[Observation, float, bool, bool, dict[str, np.ndarray]]: ...

    def step_extras_null(self) -> dict[str, np.ndarray]: ...

    def settings(self) -> dict: ...


def run_episode(env: EpisodeEnv, policy: Policy) -> tuple[dict[str, np.ndarray], dict]:
    """Play one episode; returns (row arrays, summary) with every array of length steps + 1."""
    observations = [env.reset()]
    actions: list[int] = []
    rewards: list[float] = []
    extras: list[dict[str, np.ndarray]] = []
    terminal = truncated = False
    while not (terminal or truncated):  # kept lean: MinAtar steps take ~10 µs
        action = policy.act(env)
        observation, reward, terminal, truncated, step_extras = env.step(action)
        observations.append(observation)
        actions.append(action)
        rewards.append(reward)
        extras.append(step_extras)
    extras.append(env.step_extras_null())
    steps = len(actions)
    rows = {name: np.stack([o[name] for o in observations]) for name in observations[0]}
    rows.update({name: np.array([e[name] for e in extras]) for name in extras[0]})
    rows.update({
        "actions": np.array(actions + [0], np.int64),
        "rewards": np.array(rewards + [0.0], np.float32),
        "is_terminal": np.array([0] * (steps - 1) + [int(terminal), 0], np.uint8),
        "has_action": np.array([1] * steps + [0], np.uint8),
    })
    summary = {"steps": steps, "terminated": bool(terminal), "truncated": bool(truncated),
               "return": float(np.sum(rows["rewards"], dtype=np.float64))}
    return rows, summary
