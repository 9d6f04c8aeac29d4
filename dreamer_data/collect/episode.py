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
    observation = env.reset()
    observations: dict[str, list] = {name: [] for name in observation}
    extras: dict[str, list] = {}
    actions: list[int] = []
    rewards: list[float] = []
    terminal = truncated = False
    while not (terminal or truncated):
        action = policy.act(env)
        next_observation, reward, terminal, truncated, step_extras = env.step(action)
        for name, value in observation.items():
            observations[name].append(value)
        for name, value in step_extras.items():
            extras.setdefault(name, []).append(value)
        actions.append(action)
        rewards.append(reward)
        observation = next_observation
    for name, value in observation.items():
        observations[name].append(value)
    for name, value in env.step_extras_null().items():
        extras.setdefault(name, []).append(value)
    steps = len(actions)
    rows = {name: np.stack(values) for name, values in observations.items()}
    rows.update({
        "actions": np.array(actions + [0], np.int64),
        "rewards": np.array(rewards + [0.0], np.float32),
        "is_terminal": np.array([0] * (steps - 1) + [int(terminal), 0], np.uint8),
        "has_action": np.array([1] * steps + [0], np.uint8),
    })
    rows.update({name: np.stack(values) for name, values in extras.items()})
    summary = {"steps": steps, "terminated": bool(terminal), "truncated": bool(truncated),
               "return": float(np.sum(rows["rewards"], dtype=np.float64))}
    return rows, summary
