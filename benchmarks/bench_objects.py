"""Does the tokenizer draw breakout's one-cell ball? Tokenizer objectives compared by object recall, not PSNR.

    python benchmarks/bench_objects.py --work DIR [--steps 4000] [--variant NAME=KEY=VALUE,KEY=VALUE ...]

Collects (once, into DIR) the quickstart's data: 60 noisy-scripted breakout episodes (seed 0, ≤ 1000 steps)
for training and 20 more (seed 7) for scoring, both ingested at 20x20 in the vivid palette. Each variant
trains the quickstart's tokenizer config (``dreamer_model.quickstart.configs``) with its overrides for the
same number of steps, one torch thread, through ``dreamer-train tokenizer``'s trainer; then every frame
of the scoring store is reconstructed and scored against the store's lossless grid: PSNR and, per object
class, cell recall and precision (``dreamer_model/eval/objects.py``). The first variant is the baseline of
the ratios. Writes a markdown table (``--results``) and ``DIR/objects.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml
import zarr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.published import publish  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VARIANTS = [
    "plain-8=tokenizer.focal_gamma=0,tokenizer.latent_tokens=8",
    "focal-8=tokenizer.focal_gamma=1,tokenizer.latent_tokens=8",
    "focal-16=tokenizer.focal_gamma=1,tokenizer.latent_tokens=16",
    "plain-16=tokenizer.focal_gamma=0,tokenizer.latent_tokens=16",
]


def make_store(work: Path, name: str, seed: int, episodes: int) -> str:
    from dreamer_data.collect.collector import CollectConfig, collect
    from dreamer_data.ingest import IngestPlan, ingest
    from dreamer_data.sources import ReadOptions, source_class
    from dreamer_model.quickstart import MINATAR_SIZE

    store = work / f"store-{name}"
    if not (store / "manifest.json").exists():
        collect(CollectConfig("minatar", "noisy-scripted", seed=seed, game="breakout", max_steps=1000),
                work / f"raw-{name}", episodes)
        source = source_class("minatar")(str(work / f"raw-{name}"), ReadOptions(resolution=(MINATAR_SIZE, MINATAR_SIZE)))
        ingest(source, str(store), IngestPlan(workers=0))
    return str(store)


def train(store: str, out: Path, overrides: list[str], steps: int, seed: int) -> tuple[torch.nn.Module, float]:
    from dreamer_model.quickstart import configs
    from dreamer_model.train.tokenizer import TokenizerTrainer, TokenizerTrainOptions

    config = configs("minatar", cpu=True)["tokenizer"]
    config["train"].update(eval_every=10 ** 9, checkpoint_every=10 ** 9, log_every=100)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    (out / "base.yaml").write_text(yaml.safe_dump(config))
    began = time.process_time()
    trainer = TokenizerTrainer(TokenizerTrainOptions(data=store, out=str(out / "run"), preset="quickstart",
                                                     config=str(out / "base.yaml"), sets=overrides, steps=steps,
                                                     seed=seed, device="cpu"))
    try:
        trainer.fit()
    finally:
        trainer.close()
    return trainer.model.eval(), time.process_time() - began


@torch.no_grad()
def score(model: torch.nn.Module, store: str) -> dict:
    from dreamer_data.store.manifest import load_manifest
    from dreamer_model.eval.objects import GRID_FIELD, CellCounts

    group = zarr.open_group(store, mode="r")
    frames, grids = group["data/frames"][:], group[f"data/{GRID_FIELD}"][:]
    cells = CellCounts.for_observation(load_manifest(store)["observation"])
    psnr = []
    for first in range(0, len(frames), 500):
        chunk = frames[first:first + 500]
        recon = model(torch.from_numpy(chunk)[:, None])[0][:, 0].numpy()  # (n, H, W, 3) in [0, 1]
        mse = ((recon - chunk / 255.0) ** 2).mean(axis=(1, 2, 3))
        psnr += (-10 * np.log10(np.maximum(mse, 1e-10))).tolist()
        cells.add(recon * 255.0, grids[first:first + 500])
    return {"psnr": float(np.mean(psnr)), "frames": len(frames), "objects": cells.rates()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True)
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variant", action="append", help="NAME=KEY=VALUE[,KEY=VALUE…] (default: four variants)")
    parser.add_argument("--results", default=None, help="markdown file to write")
    args = parser.parse_args()
    torch.set_num_threads(1)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    train_store, score_store = make_store(work, "train", 0, 60), make_store(work, "score", 7, 20)
    rows = []
    for variant in args.variant or DEFAULT_VARIANTS:
        name, _, sets = variant.partition("=")
        overrides = [s for s in sets.split(",") if s]
        model, cpu_seconds = train(train_store, work / name, overrides, args.steps, args.seed)
        row = {"name": name, "overrides": overrides, "steps": args.steps, "seed": args.seed,
               "cpu_seconds": cpu_seconds, **score(model, score_store)}
        rows.append(row)
        with open(work / "objects.jsonl", "a") as handle:
            handle.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)

    channels = list(rows[0]["objects"])
    base = rows[0]
    lines = [f"{args.steps} steps each (seed {args.seed}), scored on all {base['frames']:,} frames of 20 unseen episodes; "
             f"recall / precision per object class; CPU seconds of training (1 thread) relative to `{base['name']}`.", "",
             "| variant | overrides | PSNR (dB) | " + " | ".join(channels) + " | CPU time vs first |",
             "|---|---|---|" + "---|" * len(channels) + "---|"]
    for row in rows:
        cells = " | ".join(f"{row['objects'][c]['recall']:.3f} / {row['objects'][c]['precision']:.3f}" for c in channels)
        lines.append(f"| {row['name']} | `{' '.join(row['overrides'])}` | {row['psnr']:.2f} | {cells} | "
                     f"{row['cpu_seconds'] / base['cpu_seconds']:.2f} |")
    publish(lines, args.results)


if __name__ == "__main__":
    main()
