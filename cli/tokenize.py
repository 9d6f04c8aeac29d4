"""``dreamer-data tokenize STORE --ckpt RUN``: write the tokenizer's latents of every frame into the store."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Optional

import typer

from dreamer_data.cluster.session import import_ray
from dreamer_data.cluster.tokenize import tokenize_on_ray
from dreamer_data.errors import DreamerDataError
from dreamer_data.tokenize import DEFAULT_BATCH_FRAMES, tokenize_store

from .cluster import RAY
from .common import Rate, progress_bar, report_errors, stderr


@report_errors("dreamer-data tokenize")
def tokenize_command(
    store: str = typer.Argument(..., help="Store path or URL."),
    ckpt: str = typer.Option(..., "--ckpt", help="Tokenizer run directory (newest checkpoint) or checkpoint file."),
    batch: int = typer.Option(DEFAULT_BATCH_FRAMES, "--batch", min=1, help="Frames encoded per forward pass."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace latents of another checkpoint (written beside "
                                   "them; the ones they replace stay for open readers, older ones are removed)."),
    ray: Optional[str] = RAY,
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="With --ray: encoder workers (default: "
                                          "one per GPU share with --gpus-per-worker, else one per cluster CPU)."),
    gpus_per_worker: float = typer.Option(0, "--gpus-per-worker", min=0, help="With --ray: GPUs per encoder "
                                          "worker (0: CPU workers)."),
    debug: bool = typer.Option(False, help="Show tracebacks."),
) -> None:
    """Encode every frame (no masking) into the store's latents; resumable; rerun to continue after a crash."""
    from dreamer_model.tokenizer.frame_encoder import TokenizerFrameEncoder
    from dreamer_model.train.distributed import pick_device

    if not ray and (workers or gpus_per_worker):
        raise DreamerDataError("--workers and --gpus-per-worker choose Ray workers: add --ray [ADDRESS]")
    if ray:
        import_ray()  # one line saying how to install it, before the checkpoint loads
    if ray and device != "auto":
        raise DreamerDataError("with --ray each worker's device follows --gpus-per-worker (cuda when > 0); "
                               "leave --device at auto")
    encoder = TokenizerFrameEncoder.from_checkpoint(ckpt, device="cpu" if ray else pick_device(device))
    bar, task, rate = progress_bar(), None, Rate()

    def show(done: int, total: int, frames: int) -> None:
        nonlocal task
        if task is None:  # first call: the store's writer lock is held, so a refusal never leaves a bar behind
            bar.start()
            task = bar.add_task(f"tokenize{' on ray' if ray else ''}", total=None, detail="")
        bar.update(task, completed=done, total=total, detail=f"{frames} frames, {rate(frames):.0f} frames/s")

    try:
        options = dict(batch_frames=batch, overwrite=overwrite, progress=show)
        if ray:
            make_encoder = partial(TokenizerFrameEncoder.from_checkpoint, str(Path(ckpt).resolve()),
                                   device="cuda" if gpus_per_worker else "cpu")
            report = tokenize_on_ray(store, encoder, make_encoder, ray, workers, gpus_per_worker, **options)
        else:
            report = tokenize_store(store, encoder, **options)
    finally:
        if task is not None:
            bar.stop()
    shape = "x".join(map(str, encoder.latent_shape))
    if report.already_done:
        stderr.print(f"{store}: already holds latents of this checkpoint ({encoder.checkpoint_hash}); nothing to do",
                     highlight=False, soft_wrap=True)
        return
    resumed = f", resumed after {report.resumed_from} finished episodes" if report.resumed_from else ""
    stderr.print(f"{store}: {report.frames} frames of {report.episodes} episodes → {report.path} ({shape} float16) "
                 f"in {report.seconds:.1f} s ({report.frames_per_second:.0f} frames/s){resumed}; checkpoint "
                 f"{encoder.checkpoint_hash}", highlight=False, soft_wrap=True)
