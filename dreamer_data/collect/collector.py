"""collect: run a real environment under a behaviour policy and write raw episodes (see raw.py).

Episode i draws its environment seed and policy seed from ``SeedSequence(seed, spawn_key=(i,))``,
so its content depends only on (settings, seed, i): never on the worker count, on the order
workers finish in, or on how many episodes a run asks for. Each episode is written atomically;
rerunning the same command skips the episodes already there (and may ask for more).
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import DreamerDataError
from ..workers import init_worker
from .crafter_env import ACHIEVEMENTS, DEFAULT_LENGTH, LOCAL_VIEW, CrafterEnv
from .episode import EpisodeEnv, run_episode
from .minatar_env import DEFAULT_MAX_STEPS, DEFAULT_STICKY_PROB, MinAtarEnv, check_game
from .policies import DEFAULT_EPSILON, POLICIES, make_policy
from .raw import EPISODE_DIR, episode_name, write_episode, write_run

ENVIRONMENTS = ("crafter", "minatar")
DEFAULT_MAX = {"crafter": DEFAULT_LENGTH, "minatar": DEFAULT_MAX_STEPS}


@dataclass(frozen=True)
class CollectConfig:
    """What a collect run plays; every field is recorded in ``collect.json`` and in each episode."""

    env: str
    policy: str = "random"
    seed: int = 0
    game: str | None = None  # MinAtar only
    sticky_prob: float = DEFAULT_STICKY_PROB  # MinAtar only
    ramping: bool = True  # MinAtar only: difficulty ramping
    max_steps: int | None = None  # None: the environment's default (Crafter 10000, MinAtar 10000)
    epsilon: float = DEFAULT_EPSILON  # noisy-scripted only

    def checked(self) -> "CollectConfig":
        """This config with defaults filled in, or a DreamerDataError saying what is wrong."""
        if self.env not in ENVIRONMENTS:
            raise DreamerDataError(f"unknown environment {self.env!r}; choose from {', '.join(ENVIRONMENTS)}")
        if self.policy not in POLICIES:
            raise DreamerDataError(f"unknown policy {self.policy!r}; choose from {', '.join(POLICIES)}")
        if not 0 <= self.seed < 2**63:
            raise DreamerDataError(f"--seed must be a non-negative integer, got {self.seed}")
        if not 0.0 <= self.epsilon <= 1.0:
            raise DreamerDataError(f"--epsilon must be in [0, 1], got {self.epsilon}")
        max_steps = self.max_steps if self.max_steps is not None else DEFAULT_MAX[self.env]
        if max_steps < 1:
            raise DreamerDataError(f"--max-steps must be at least 1, got {max_steps}")
        if self.env == "minatar":
            check_game(self.game)
            if not 0.0 <= self.sticky_prob <= 1.0:
                raise DreamerDataError(f"--sticky-prob must be in [0, 1], got {self.sticky_prob}")
            return CollectConfig(**{**asdict(self), "max_steps": max_steps})
        if self.game is not None:
            raise DreamerDataError("--game is for minatar only")
        return CollectConfig(**{**asdict(self), "max_steps": max_steps, "sticky_prob": 0.0, "ramping": False})

    def run_settings(self) -> dict:
        settings = {"env": self.env, "policy": self.policy, "seed": self.seed, "max_steps": self.max_steps}
        if self.policy == "noisy-scripted":
            settings["epsilon"] = self.epsilon
        if self.env == "crafter":  # episodes carry the tile ids of the view (runs collected before lack them)
            settings["semantic_view"] = list(LOCAL_VIEW)
        if self.env == "minatar":
            channels = MinAtarEnv(self.game, 0).channels
            settings.update(game=self.game, sticky_action_prob=self.sticky_prob, difficulty_ramping=self.ramping,
                            grid_channels=sorted(channels, key=channels.get))
        return settings


def episode_seeds(seed: int, index: int) -> tuple[int, int]:
    """(environment seed, policy seed) of episode ``index``: 32-bit, as MinAtar's RandomState needs."""
    env_seed, policy_seed = np.random.SeedSequence(seed, spawn_key=(index,)).generate_state(2)
    return int(env_seed), int(policy_seed)


def make_env(config: CollectConfig, env_seed: int) -> EpisodeEnv:
    if config.env == "crafter":
        return CrafterEnv(env_seed, length=config.max_steps)
    return MinAtarEnv(config.game, env_seed, sticky_prob=config.sticky_prob, ramping=config.ramping,
                      max_steps=config.max_steps)


def collect_episode(config: CollectConfig, index: int) -> tuple[dict[str, np.ndarray], dict]:
    """Play episode ``index`` of a run; returns (rows, info) as stored in the raw file."""
    env_seed, policy_seed = episode_seeds(config.seed, index)
    env = make_env(config, env_seed)
    policy = make_policy(config.policy, env, config.epsilon, np.random.default_rng(policy_seed))
    rows, summary = run_episode(env, policy)
    info = {**env.settings(), "index": index, "run_seed": config.seed, "policy": config.policy,
            "policy_seed": policy_seed, **summary}
    if config.policy == "noisy-scripted":
        info["epsilon"] = config.epsilon
    if config.env == "crafter":
        info["achievements_unlocked"] = [name for name, count in zip(ACHIEVEMENTS, rows["achievements"].sum(0))
                                         if count]
    return rows, info


def _collect_to_file(config: CollectConfig, raw: str, index: int) -> int:
    """Worker body: one episode into ``RAW/episodes/``; returns its step count."""
    rows, info = collect_episode(config, index)
    write_episode(Path(raw) / EPISODE_DIR / episode_name(index), rows, info)
    return info["steps"]


@dataclass
class CollectReport:
    out: str
    planned: int = 0
    skipped: int = 0
    collected: int = 0
    steps: int = 0


Progress = Callable[[int, int], None]  # (episodes done, steps collected this run)


def collect(config: CollectConfig, out: str | Path, episodes: int, workers: int = 1,
            progress: Progress | None = None) -> CollectReport:
    """Collect (or resume collecting) episodes 0 … episodes-1 into the RAW folder ``out``."""
    config = config.checked()
    if episodes < 1 or workers < 1:
        raise DreamerDataError(f"need --episodes >= 1 and --workers >= 1 (got {episodes}, {workers})")
    progress = progress or (lambda done, steps: None)
    raw = Path(out)
    write_run(raw, {**config.run_settings(), "episodes": episodes})
    folder = raw / EPISODE_DIR
    for stale in folder.glob(".*.tmp-*"):  # left by a killed run
        stale.unlink(missing_ok=True)
    todo = [index for index in range(episodes) if not (folder / episode_name(index)).exists()]
    report = CollectReport(out=str(out), planned=episodes, skipped=episodes - len(todo))
    progress(report.skipped, 0)

    def finished(steps: int) -> None:
        report.collected += 1
        report.steps += steps
        progress(report.skipped + report.collected, report.steps)

    if workers == 1 or len(todo) <= 1:
        for index in todo:
            finished(_collect_to_file(config, str(raw), index))
        return report
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=context,
                             initializer=init_worker, initargs=(os.getpid(), False)) as pool:
        running = {pool.submit(_collect_to_file, config, str(raw), index) for index in todo}
        try:
            while running:
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    finished(future.result())
        except BrokenProcessPool:
            raise DreamerDataError("a collect worker died (killed, or out of memory); rerun the same command to "
                                   "resume") from None
        except BaseException:
            for future in running:
                future.cancel()
            raise
    return report
