"""Command bodies of ``dreamer-train phase2``, ``phase3`` and ``eval`` (registered in cli/train.py).

Thin: parse flags, show progress, print results; the work happens in dreamer_model.train.phase2/3
and dreamer_model.eval.
"""

from __future__ import annotations

from typing import Optional

import typer

from .common import progress_bar, report_errors, stderr

# The core flags every trainer shares (same words as cli/train.py's).
DATA = typer.Option(..., "--data", help="Store to train from (local dir or fsspec URL); it must hold latents.")
OUT = typer.Option(..., "--out", help="Run directory: checkpoints/, tb/, metrics.jsonl, config.yaml.")
PRESET = typer.Option("tiny", "--preset", help="Size preset: tiny, small, base, paper.")
STEPS = typer.Option(None, "--steps", min=0, help="Total optimisation steps to reach (default: the preset's).")
CONFIG = typer.Option(None, "--config", help="YAML file of config overrides (sections agent:, train:).")
SET = typer.Option(None, "--set", help="One override KEY=VALUE, e.g. agent.beta=0.1 (repeatable).")
RESUME = typer.Option(False, "--resume", help="Continue the run in --out from its newest checkpoint (bit-exact).")
SEED = typer.Option(0, "--seed", min=0, help="Seed of the data order, the noise and the initial weights.")
DEVICE = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N.")
DEBUG = typer.Option(False, "--debug", help="Show tracebacks.")
O = {"DATA": DATA, "OUT": OUT, "PRESET": PRESET, "STEPS": STEPS, "CONFIG": CONFIG, "SET": SET, "RESUME": RESUME,
     "SEED": SEED, "DEVICE": DEVICE, "DEBUG": DEBUG}


class AgentProgress:
    """Rich progress for the phase-2/3 trainers' events."""

    def __init__(self, phase: str):
        self.phase, self.bar, self.task = phase, progress_bar(), None

    def __enter__(self) -> "AgentProgress":
        self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.__exit__(*exc)

    def __call__(self, event: str, info: dict) -> None:
        if event == "start":
            extra = f", tasks {', '.join(info['tasks'])}" + (", world model frozen" if info.get("frozen") else "")
            stderr.print(f"{self.phase} on {info['device']}: {info['trainable'] / 1e6:.2f}M trainable parameters, "
                         f"{info['train_windows']} training windows, {info['heldout_episodes']} held-out "
                         f"episode(s){extra}", highlight=False)
            self.task = self.bar.add_task(self.phase, total=info["steps"], completed=info["step"], detail="")
        elif event == "step":
            if "bc_nll" in info:
                detail = (f"bc {info['bc_nll']:.3f} (acc {info['bc_accuracy']:.2f}) · reward {info['reward_nll']:.3f}"
                          + (f" · dyn {info['dyn_loss']:.3f}" if "dyn_loss" in info else ""))
            else:
                detail = (f"policy {info['policy_loss']:.3f} · value {info['value_loss']:.3f} · "
                          f"A+ {info['adv_frac_positive']:.2f} · KL {info['kl_prior']:.3f} · H {info['policy_entropy']:.2f}")
            self.bar.update(self.task, completed=info["step"], detail=detail)
        elif event == "eval":
            shown = " · ".join(f"{k} {v:.3f}" for k, v in info.items() if k != "step" and isinstance(v, float)
                               and k in ("bc_nll", "bc_accuracy", "reward_nll", "reward_mae",
                                         "imagined_return_policy", "imagined_return_prior"))
            self.bar.console.print(f"step {info['step']}: held-out {shown}", highlight=False)


def phase2(data: str, wm: str, out: str, task: Optional[list[str]], preset: str, steps: Optional[int],
           config: Optional[str], set_: Optional[list[str]], resume: bool, seed: int, device: str,
           freeze_wm: bool, debug: bool) -> None:
    from dreamer_model.train.phase2 import Phase2TrainOptions, train_phase2

    options = Phase2TrainOptions(data=data, wm=wm, out=out, tasks=list(task or []), preset=preset, steps=steps,
                                 config=config, sets=list(set_ or []), resume=resume, seed=seed, device=device,
                                 freeze_wm=freeze_wm)
    with AgentProgress("phase2") as progress:
        result = train_phase2(options, progress)
    shown = f", held-out BC accuracy {result['bc_accuracy']:.3f}" if "bc_accuracy" in result else ""
    stderr.print(f"{out}: phase-2 agent at step {result['step']}{shown}", highlight=False)


def phase3(data: str, agent: str, out: str, preset: str, steps: Optional[int], config: Optional[str],
           set_: Optional[list[str]], resume: bool, seed: int, device: str, debug: bool) -> None:
    from dreamer_model.train.phase3 import Phase3TrainOptions, train_phase3

    options = Phase3TrainOptions(data=data, agent=agent, out=out, preset=preset, steps=steps, config=config,
                                 sets=list(set_ or []), resume=resume, seed=seed, device=device)
    with AgentProgress("phase3") as progress:
        result = train_phase3(options, progress)
    shown = (f", imagined return {result['imagined_return_policy']:.3f} (prior "
             f"{result['imagined_return_prior']:.3f})" if "imagined_return_policy" in result else "")
    stderr.print(f"{out}: phase-3 agent at step {result['step']}{shown}", highlight=False)


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
    """Add phase2, phase3 and eval to ``dreamer-train``."""
    o = O

    @app.command("phase2")
    @report_errors("dreamer-train phase2")
    def phase2_command(
        data: str = o["DATA"], wm: str = typer.Option(..., "--wm", help="Phase-1 run (world model) to start from."),
        out: str = o["OUT"],
        task: Optional[list[str]] = typer.Option(None, "--task", help="Task: 'reward' (the store's rewards) or "
                                                 "'achievement:NAME' (Crafter); repeatable. Default: reward."),
        preset: str = o["PRESET"], steps: Optional[int] = o["STEPS"], config: Optional[str] = o["CONFIG"],
        set_: Optional[list[str]] = o["SET"], resume: bool = o["RESUME"], seed: int = o["SEED"],
        device: str = o["DEVICE"],
        freeze_wm: bool = typer.Option(False, "--freeze-wm", help="Keep the world model fixed (train heads only)."),
        debug: bool = o["DEBUG"],
    ) -> None:
        """Behaviour cloning + reward heads on agent tokens (paper eq. 9), world model fine-tuned jointly."""
        phase2(data, wm, out, task, preset, steps, config, set_, resume, seed, device, freeze_wm, debug)

    @app.command("phase3")
    @report_errors("dreamer-train phase3")
    def phase3_command(
        data: str = o["DATA"], agent: str = typer.Option(..., "--agent", help="Phase-2 run to start from."),
        out: str = o["OUT"], preset: str = o["PRESET"], steps: Optional[int] = o["STEPS"],
        config: Optional[str] = o["CONFIG"], set_: Optional[list[str]] = o["SET"], resume: bool = o["RESUME"],
        seed: int = o["SEED"], device: str = o["DEVICE"], debug: bool = o["DEBUG"],
    ) -> None:
        """Imagination RL in the frozen world model: PMPO policy (eq. 11) + TD(lambda) value (eq. 10)."""
        phase3(data, agent, out, preset, steps, config, set_, resume, seed, device, debug)

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
        debug: bool = o["DEBUG"],
    ) -> None:
        """Score a policy in the real environment: return ± s.e., length, Crafter success rates and score."""
        evaluate(env, ckpt, policy, data, episodes, seed, game, max_steps, sticky_prob, epsilon, task, greedy, record,
                 batch, out, device, debug)
