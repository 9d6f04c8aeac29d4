"""Does the world model keep the ball? Object cell recall of imagined MinAtar frames h steps ahead.

    python benchmarks/bench_imagined_objects.py STORE --wm RUN [--rollouts 12] [--context 8] [--frames 16]
                                                [--steps K] [--tau-ctx 0.9]

Runs ``dreamer-train rollout``'s own code (``rollout_video`` with ``.npz`` output, recorded actions, the
world model's default K) from evenly spaced starts in the world model's held-out episodes (never trained
on), and scores every imagined frame h steps after the context against the store's lossless grid, per
object class (``dreamer_model/eval/objects.py``), pooled over rollouts; the tokenizer's reconstruction of
the same frames is the ceiling. Issue 16's targets: ball drawn in the right cell ≥ 95 % one step ahead,
≥ 80 % four steps ahead.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import zarr

from dreamer_data.store.manifest import load_manifest
from dreamer_model.eval.objects import GRID_FIELD, CellCounts
from dreamer_model.checkpoint import load_store_tokenizer, load_world_model
from dreamer_model.rollout import rollout_video

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.published import publish  # noqa: E402

HORIZONS = (1, 2, 4, 8, 16)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store")
    parser.add_argument("--wm", required=True, help="phase-1 run (or checkpoint)")
    parser.add_argument("--rollouts", type=int, default=12)
    parser.add_argument("--context", type=int, default=8)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None, help="K denoising steps per frame (default: the model's)")
    parser.add_argument("--tau-ctx", type=float, default=None, help="signal level context is re-noised to")
    parser.add_argument("--results", default=None, help="markdown file to write")
    args = parser.parse_args()
    torch.set_num_threads(1)

    manifest = load_manifest(args.store)
    observation = manifest["observation"]
    grids = zarr.open_group(args.store, mode="r")[f"data/{GRID_FIELD}"]
    model, state = load_world_model(args.wm)
    if args.tau_ctx is not None:
        model.cfg.tau_ctx = args.tau_ctx  # the Sampler reads it from the model's config
    tokenizer = load_store_tokenizer(args.store)
    lengths = {e["id"]: e["length"] for e in manifest["episodes"]}
    window = args.context + args.frames
    heldout = [e for e in (state.get("data") or {}).get("heldout", []) if lengths.get(e, 0) >= window]
    if not heldout:
        sys.exit(f"{args.wm}: no held-out episode of {window} frames or more in {args.store}")
    starts = [(episode, start) for episode in heldout
              for start in np.linspace(0, lengths[episode] - window, max(1, args.rollouts // len(heldout))).astype(int)]
    ahead = {h: CellCounts.for_observation(observation) for h in HORIZONS if h <= args.frames}
    ceiling = CellCounts.for_observation(observation)
    with tempfile.TemporaryDirectory() as tmp:
        for i, (episode, start) in enumerate(starts):
            out = Path(tmp) / f"{i}.npz"
            rollout_video(model, tokenizer, args.store, episode, out, args.context, args.frames, start=int(start),
                          steps=args.steps, seed=args.seed + i)
            panels = np.load(out)
            rows = panels["rows"]  # consecutive store rows of the window
            truth = grids[int(rows[0]):int(rows[-1]) + 1]  # (T, 10, 10, C)
            for h, cells in ahead.items():
                t = args.context + h - 1
                cells.add(panels["imagined"][t:t + 1], truth[t:t + 1])
            ceiling.add(panels["tokenizer"][args.context:], truth[args.context:])

    channels = list(ceiling.rates())
    sampler = f"K = {args.steps or model.cfg.sample_steps}, τ_ctx = {model.cfg.tau_ctx}"
    lines = [f"World model `{state['path']}` (step {state['step']}, {sampler}) on `{args.store}`: {len(starts)} rollouts from "
             f"{len(heldout)} held-out episodes, {args.context} real frames of context, recorded actions; "
             "cell recall / precision of the imagined frame h steps ahead, pooled over rollouts.", "",
             "| frames | " + " | ".join(channels) + " |", "|---|" + "---|" * len(channels)]
    rows = [("tokenizer reconstruction (ceiling)", ceiling.rates())]
    rows += [(f"imagined, {h} step{'s' * (h > 1)} ahead", cells.rates()) for h, cells in ahead.items()]
    for name, rates in rows:
        lines.append(f"| {name} | " + " | ".join(f"{rates[c]['recall']:.2f} / {rates[c]['precision']:.2f}"
                                                for c in channels) + " |")
    publish(lines, args.results)


if __name__ == "__main__":
    main()
