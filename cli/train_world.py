"""``dreamer-train phase1`` and ``dreamer-train rollout``: the world model's commands (thin: flags,
progress, one-line errors; the work is in ``dreamer_model.train.phase1`` and ``dreamer_model.rollout``)."""

from __future__ import annotations

import os
import sys
from typing import Optional

import typer

from .common import EXIT_INTERRUPTED, progress_bar, report_errors, stderr

# The core flags every trainer shares (same words as the tokenizer's, see cli/train.py).
DATA = typer.Option(..., "--data", help="Store to train from (local dir or fsspec URL); it must hold latents.")
OUT = typer.Option(..., "--out", help="Run directory: checkpoints/, tb/, metrics.jsonl, config.yaml.")
PRESET = typer.Option("tiny", "--preset", help="Size preset: tiny, small, base, paper.")
STEPS = typer.Option(None, "--steps", min=0, help="Total optimisation steps to reach (default: the preset's).")
CONFIG = typer.Option(None, "--config", help="YAML file of config overrides (sections dynamics:, train:).")
SET = typer.Option(None, "--set", help="One override KEY=VALUE, e.g. dynamics.k_max=32 (repeatable).")
RESUME = typer.Option(False, "--resume", help="Continue the run in --out from its newest checkpoint (bit-exact).")
SEED = typer.Option(0, "--seed", min=0, help="Seed of the data order, the noise and the initial weights.")
DEVICE = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N (torchrun: each rank its own GPU).")
DEBUG = typer.Option(False, "--debug", help="Show tracebacks.")


def _is_main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


class Phase1Progress:
    """Rich progress for the phase-1 trainer's events (main process only)."""

    def __init__(self):
        self.bar = progress_bar()
        self.task = None

    def __enter__(self) -> "Phase1Progress":
        self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.__exit__(*exc)

    def __call__(self, event: str, info: dict) -> None:
        if event == "start":
            stderr.print(f"training {info['preset']} world model ({info['objective']}, "
                         f"{info['parameters'] / 1e6:.2f}M parameters) on {info['device']} × {info['world_size']}: "
                         f"{info['train_windows']} training windows, {info['heldout_episodes']} held-out episode(s), "
                         f"actions: {', '.join(info['actions']) or 'none'}", highlight=False, soft_wrap=True)
            self.task = self.bar.add_task("phase1", total=info["steps"], completed=info["step"], detail="")
        elif event == "step":
            self.bar.update(self.task, completed=info["step"],
                            detail=f"loss {info['loss']:.3f} · x-MSE {info['x_mse']:.4f} · "
                                   f"{info['frames_per_s']:.0f} frames/s")
        elif event == "eval":
            horizon = max(int(k.rsplit("_", 1)[1]) for k in info if k.startswith("rollout_mse_"))
            self.bar.console.print(
                f"step {info['step']}: held-out rollout latent MSE {info['rollout_mse_1']:.4f} at 1 step, "
                f"{info[f'rollout_mse_{horizon}']:.4f} at {horizon} (copy-last-frame: {info['copy_mse_1']:.4f}, "
                f"{info[f'copy_mse_{horizon}']:.4f})", highlight=False, soft_wrap=True)


def phase1_command(
    data: str = DATA, out: str = OUT, preset: str = PRESET, steps: Optional[int] = STEPS,
    config: Optional[str] = CONFIG, set_: Optional[list[str]] = SET, resume: bool = RESUME, seed: int = SEED,
    device: str = DEVICE,
    objective: Optional[str] = typer.Option(None, "--objective",
                                            help="shortcut (paper eq. 7, default) or flow (the baseline: d_min only)."),
    debug: bool = DEBUG,
) -> None:
    """Train the shortcut-forcing dynamics model on the store's cached latents (paper eqs. 4, 7, 8)."""
    from dreamer_model.train.phase1 import Phase1TrainOptions, train_phase1

    options = Phase1TrainOptions(data=data, out=out, preset=preset, steps=steps, config=config,
                                 sets=list(set_ or []), resume=resume, seed=seed, device=device, objective=objective)
    try:
        if _is_main_process():
            with Phase1Progress() as progress:
                result = train_phase1(options, progress)
        else:
            result = train_phase1(options)
    except KeyboardInterrupt:
        if _is_main_process():
            stderr.print(f"[yellow]dreamer-train phase1: interrupted[/]; checkpoint saved in {out}/checkpoints, "
                         f"continue with --resume", highlight=False, soft_wrap=True)
        sys.exit(EXIT_INTERRUPTED)
    if _is_main_process():
        held_out = f", held-out 1-step rollout latent MSE {result['rollout_mse_1']:.4f}" if "rollout_mse_1" in result else ""
        stderr.print(f"{out}: world model at step {result['step']}{held_out}", highlight=False, soft_wrap=True)


def rollout_command(
    ckpt: str = typer.Option(..., "--ckpt", help="Phase-1 run directory or checkpoint file."),
    data: str = typer.Option(..., "--data", help="Store holding the episode (with latents)."),
    episode: str = typer.Option(..., "--episode", help="Episode id (see dreamer-data inspect)."),
    frames: int = typer.Option(64, "--frames", min=1, help="Frames to generate after the context."),
    out: str = typer.Option(..., "--out", help="Video to write (.mp4 or .gif), or .npz: the panels as arrays (real, tokenizer, imagined, rows, context)."),
    context: int = typer.Option(8, "--context", min=1, help="Real frames given as context."),
    start: int = typer.Option(0, "--start", min=0, help="Episode frame where the context starts."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Denoising steps K per frame (default: the model's, 4)."),
    actions: str = typer.Option("recorded", "--actions",
                                help="recorded, random, or both (two panels: do the actions matter?)."),
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer", help="Tokenizer checkpoint (default: the one the "
                                                                    "store's manifest records for its latents)."),
    fps: int = typer.Option(8, "--fps", min=1, help="Frames per second of the video."),
    seed: int = SEED, device: str = DEVICE, debug: bool = DEBUG,
) -> None:
    """Decode an open-loop world-model rollout: real frames beside the imagined ones."""
    import numpy as np

    from dreamer_model.checkpoint import load_store_tokenizer, load_world_model
    from dreamer_model.rollout import rollout_video
    from dreamer_model.train.distributed import pick_device

    where = pick_device(device)
    model, state = load_world_model(ckpt, where)
    decoder = load_store_tokenizer(data, tokenizer, where)
    report = rollout_video(model, decoder, data, episode, out, context, frames, start, steps, seed, fps, actions)
    psnr = np.array(report.psnr)
    marks = [h for h in (1, 4, 16, 64) if h <= len(psnr)]
    stderr.print(f"{report.path}: {report.context} context + {report.horizon} imagined frames "
                 f"(world model step {state['step']}); PSNR vs real " +
                 ", ".join(f"{psnr[h - 1]:.2f} dB at {h}" for h in marks) +
                 f" (tokenizer reconstruction {np.mean(report.psnr_tokenizer):.2f} dB)",
                 highlight=False, soft_wrap=True)
    if report.objects:
        stderr.print("cell recall (tokenizer | imagined at " + ", ".join(map(str, report.objects["imagined"])) + "): " +
                     "; ".join(f"{name} {rates['recall']:.2f} | " +
                               " ".join(f"{ahead[name]['recall']:.2f}" for ahead in report.objects["imagined"].values())
                               for name, rates in report.objects["tokenizer"].items()),
                     highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add phase1 and rollout to ``dreamer-train``."""
    app.command("phase1")(report_errors("dreamer-train phase1")(phase1_command))
    app.command("rollout")(report_errors("dreamer-train rollout")(rollout_command))
