"""``dreamer-train rollout``: decode an open-loop world-model rollout (thin: flags and one-line errors; the work
is in ``dreamer_model.rollout``)."""

from __future__ import annotations

from typing import Optional

import typer

from .common import DEBUG, DEVICE, SEED, report_errors, stderr


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
        nan = {"recall": float("nan")}  # a class the imagined frame h steps ahead does not show
        stderr.print("object recall (tokenizer | imagined at " + ", ".join(map(str, report.objects["imagined"])) +
                     "): " + "; ".join(f"{name} {rates['recall']:.2f} | " +
                                       " ".join(f"{ahead.get(name, nan)['recall']:.2f}"
                                                for ahead in report.objects["imagined"].values())
                                       for name, rates in report.objects["tokenizer"].items()),
                     highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add rollout to ``dreamer-train``."""
    app.command("rollout")(report_errors("dreamer-train rollout")(rollout_command))
