"""``dreamer-train play``: serve a local page to play inside a world model (thin: flags, the URL line and one-line
errors; the work is in ``dreamer_model.play``)."""

from __future__ import annotations

from typing import Optional

import typer

from .common import DEBUG, DEVICE, SEED, report_errors, stderr

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def play_command(
    ckpt: str = typer.Option(..., "--ckpt", help="Phase-1 run directory or checkpoint file (the world model)."),
    data: Optional[str] = typer.Option(None, "--data", help="Store to take real contexts from (default: the one "
                                                            "the world model was trained on); needs its latents."),
    episode: Optional[str] = typer.Option(None, "--episode", help="Episode id to start in (default: the first "
                                                                  "held-out one, else the store's first)."),
    start: int = typer.Option(0, "--start", min=0, help="Episode frame where the real context starts."),
    context: Optional[int] = typer.Option(None, "--context", min=1, help="Real frames given as context "
                                                                         "(default: the world model's context)."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Denoising steps K per frame (default: the "
                                                                     "model's, 4)."),
    fps: Optional[float] = typer.Option(None, "--fps", min=0.1, help="Tick rate (default: the store's frames/s)."),
    port: int = typer.Option(8765, "--port", min=0, max=65535, help="Port to serve on (0: any free port)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (default: this machine only)."),
    out: Optional[str] = typer.Option(None, "--out", help="Folder that also keeps each recording (default: "
                                                          "recordings are only downloaded, nothing is written)."),
    seed: int = SEED, device: str = DEVICE, debug: bool = DEBUG,
) -> None:
    """Play inside the world model: a local web page driven by the keyboard and mouse."""
    from dreamer_model.errors import ModelError
    from dreamer_model.play import PlayOptions, PlaySession, bind, load_world, serve
    from dreamer_model.train.distributed import pick_device

    world = load_world(ckpt, data, pick_device(device))
    context = context or world.model.cfg.context
    playable = [e["id"] for e in world.episodes(context)]
    episode = episode or next((e for e in world.heldout if e in playable), playable[0] if playable else None)
    if episode is None:
        raise ModelError(f"{world.store}: no episode has {context} frames for a context")
    PlaySession(world, context, steps, seed).begin(episode, start)  # bad episode, start or K: fail before serving
    options = PlayOptions(episode, start, context, steps, seed, fps, out)
    sock = bind(host, port)
    if host not in LOCAL_HOSTS:
        stderr.print(f"[yellow]warning:[/] serving on {host}: anyone who can reach this address can use the page "
                     f"(and this machine's CPU/GPU)", highlight=False, soft_wrap=True)
    where = sock.getsockname()
    shown = f"[{where[0]}]" if ":" in where[0] else where[0]
    stderr.print(f"playing {world.checkpoint} (step {world.step}) in {world.store}, {episode} from frame {start}: "
                 f"http://{shown}:{where[1]}/ (Ctrl-C to stop)", highlight=False, soft_wrap=True)
    try:
        serve(world, options, sock)
    except KeyboardInterrupt:  # Ctrl-C is how the page is closed: not an error
        stderr.print("dreamer-train play: stopped", highlight=False)


def register(app: typer.Typer) -> None:
    """Add play to ``dreamer-train``."""
    app.command("play")(report_errors("dreamer-train play")(play_command))
