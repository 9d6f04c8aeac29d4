"""Are a MinAtar store's latents predictable one step ahead? An MLP regressor against the world model.

    python benchmarks/probe_latent_dynamics.py STORE --wm RUN [--steps 2000] [--hidden 512]

An MLP (two hidden layers) reads the cached latents of frames t − 1 and t − 2 and the action taken at t − 1,
and regresses the latents of frame t (plain MSE, batch 128, AdamW 1e-3). Trained on the world model's
training episodes, scored on its held-out ones: the predicted latents are decoded by the store's tokenizer
and scored cell by cell against the store's grid (``eval/objects.py``), as ``bench_imagined_objects.py``
scores the world model's one-step prediction. If this MLP puts the ball in the right cell and the world
model does not, the latents hold the dynamics and the loss is in the world model's training, not the tokenizer.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import zarr

from dreamer_data.store.manifest import load_manifest
from dreamer_model.checkpoint import WORLD_MODEL, load_checkpoint, load_store_tokenizer
from dreamer_model.eval.objects import GRID_FIELD, CellCounts

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.published import publish  # noqa: E402


def targets(manifest: dict, heldout: set[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Store rows with two earlier frames in the same episode: (training rows, held-out rows)."""
    train, test = [], []
    for e in manifest["episodes"]:
        rows = range(e["start"] + 2, e["start"] + e["length"])
        (test if e["id"] in heldout else train).extend(rows)
    return torch.tensor(train), torch.tensor(test)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store")
    parser.add_argument("--wm", required=True, help="phase-1 run whose held-out episodes are scored")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", default=None, help="markdown file to write")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)

    manifest = load_manifest(args.store)
    group = zarr.open_group(args.store, mode="r")
    latents = torch.from_numpy(group["data/latents"][:].astype(np.float32))  # (N, S_z, D_z)
    field = next(iter(manifest["actions"]))
    size = manifest["actions"][field]["size"]
    actions = torch.from_numpy(group[f"data/actions/{field}"][:]).long()  # (N,)
    grids = group[f"data/{GRID_FIELD}"][:]
    heldout = set(load_checkpoint(args.wm, WORLD_MODEL)["data"]["heldout"])
    train, test = targets(manifest, heldout)
    width = latents[0].numel()

    def inputs(rows: torch.Tensor) -> torch.Tensor:  # (n,) target rows → (n, 2·S_z·D_z + actions)
        return torch.cat((latents[rows - 1].flatten(1), latents[rows - 2].flatten(1),
                          torch.nn.functional.one_hot(actions[rows - 1], size).float()), dim=1)

    net = torch.nn.Sequential(torch.nn.Linear(2 * width + size, args.hidden), torch.nn.GELU(),
                              torch.nn.Linear(args.hidden, args.hidden), torch.nn.GELU(),
                              torch.nn.Linear(args.hidden, width))
    optimizer = torch.optim.AdamW(net.parameters(), 1e-3)
    tokenizer = load_store_tokenizer(args.store)
    lines = [f"MLP one-step latent regressor on `{args.store}` (frames t − 1, t − 2 and the action → frame t), "
             f"{len(train)} training rows, {len(test)} held-out rows of the episodes `{args.wm}` held out; "
             "cell recall of the decoded prediction.", "",
             "| steps | seconds | latent MSE | ball | paddle | trail | brick |", "|---|---|---|---|---|---|---|"]
    start = time.time()
    checkpoints = sorted({args.steps // 4, args.steps // 2, args.steps})
    for step in range(1, args.steps + 1):
        rows = train[torch.randint(len(train), (128,))]
        loss = ((net(inputs(rows)) - latents[rows].flatten(1)) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step in checkpoints:
            with torch.no_grad():
                predicted = net(inputs(test)).reshape(-1, 1, *latents.shape[1:])
                frames = (tokenizer.decode(predicted).clamp(0, 1) * 255).round().byte()[:, 0].numpy()
            cells = CellCounts.for_observation(manifest["observation"])
            cells.add(frames, grids[test.numpy()])
            rates = cells.rates()
            mse = float(((predicted[:, 0] - latents[test]) ** 2).mean())
            lines.append(f"| {step} | {time.time() - start:.0f} | {mse:.4f} | "
                         + " | ".join(f"{rates[c]['recall']:.2f}" for c in ("ball", "paddle", "trail", "brick")) + " |")
    publish(lines, args.results)


if __name__ == "__main__":
    main()
