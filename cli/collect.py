"""``dreamer-data collect``: play a real environment with a behaviour policy and write raw episodes."""

from __future__ import annotations

from enum import Enum
from typing import Optional

import typer

from dreamer_data.collect.collector import ENVIRONMENTS, CollectConfig, collect
from dreamer_data.collect.minatar_env import DEFAULT_STICKY_PROB, GAMES
from dreamer_data.collect.policies import DEFAULT_EPSILON, POLICIES

from .common import progress_bar, report_errors, stderr

Environment = Enum("Environment", {name: name for name in ENVIRONMENTS}, type=str)
PolicyName = Enum("PolicyName", {name: name for name in POLICIES}, type=str)
Game = Enum("Game", {name: name for name in GAMES}, type=str)


@report_errors("dreamer-data collect")
def collect_command(
    env: Environment = typer.Argument(..., help="Environment to play."),
    episodes: int = typer.Option(..., min=1, help="Episodes 0 … N-1 (rerun with a larger N to add more)."),
    out: str = typer.Option(..., "--out", help="RAW folder to write (rerun to resume)."),
    policy: PolicyName = typer.Option(PolicyName.random, help="Behaviour policy."),
    seed: int = typer.Option(0, min=0, help="Run seed; episode i's seeds derive from (seed, i)."),
    workers: int = typer.Option(1, min=1, help="Environment processes."),
    game: Optional[Game] = typer.Option(None, help="MinAtar game (minatar only)."),
    sticky_prob: float = typer.Option(DEFAULT_STICKY_PROB, help="MinAtar sticky-action probability."),
    no_ramping: bool = typer.Option(False, "--no-ramping", help="MinAtar: turn difficulty ramping off."),
    max_steps: Optional[int] = typer.Option(None, min=1, help="Time limit per episode (default 10000); "
                                                               "a cut episode is truncated, not terminal."),
    epsilon: float = typer.Option(DEFAULT_EPSILON, help="Random-action probability of noisy-scripted."),
    debug: bool = typer.Option(False, help="Show tracebacks."),
) -> None:
    """Collect episodes deterministically (same --seed, same episodes, any --workers); resumable."""
    config = CollectConfig(env=env.value, policy=policy.value, seed=seed, game=game.value if game else None,
                           sticky_prob=sticky_prob, ramping=not no_ramping, max_steps=max_steps,
                           epsilon=epsilon).checked()
    label = f"collect {env.value}" + (f" {game.value}" if game else "")
    with progress_bar() as bar:
        task = bar.add_task(label, total=episodes, detail="")
        report = collect(config, out, episodes, workers,
                         progress=lambda done, steps: bar.update(task, completed=done, detail=f"{steps:,} steps"))
    stderr.print(f"{out}: {report.collected} episodes collected ({report.steps:,} steps), {report.skipped} already "
                 f"there", highlight=False)
