"""Play evaluation episodes in the real environment, many in lock-step, and collect what they scored.

Episodes run in batches of ``batch`` (all of a batch start together; finished ones drop out), in
episode order, so the results do not depend on the batch size: episode i always plays environment
seed ``eval_seeds(seed, i)``. A few episodes (``record``) keep their frames for videos.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .envs import EnvSettings, achievement_names, eval_seeds, frame, make_env
from .policies import EvalPolicy


@dataclass
class EpisodeResult:
    index: int
    env_seed: int
    ret: float
    length: int
    terminated: bool
    achievements: list[str] = field(default_factory=list)  # Crafter: unlocked in this episode


@dataclass
class EvalRun:
    settings: EnvSettings
    policy: str
    seed: int
    episodes: list[EpisodeResult]
    videos: dict[int, np.ndarray]  # episode index → (T, H, W, 3) uint8
    seconds: float


Progress = Callable[[int, int], None]


def evaluate(settings: EnvSettings, policy: EvalPolicy, episodes: int, seed: int = 0, batch: int = 32,
             record: int = 0, progress: Progress | None = None) -> EvalRun:
    settings.checked()
    began = time.time()
    results: list[EpisodeResult] = []
    videos: dict[int, np.ndarray] = {}
    names = achievement_names(settings)
    for first in range(0, episodes, batch):
        indices = list(range(first, min(episodes, first + batch)))
        seeds = [eval_seeds(seed, i) for i in indices]
        envs = [make_env(settings, env_seed) for env_seed, _ in seeds]
        policy.reset(envs, [policy_seed for _, policy_seed in seeds])
        observations = [env.reset() for env in envs]
        n = len(envs)
        alive = np.ones(n, bool)
        returns, lengths = np.zeros(n), np.zeros(n, np.int64)
        terminated = np.zeros(n, bool)
        unlocked = np.zeros((n, len(names)), bool)
        recording = {k: [] for k, i in enumerate(indices) if i < record}
        frames = np.stack([frame(settings, o) for o in observations])
        while alive.any():
            for k in recording:
                if alive[k]:
                    recording[k].append(frames[k])
            actions = policy.act(frames, alive)
            for k in np.flatnonzero(alive):
                observation, reward, terminal, truncated, extras = envs[k].step(int(actions[k]))
                returns[k] += reward
                lengths[k] += 1
                if names:
                    unlocked[k] |= extras["achievements"].astype(bool)
                if terminal or truncated:
                    alive[k], terminated[k] = False, terminal
                    if k in recording:
                        recording[k].append(frame(settings, observation))
                else:
                    frames[k] = frame(settings, observation)
        for k, i in enumerate(indices):
            results.append(EpisodeResult(i, seeds[k][0], float(returns[k]), int(lengths[k]), bool(terminated[k]),
                                         [name for name, hit in zip(names, unlocked[k]) if hit]))
            if k in recording:
                videos[i] = np.stack(recording[k])
        if progress:
            progress(len(results), episodes)
    return EvalRun(settings, policy.name, seed, results, videos, time.time() - began)
