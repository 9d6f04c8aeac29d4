"""``dreamer-train``: the model side (tokenizer, phase 1–3, rollout, eval, quickstart; ``plan`` lists them).

Every trainer takes the same core flags: --data STORE --out RUN --preset NAME --steps N
--config FILE --resume --seed S --device D (plus --set KEY=VALUE overrides). Under
``torchrun --nproc_per_node N`` the same command trains with DDP.
"""

from __future__ import annotations

import inspect
import os
import sys
from typing import Optional

import typer

from .common import EXIT_INTERRUPTED, VERSION, progress_bar, report_errors, stderr

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Train Dreamer 4 from a store: tokenizer → phase1 → phase2 → phase3 → eval.")


@app.callback()
def options(version: bool = VERSION) -> None:
    """Options before the command (--version)."""


# The core flags every trainer shares.
DATA = typer.Option(..., "--data", help="Store to train from (local dir or fsspec URL).")
OUT = typer.Option(..., "--out", help="Run directory: checkpoints/, samples/, tb/, metrics.jsonl.")
PRESET = typer.Option("tiny", "--preset", help="Size preset: tiny, small, base, paper, micro, quickstart "
                                             "(dreamer-train presets).")
STEPS = typer.Option(None, "--steps", min=0, help="Total optimisation steps to reach (default: the preset's).")
CONFIG = typer.Option(None, "--config", help="YAML file of config overrides (sections tokenizer:, train:).")
SET = typer.Option(None, "--set", help="One override KEY=VALUE, e.g. train.batch=16 (repeatable).")
RESUME = typer.Option(False, "--resume", help="Continue the run in --out from its newest checkpoint (bit-exact).")
SEED = typer.Option(0, "--seed", min=0, help="Seed of the data order, the masks and the initial weights.")
DEVICE = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N (torchrun: each rank its own GPU).")
DEBUG = typer.Option(False, "--debug", help="Show tracebacks.")


def _is_main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


class TrainingProgress:
    """Rich progress for a trainer's events (main process only)."""

    def __init__(self):
        self.bar = progress_bar()
        self.task = None

    def __enter__(self) -> "TrainingProgress":
        self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.__exit__(*exc)

    def __call__(self, event: str, info: dict) -> None:
        if event == "start":
            if info["resumed"]:
                stderr.print(f"resuming at step {info['step']} with the run's saved config and seed "
                             f"(--preset/--config/--set/--seed/--lpips-weight apply to new runs only)",
                             highlight=False, soft_wrap=True)
            stderr.print(f"training {info['preset']} tokenizer ({info['parameters'] / 1e6:.2f}M parameters) on "
                         f"{info['device']} × {info['world_size']}: {info['train_windows']} training windows, "
                         f"{info['heldout_episodes']} held-out episode(s)", highlight=False, soft_wrap=True)
            self.task = self.bar.add_task("tokenizer", total=info["steps"], completed=info["step"], detail="")
        elif event == "step":
            self.bar.update(self.task, completed=info["step"],
                            detail=f"loss {info['loss']:.3f} · PSNR {info['psnr']:.1f} dB · "
                                   f"{info['frames_per_s']:.0f} frames/s")
        elif event == "eval":
            self.bar.console.print(f"step {info['step']}: held-out PSNR {info['psnr']:.2f} dB "
                                   f"(masked input {info['psnr_masked']:.2f} dB)", highlight=False, soft_wrap=True)


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
    from dreamer_model.train.tokenizer import TokenizerTrainOptions, train_tokenizer

    options = TokenizerTrainOptions(data=data, out=out, preset=preset, steps=steps, config=config,
                                    sets=list(set_ or []), resume=resume, seed=seed, device=device,
                                    lpips_weight=lpips_weight)
    try:
        if _is_main_process():
            with TrainingProgress() as progress:
                result = train_tokenizer(options, progress)
        else:
            result = train_tokenizer(options)
    except KeyboardInterrupt:
        if _is_main_process():
            stderr.print(f"[yellow]dreamer-train tokenizer: interrupted[/]; checkpoint saved in {out}/checkpoints, "
                         f"continue with --resume", highlight=False, soft_wrap=True)
        sys.exit(EXIT_INTERRUPTED)
    if _is_main_process():
        held_out = f", held-out PSNR {result['psnr']:.2f} dB" if "psnr" in result else ""
        stderr.print(f"{out}: tokenizer at step {result['step']}{held_out}", highlight=False, soft_wrap=True)


from .train_world import register as register_world_commands  # noqa: E402  phase1, rollout (issue 6)
register_world_commands(app)
from .train_agent import register as register_agent_commands  # noqa: E402  phase2, phase3, eval (issue 7)
register_agent_commands(app)
from .quickstart import register as register_quickstart  # noqa: E402  quickstart (issue 9)
register_quickstart(app)


@app.command("presets")
def presets_command(as_json: bool = typer.Option(False, "--json", help="Print {preset: {stage: parameters}} as JSON.")
                    ) -> None:
    """Every preset's parameter count per stage: all weights of the tokenizer, the world model and the phase-2
    agent, the policy and value heads phase 3 trains."""
    import json

    from dreamer_model.presets import PRESETS, counts_table, parameter_counts

    counts = {name: parameter_counts(name) for name in PRESETS}
    typer.echo(json.dumps(counts) if as_json else counts_table(counts))


@app.command("plan")
def plan() -> None:
    """List the training sub-commands and what each does."""
    for command in app.registered_commands:  # what is registered is what exists: no list to fall out of date
        name = command.name or command.callback.__name__.replace("_", "-")
        if name != "plan":
            what = " ".join((command.help or inspect.getdoc(command.callback) or "").split("\n\n")[0].split())
            typer.echo(f"{name:11s} {what}")


def main() -> None:
    app()
