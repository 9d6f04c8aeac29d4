"""One world model, several sampler settings: is the ball in the right cell h steps into imagination?

    python benchmarks/bench_wm_settings.py STORE --wm RUN_OR_CKPT [--per-episode 30] [--settings 4:0.9,64:0.9]
        [--constant-action A]

``bench_imagined_objects.py`` goes through ``dreamer-train rollout`` one window at a time; this batches all
held-out windows (``--per-episode`` evenly spaced starts of 8 real + 16 imagined frames in each of the run's
held-out episodes) through ``Sampler.generate`` once per setting ``K:tau_ctx`` (K denoising steps per frame,
the signal level context is re-noised to), with the same noise for every setting, and scores the decoded
frames against the store's grid (``eval/objects.py``). Use it to tell a sampler problem (K = 64 or another
τ_ctx would draw the ball) from a training problem (no setting does), and to score checkpoints of one run.
``--constant-action A`` feeds action A instead of the recorded ones; with the column "paddle moved h=1" (the
paddle's recall in the windows where it moves, which only the action decides) it tells whether the action is read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import zarr

from dreamer_data.store.manifest import load_manifest
from dreamer_model.checkpoint import load_store_tokenizer, load_world_model
from dreamer_model.dynamics import Sampler
from dreamer_model.eval.objects import GRID_FIELD, CellCounts
from dreamer_model.rollout import read_episode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.published import publish  # noqa: E402

HORIZONS = (1, 4, 16)
CONTEXT, FRAMES = 8, 16


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store")
    parser.add_argument("--wm", required=True, help="phase-1 run or checkpoint file")
    parser.add_argument("--per-episode", type=int, default=30)
    parser.add_argument("--settings", default="4:0.9", help="comma-separated K:tau_ctx")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", default=None, help="markdown file to write")
    parser.add_argument("--constant-action", type=int, default=None, metavar="A",
                        help="feed action A (every field) instead of the recorded ones: is the action read at all?")
    args = parser.parse_args()
    torch.set_num_threads(1)

    manifest = load_manifest(args.store)
    grids = zarr.open_group(args.store, mode="r")[f"data/{GRID_FIELD}"]
    model, state = load_world_model(args.wm)
    tokenizer = load_store_tokenizer(args.store)
    lengths = {e["id"]: e["length"] for e in manifest["episodes"]}
    window = CONTEXT + FRAMES
    episodes = [read_episode(args.store, e, window, int(start), model.action_fields)
                for e in state["data"]["heldout"] if lengths[e] >= window
                for start in np.linspace(0, lengths[e] - window, args.per_episode).astype(int)]
    if not episodes:
        sys.exit(f"{args.wm}: no held-out episode of {window} frames or more in {args.store}")
    latents = torch.cat([e.latents for e in episodes])  # (B, T, S_z, D_z)
    action_in = {k: torch.cat([e.action_in[k] for e in episodes]) for k in episodes[0].action_in}
    has_action_in = torch.cat([e.has_action_in for e in episodes])
    if args.constant_action is not None:
        action_in = {k: torch.full_like(v, args.constant_action) for k, v in action_in.items()}
    truth = np.stack([grids[int(e.rows[0]):int(e.rows[-1]) + 1] for e in episodes])  # (B, T, 10, 10, C)

    def decoded(z: torch.Tensor) -> np.ndarray:  # (B, H, S_z, D_z) → (B, H, h, w, 3) uint8, frame by frame
        with torch.no_grad():
            frames = tokenizer.decode(z.reshape(-1, 1, *z.shape[2:]))
        return (frames.clamp(0, 1) * 255).round().byte().reshape(*z.shape[:2], *frames.shape[2:]).numpy()

    # windows whose paddle moves between the last context frame and the first imagined one: only the action says where
    paddle = manifest["observation"]["grid_channels"].index("paddle")
    moved = (truth[:, CONTEXT - 1, ..., paddle] != truth[:, CONTEXT, ..., paddle]).any(axis=(1, 2))  # (B,)

    def rates(frames: np.ndarray, grid: np.ndarray) -> dict:
        cells = CellCounts.for_observation(manifest["observation"])
        cells.add(frames, grid)
        return cells.rates()

    channels = ("ball", "paddle", "trail", "brick")
    head = " | ".join(f"{c} h={h}" for c in channels[:2] for h in HORIZONS)
    lines = [f"World model `{args.wm}` (step {state['step']}) on `{args.store}`: {len(episodes)} held-out windows, "
             f"{CONTEXT} real frames of context, "
             f"{'recorded actions' if args.constant_action is None else f'action {args.constant_action} throughout'}; cell recall of the imagined frame h steps ahead.",
             f"The paddle moved one step ahead in {int(moved.sum())} of them (column 'paddle moved h=1').",
             "", f"| K : τ_ctx | {head} | paddle moved h=1 | trail h=1 | brick h=16 | latent MSE h=1 |",
             "|---|" + "---|" * 10]
    real = decoded(latents[:, CONTEXT:])  # the tokenizer's reconstruction of the frames to imagine
    ceiling = rates(real.reshape(-1, *real.shape[2:]), truth[:, CONTEXT:].reshape(-1, *truth.shape[2:]))
    for setting in args.settings.split(","):
        steps, tau_ctx = setting.split(":")
        sampler = Sampler(model, steps=int(steps), tau_ctx=float(tau_ctx))
        with torch.no_grad():
            predicted = sampler.generate(latents[:, :CONTEXT], action_in, has_action_in, FRAMES,
                                         torch.Generator().manual_seed(args.seed))
        frames = decoded(predicted)
        ahead = {h: rates(frames[:, h - 1], truth[:, CONTEXT + h - 1]) for h in HORIZONS}
        mse = float(((predicted[:, 0] - latents[:, CONTEXT]) ** 2).mean())
        lines.append(f"| {steps} : {tau_ctx} | " + " | ".join(f"{ahead[h][c]['recall']:.2f}" for c in channels[:2]
                                                             for h in HORIZONS)
                     + f" | {rates(frames[moved, 0], truth[moved, CONTEXT])['paddle']['recall']:.2f}"
                     + f" | {ahead[1]['trail']['recall']:.2f} | {ahead[16]['brick']['recall']:.2f} | {mse:.4f} |")
    lines.append(f"| tokenizer reconstruction (ceiling) | {ceiling['ball']['recall']:.2f} (all h) | | | "
                 f"{ceiling['paddle']['recall']:.2f} | | | | {ceiling['trail']['recall']:.2f} | "
                 f"{ceiling['brick']['recall']:.2f} | |")
    publish(lines, args.results)


if __name__ == "__main__":
    main()
