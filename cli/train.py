"""``dreamer-train``: the model side. The four trainers (tokenizer, phase1, phase2, phase3) share one set of
flags (``cli/common.py``) and one way to run: progress on the main process, Ctrl-C → a checkpoint and exit 130,
one summary line. ``rollout`` and ``eval`` (cli/train_world.py, cli/train_agent.py), ``quickstart`` and
``presets`` complete it. Under ``torchrun --nproc_per_node N`` every trainer trains with DDP, or with FSDP
(sharded) given ``--set train.fsdp=true``.
"""

from __future__ import annotations

import os
import sys
from typing import Callable, Optional

import typer

from .common import (CONFIG, DATA, DEBUG, DEVICE, EXIT_INTERRUPTED, OUT, PRESET, RESUME, SEED, SET, STEPS, VERSION,
                     progress_bar, report_errors, stderr)

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Train Dreamer 4 from a store: tokenizer → phase1 → phase2 → phase3 → eval.")


@app.callback()
def options(version: bool = VERSION) -> None:
    """Options before the command (--version)."""


def _is_main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


def _flat(info: dict, keys: tuple[str, ...]) -> str:
    return " · ".join(f"{k} {v:.3f}" for k, v in info.items() if k in keys and isinstance(v, float))


# What each trainer's progress shows: (what it trains, the step's detail, the held-out line, the summary).
STAGES: dict[str, dict[str, Callable[[dict], str]]] = {
    "tokenizer": {
        "what": lambda i: "tokenizer",
        "step": lambda i: f"loss {i['loss']:.3f} · PSNR {i['psnr']:.1f} dB · {i['frames_per_s']:.0f} frames/s",
        "eval": lambda i: f"held-out PSNR {i['psnr']:.2f} dB (masked input {i['psnr_masked']:.2f} dB)",
        "done": lambda r: "tokenizer" + (f", held-out PSNR {r['psnr']:.2f} dB" if "psnr" in r else ""),
    },
    "phase1": {
        "what": lambda i: f"world model ({i['objective']}; actions: {', '.join(i['actions']) or 'none'})",
        "step": lambda i: f"loss {i['loss']:.3f} · x-MSE {i['x_mse']:.4f} · {i['frames_per_s']:.0f} frames/s",
        "eval": lambda i: (lambda h: f"held-out rollout latent MSE {i['rollout_mse_1']:.4f} at 1 step, "
                           f"{i[f'rollout_mse_{h}']:.4f} at {h} (copy-last-frame: {i['copy_mse_1']:.4f}, "
                           f"{i[f'copy_mse_{h}']:.4f})")(
            max(int(k.rsplit("_", 1)[1]) for k in i if k.startswith("rollout_mse_"))),
        "done": lambda r: "world model" + (f", held-out 1-step rollout latent MSE {r['rollout_mse_1']:.4f}"
                                           if "rollout_mse_1" in r else ""),
    },
    "phase2": {
        "what": lambda i: f"agent (BC + reward heads; tasks {', '.join(i['tasks'])}"
                          + (", world model frozen)" if i["frozen"] else ")"),
        "step": lambda i: (f"bc {i['bc_nll']:.3f} (acc {i['bc_accuracy']:.2f}) · reward {i['reward_nll']:.3f}"
                           + (f" · dyn {i['dyn_loss']:.3f}" if "dyn_loss" in i else "")),
        "eval": lambda i: "held-out " + _flat(i, ("bc_nll", "bc_accuracy", "reward_nll", "reward_mae")),
        "done": lambda r: "phase-2 agent" + (f", held-out BC accuracy {r['bc_accuracy']:.3f}"
                                             if "bc_accuracy" in r else ""),
    },
    "phase3": {
        "what": lambda i: f"agent (imagination RL; tasks {', '.join(i['tasks'])}, horizon {i['horizon']})",
        "step": lambda i: (f"policy {i['policy_loss']:.3f} · value {i['value_loss']:.3f} · A+ "
                           f"{i['adv_frac_positive']:.2f} · KL {i['kl_prior']:.3f} · H {i['policy_entropy']:.2f}"),
        "eval": lambda i: "held-out " + _flat(i, ("imagined_return_policy", "imagined_return_prior")),
        "done": lambda r: "phase-3 agent" + (f", imagined return {r['imagined_return_policy']:.3f} (prior "
                                             f"{r['imagined_return_prior']:.3f})" if "imagined_return_policy" in r
                                             else ""),
    },
}


class TrainingProgress:
    """Rich progress for one trainer's events (main process only)."""

    def __init__(self, stage: str):
        self.stage, self.show = stage, STAGES[stage]
        self.bar, self.task = progress_bar(), None

    def __enter__(self) -> "TrainingProgress":
        self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.__exit__(*exc)

    def __call__(self, event: str, info: dict) -> None:
        if event == "start":
            if info["resumed"]:
                stderr.print(f"resuming at step {info['step']} with the run's saved config and seed (--preset, "
                             f"--config, --set, --seed and the stage's own flags apply to new runs only)",
                             highlight=False, soft_wrap=True)
            size = f"{info['parameters'] / 1e6:.2f}M parameters"
            if info["trainable"] != info["parameters"]:
                size += f", {info['trainable'] / 1e6:.2f}M trainable"
            for note in info["notes"]:
                stderr.print(f"note: {note}", highlight=False, soft_wrap=True)
            stderr.print(f"training {info['preset']} {self.show['what'](info)} ({size}) on {info['device']} × "
                         f"{info['world_size']}{' (FSDP)' if info['fsdp'] else ''}: {info['train_windows']} training "
                         f"windows, {info['heldout_episodes']} held-out episode(s)", highlight=False, soft_wrap=True)
            self.task = self.bar.add_task(self.stage, total=info["steps"], completed=info["step"], detail="")
        elif event == "step":
            self.bar.update(self.task, completed=info["step"], detail=self.show["step"](info))
        elif event == "eval":
            self.bar.console.print(f"step {info['step']}: {self.show['eval'](info)}", highlight=False, soft_wrap=True)


def train(stage: str, trainer, options) -> None:
    """Run ``trainer`` (a ``Trainer`` subclass) on ``options`` as every trainer command does."""
    try:
        if _is_main_process():
            with TrainingProgress(stage) as progress:
                result = trainer.train(options, progress)
        else:
            result = trainer.train(options)
    except KeyboardInterrupt:
        if _is_main_process():
            stderr.print(f"[yellow]dreamer-train {stage}: interrupted[/]; checkpoint saved in {options.out}/"
                         f"checkpoints, continue with --resume", highlight=False, soft_wrap=True)
        sys.exit(EXIT_INTERRUPTED)
    if _is_main_process():
        stderr.print(_summary(stage, options.out, result), highlight=False, soft_wrap=True)


def _summary(stage: str, out: str, result: dict) -> str:
    """``OUT: tokenizer at step N, held-out …``."""
    what, _, detail = STAGES[stage]["done"](result).partition(", ")
    return f"{out}: {what} at step {result['step']}" + (f", {detail}" if detail else "")


def _shared(data, out, preset, steps, config, set_, resume, seed, device) -> dict:
    return {"data": data, "out": out, "preset": preset, "steps": steps, "config": config, "sets": list(set_ or []),
            "resume": resume, "seed": seed, "device": device}


@app.command("tokenizer")
@report_errors("dreamer-train tokenizer")
def tokenizer_command(
    data: str = DATA, out: str = OUT, preset: str = PRESET, steps: Optional[int] = STEPS,
    config: Optional[str] = CONFIG, set_: Optional[list[str]] = SET, resume: bool = RESUME, seed: int = SEED,
    device: str = DEVICE,
    lpips_weight: Optional[float] = typer.Option(None, "--lpips-weight", min=0.0,
                                                 help="Weight of the LPIPS term (paper: 0.2; 0 turns it off)."),
    debug: bool = DEBUG,
) -> None:
    """Train the causal MAE tokenizer on the store's frames (paper eq. 5)."""
    from dreamer_model.train.tokenizer import TokenizerTrainer, TokenizerTrainOptions

    shared = _shared(data, out, preset, steps, config, set_, resume, seed, device)
    train("tokenizer", TokenizerTrainer, TokenizerTrainOptions(**shared, lpips_weight=lpips_weight))


@app.command("phase1")
@report_errors("dreamer-train phase1")
def phase1_command(
    data: str = DATA, out: str = OUT, preset: str = PRESET, steps: Optional[int] = STEPS,
    config: Optional[str] = CONFIG, set_: Optional[list[str]] = SET, resume: bool = RESUME, seed: int = SEED,
    device: str = DEVICE,
    objective: Optional[str] = typer.Option(None, "--objective",
                                            help="shortcut (paper eq. 7, default) or flow (the baseline: d_min only)."),
    debug: bool = DEBUG,
) -> None:
    """Train the shortcut-forcing dynamics model on the store's cached latents (paper eqs. 4, 7, 8)."""
    from dreamer_model.train.phase1 import Phase1Trainer, Phase1TrainOptions

    shared = _shared(data, out, preset, steps, config, set_, resume, seed, device)
    train("phase1", Phase1Trainer, Phase1TrainOptions(**shared, objective=objective))


@app.command("phase2")
@report_errors("dreamer-train phase2")
def phase2_command(
    data: str = DATA, wm: str = typer.Option(..., "--wm", help="Phase-1 run (world model) to start from."),
    out: str = OUT,
    task: Optional[list[str]] = typer.Option(None, "--task", help="Task: 'reward' (the store's rewards) or "
                                             "'achievement:NAME' (Crafter); repeatable. Default: reward."),
    preset: str = PRESET, steps: Optional[int] = STEPS, config: Optional[str] = CONFIG,
    set_: Optional[list[str]] = SET, resume: bool = RESUME, seed: int = SEED, device: str = DEVICE,
    freeze_wm: bool = typer.Option(False, "--freeze-wm", help="Keep the world model fixed (train heads only)."),
    debug: bool = DEBUG,
) -> None:
    """Behaviour cloning + reward heads on agent tokens (paper eq. 9), world model fine-tuned jointly."""
    from dreamer_model.train.phase2 import Phase2Trainer, Phase2TrainOptions

    shared = _shared(data, out, preset, steps, config, set_, resume, seed, device)
    train("phase2", Phase2Trainer, Phase2TrainOptions(**shared, wm=wm, tasks=list(task or []), freeze_wm=freeze_wm))


@app.command("phase3")
@report_errors("dreamer-train phase3")
def phase3_command(
    data: str = DATA, agent: str = typer.Option(..., "--agent", help="Phase-2 run to start from."),
    out: str = OUT, preset: str = PRESET, steps: Optional[int] = STEPS, config: Optional[str] = CONFIG,
    set_: Optional[list[str]] = SET, resume: bool = RESUME, seed: int = SEED, device: str = DEVICE,
    debug: bool = DEBUG,
) -> None:
    """Imagination RL in the frozen world model: PMPO policy (eq. 11) + TD(lambda) value (eq. 10)."""
    from dreamer_model.train.phase3 import Phase3Trainer, Phase3TrainOptions

    shared = _shared(data, out, preset, steps, config, set_, resume, seed, device)
    train("phase3", Phase3Trainer, Phase3TrainOptions(**shared, agent=agent))


@app.command("presets")
def presets_command(as_json: bool = typer.Option(False, "--json", help="Print {preset: {stage: parameters}} as JSON.")
                    ) -> None:
    """Every preset's parameter count per stage: all weights of the tokenizer, the world model and the phase-2
    agent, the policy and value heads phase 3 trains."""
    import json

    from dreamer_model.presets import PRESETS, counts_table, parameter_counts

    counts = {name: parameter_counts(name) for name in PRESETS}
    typer.echo(json.dumps(counts) if as_json else counts_table(counts))


from .train_world import register as register_rollout  # noqa: E402
from .train_agent import register as register_eval  # noqa: E402
from .quickstart import register as register_quickstart  # noqa: E402
from .play import register as register_play  # noqa: E402

register_rollout(app)
register_eval(app)
register_quickstart(app)
register_play(app)


def main() -> None:
    app()
