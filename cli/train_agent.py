"""``dreamer-train eval``: score a policy in the real environment (registered in cli/train.py).

Thin: parse flags, show progress, print results; the work happens in dreamer_model.eval.
"""

from __future__ import annotations

from typing import Optional

import typer

from .common import DEBUG, progress_bar, report_errors


def evaluate(env: str, ckpt: Optional[str], policy: Optional[str], data: Optional[str], episodes: int, seed: int,
             game: Optional[str], max_steps: Optional[int], sticky_prob: Optional[float], epsilon: float,
             task: Optional[str], greedy: bool, record: int, batch: int, out: Optional[str], device: str,
             debug: bool) -> None:
    from dreamer_model.eval.evaluate import EvalOptions, Evaluation

    options = EvalOptions(env=env, ckpt=ckpt, policy=policy, data=data, episodes=episodes, seed=seed, game=game,
                          max_steps=max_steps, sticky_prob=sticky_prob, epsilon=epsilon, task=task, greedy=greedy,
                          record=record, batch=batch, out=out, device=device)
    evaluation = Evaluation(options)  # loads and checks everything first: bad input is one line, no bar
    with progress_bar() as bar:
        task_id = bar.add_task("eval", total=episodes, detail="")
        report, folder, lines = evaluation.run(lambda done, total: bar.update(task_id, completed=done))
    for line in lines:
        typer.echo(line)
    typer.echo(f"report: {folder / 'report.json'}")


def register(app: typer.Typer) -> None:
    """Add eval to ``dreamer-train``."""

    @app.command("eval")
    @report_errors("dreamer-train eval")
    def eval_command(
        env: str = typer.Argument(..., help="crafter or minatar."),
        ckpt: Optional[str] = typer.Option(None, "--ckpt", help="Agent run (phase 2 or 3) or checkpoint file."),
        policy: Optional[str] = typer.Option(None, "--policy", help="Instead of --ckpt: behaviour policy random or "
                                             "noisy-scripted."),
        data: Optional[str] = typer.Option(None, "--data", help="With --policy: store whose environment settings to use."),
        episodes: int = typer.Option(100, "--episodes", min=1, help="Episodes to play."),
        seed: int = typer.Option(0, "--seed", min=0, help="Evaluation seed: same seed, same environments."),
        game: Optional[str] = typer.Option(None, "--game", help="MinAtar game (default: the training store's)."),
        max_steps: Optional[int] = typer.Option(None, "--max-steps", min=1, help="Time limit per episode."),
        sticky_prob: Optional[float] = typer.Option(None, "--sticky-prob", help="MinAtar sticky-action probability."),
        epsilon: float = typer.Option(0.1, "--epsilon", help="noisy-scripted: random-action probability."),
        task: Optional[str] = typer.Option(None, "--task", help="Which of the agent's tasks (default: its first)."),
        greedy: bool = typer.Option(False, "--greedy", help="Act with the most likely action instead of sampling."),
        record: int = typer.Option(3, "--record", min=0, help="Episodes to save as mp4."),
        batch: int = typer.Option(32, "--batch", min=1, help="Episodes played in lock-step."),
        out: Optional[str] = typer.Option(None, "--out", help="Folder for report.json, chart and videos."),
        device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
        debug: bool = DEBUG,
    ) -> None:
        """Score a policy in the real environment: return ± s.e., length, Crafter success rates and score."""
        evaluate(env, ckpt, policy, data, episodes, seed, game, max_steps, sticky_prob, epsilon, task, greedy, record,
                 batch, out, device, debug)
