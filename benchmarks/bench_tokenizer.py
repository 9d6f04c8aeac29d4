"""Tokenizer evidence: held-out PSNR after a fixed CPU budget, training and tokenize throughput.

    python benchmarks/bench_tokenizer.py --store STORE --work DIR [--cpu-minutes 40] [--threads 1]

The budget is CPU time of the training process (40 core-minutes = 20 minutes on 2 cores), not
wall-clock: the benchmark machine is shared with other jobs, which stretch wall-clock arbitrarily
(and make multi-threaded OpenMP spin), while CPU seconds per step stay put. Both are reported.

1. Calibrate: a short run measures CPU seconds per step.
2. Train the tiny preset for the step count that fills the budget (cosine decay to the last step),
   through ``dreamer-train tokenizer``'s own trainer; CPU time, wall-clock and steps as measured.
3. Held-out PSNR (unmasked) over non-overlapping windows of the held-out episodes, against two
   baselines computed in the same script: the untrained tokenizer and the mean training frame.
   Where the store holds ground truth (MinAtar's grid, Crafter's tile ids), also each object class's
   recall and precision, of the reconstructions and of the real frames (``eval/fidelity.py``).
4. ``dreamer-data tokenize`` throughput (frames/s) at two batch sizes on a copy of the store.
5. The reconstruction grid (original / masked input / masked reconstruction / unmasked) → docs/.

Writes a markdown table to benchmarks/results/tokenizer.md (and a JSON beside the run).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmarks.published import cpu_model  # noqa: E402


def heldout_psnr(model, store: str, train_ids: list[str], heldout: list[str], context: int, max_windows: int
                 ) -> tuple[float, int, dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """Mean per-frame PSNR of unmasked reconstructions over non-overlapping held-out windows; where the store
    holds ground truth (MinAtar grid, Crafter tile ids) each object class's recall / precision of the
    reconstructions and of the real frames themselves (the reader's ceiling; ``eval/fidelity.py``)."""
    from dreamer_data import WindowDataset
    from dreamer_model.eval.fidelity import object_scorer
    from dreamer_model.tokenizer.loss import psnr

    drawn, real = object_scorer(store, fit_episodes=train_ids), object_scorer(store, fit_episodes=train_ids)
    truth_fields = list(drawn.truth_fields) if drawn is not None else []
    data = WindowDataset(store, length=context, stride=context, load=["frames", *truth_fields], episodes=heldout)
    picks = np.unique(np.linspace(0, len(data) - 1, min(max_windows, len(data))).round().astype(int))
    values = []
    model.eval()
    with torch.no_grad():
        for chunk in np.array_split(picks, max(1, len(picks) // 16)):
            items = [data[int(i)] for i in chunk]
            frames = torch.stack([item["frames"] for item in items])
            recon, _ = model(frames)
            mse = ((recon - frames.float() / 255.0) ** 2).mean(dim=(2, 3, 4)).flatten()
            values += [psnr(float(m)) for m in mse]
            if drawn is not None:
                truth = {name: torch.stack([item[name] for item in items]).flatten(0, 1).numpy() for name in truth_fields}
                drawn.add(recon.flatten(0, 1).numpy() * 255.0, truth)
                real.add(frames.flatten(0, 1).numpy(), truth)
    rates = (drawn.rates(), real.rates()) if drawn is not None else ({}, {})
    return float(np.mean(values)), len(values), *rates


def mean_frame_psnr(store: str, train_ids: list[str], heldout: list[str], context: int, max_windows: int) -> float:
    """Baseline: every held-out frame 'reconstructed' as the mean training frame."""
    from dreamer_data import WindowDataset
    from dreamer_model.tokenizer.loss import psnr

    train = WindowDataset(store, length=1, stride=7, load="frames", episodes=train_ids)
    sample = np.linspace(0, len(train) - 1, min(2000, len(train))).round().astype(int)
    mean = torch.stack([train[int(i)]["frames"][0].float() / 255.0 for i in sample]).mean(0)
    data = WindowDataset(store, length=context, stride=context, load="frames", episodes=heldout)
    picks = np.unique(np.linspace(0, len(data) - 1, min(max_windows, len(data))).round().astype(int))
    values = [psnr(float(((data[int(i)]["frames"][t].float() / 255.0 - mean) ** 2).mean()))
              for i in picks for t in range(context)]
    return float(np.mean(values))


def train_run(store: str, out: Path, config: Path, steps: int, seed: int) -> tuple[dict, float, float]:
    """Train; return (result, CPU seconds, wall-clock seconds)."""
    from dreamer_model.train.tokenizer import TokenizerTrainOptions, train_tokenizer

    began, began_cpu = time.perf_counter(), time.process_time()
    result = train_tokenizer(TokenizerTrainOptions(data=store, out=str(out), preset="tiny", steps=steps,
                                                   config=str(config), lpips_weight=0.0, seed=seed, device="cpu"))
    return result, time.process_time() - began_cpu, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--work", required=True, help="Scratch directory for runs and a store copy.")
    parser.add_argument("--cpu-minutes", type=float, default=40.0, help="Training budget in CPU minutes.")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-windows", type=int, default=1024)
    parser.add_argument("--results", default=str(REPO / "benchmarks" / "results" / "tokenizer.md"))
    parser.add_argument("--grid", default=str(REPO / "docs" / "tokenizer_crafter_reconstructions.png"))
    parser.add_argument("--focal-gamma", type=float, default=None,
                        help="tokenizer.focal_gamma for both runs (default: the tiny preset's, 0 = the paper's MSE)")
    parser.add_argument("--no-tokenize", action="store_true", help="Skip step 4 (tokenize throughput).")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)

    from dreamer_data.tokenize import tokenize_store
    from dreamer_data.store.reader import StoreReader
    from dreamer_model.presets import preset as stage_preset
    from dreamer_model.tokenizer import Tokenizer
    from dreamer_model.tokenizer.frame_encoder import TokenizerFrameEncoder
    from dreamer_model.checkpoint import load_checkpoint
    from dreamer_model.train.logging import read_metrics
    from dreamer_model.train.trainer import split_episodes

    preset = stage_preset("tokenizer", "tiny")
    reader = StoreReader(args.store)
    ids = [e["id"] for e in reader.episodes]
    train_ids, heldout = split_episodes(ids, preset.train.heldout_episodes, args.store)
    context = preset.tokenizer.context

    # 1. calibrate CPU seconds per step (same config, own run directories): the difference of a short and
    #    a longer probe, so start-up (store index, held-out frames, model construction) cancels out
    probe_config = work / "probe.yaml"
    objective = {"tokenizer": {"focal_gamma": args.focal_gamma}} if args.focal_gamma is not None else {}
    probe_config.write_text(yaml.safe_dump({**objective, "train": {"eval_every": 10_000, "checkpoint_every": 10_000,
                                                                   "threads": args.threads}}))
    probe_cpu = {}
    for probe_steps in (20, 100):
        shutil.rmtree(work / f"probe-{probe_steps}", ignore_errors=True)
        _, probe_cpu[probe_steps], _ = train_run(args.store, work / f"probe-{probe_steps}", probe_config,
                                                 probe_steps, args.seed)
    per_step = (probe_cpu[100] - probe_cpu[20]) / 80
    startup = max(0.0, probe_cpu[20] - 20 * per_step)
    steps = max(100, int((args.cpu_minutes * 60 - startup) / per_step))

    # 2. the budgeted run: cosine decay over exactly the steps that fit the budget
    config = work / "tiny-budget.yaml"
    config.write_text(yaml.safe_dump({**objective, "train": {"decay_steps": steps - preset.train.warmup, "eval_every": 500,
                                                "checkpoint_every": 500, "log_every": 25, "threads": args.threads}}))
    run = work / "run"
    shutil.rmtree(run, ignore_errors=True)
    result, cpu_seconds, seconds = train_run(args.store, run, config, steps, args.seed)
    train_lines = [m for m in read_metrics(run) if m["split"] == "train"]
    curve = [(m["step"], m["psnr"], m["psnr_masked"]) for m in read_metrics(run) if m["split"] == "heldout"]
    frames_per_s = float(np.median([m["frames_per_s"] for m in train_lines[1:]]))

    # 3. held-out PSNR of the trained model vs baselines
    state = load_checkpoint(run, "tokenizer")
    model = Tokenizer(preset.tokenizer)
    model.load_state_dict(state["model"])
    trained, n_frames, objects, ceiling = heldout_psnr(model, args.store, train_ids, heldout, context,
                                                       args.eval_windows)
    torch.manual_seed(args.seed)
    untrained = heldout_psnr(Tokenizer(preset.tokenizer), args.store, train_ids, heldout, context,
                             args.eval_windows)[0]
    mean_frame = mean_frame_psnr(args.store, train_ids, heldout, context, args.eval_windows)

    # 4. tokenize throughput on a copy of the store
    tokenize_rows = []
    for batch in () if args.no_tokenize else (64, 256):
        copy = work / f"store-copy-{batch}"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(args.store, copy)
        encoder = TokenizerFrameEncoder.from_checkpoint(run, "cpu")
        report = tokenize_store(str(copy), encoder, batch_frames=batch)
        tokenize_rows.append((batch, report.frames, report.seconds, report.frames_per_second))

    # 5. the reconstruction grid of the last evaluation
    grid = Path(args.grid)
    grid.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run / "samples" / "latest.png", grid)

    summary = {
        "store": args.store, "episodes": len(ids), "frames": reader.total_frames, "heldout_episodes": len(heldout),
        "steps": steps, "train_cpu_seconds": cpu_seconds, "train_seconds": seconds,
        "cpu_seconds_per_step_calibration": per_step,
        "train_frames_per_s": frames_per_s, "frames_seen": steps * preset.train.batch * context,
        "heldout_psnr": trained, "heldout_frames": n_frames, "heldout_objects": objects, "heldout_objects_real_frames": ceiling, "untrained_psnr": untrained,
        "mean_frame_psnr": mean_frame, "trainer_eval_psnr": result.get("psnr"),
        "tokenize": [{"batch": b, "frames": f, "seconds": s, "frames_per_s": r} for b, f, s, r in tokenize_rows],
        "psnr_curve": [{"step": a, "psnr": b, "psnr_masked": c} for a, b, c in curve],
        "threads": args.threads, "machine": cpu_model(),
        "torch": torch.__version__, "parameters": sum(p.numel() for p in model.parameters()),
    }
    (work / "bench_tokenizer.json").write_text(json.dumps(summary, indent=1))
    command = " ".join(["python", "benchmarks/bench_tokenizer.py", *sys.argv[1:]])
    lines = [
        "# Tokenizer benchmark (tiny preset, Crafter 64x64)",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {summary['machine']} ({os.cpu_count()} logical CPUs, torch {torch.__version__}); "
        f"{args.threads} torch thread(s), the other core busy with an unrelated job. Budget: {args.cpu_minutes:g} "
        f"CPU-minutes of the training process; the step count was calibrated on CPU time at the start "
        f"({per_step:.3f} CPU-s/step).",
        f"Store: {len(ids)} Crafter episodes, {reader.total_frames} frames; {len(heldout)} held-out episodes "
        f"(hash split by id, never trained on). LPIPS weight 0 (no pretrained AlexNet weights on this machine; "
        f"the MSE term alone, running-RMS normalised).",
        "",
        "| measure | value |",
        "| --- | --- |",
        f"| model | tiny tokenizer, {summary['parameters'] / 1e6:.2f} M parameters, 16×32 latents per 64×64 frame |",
        f"| pixel loss | MSE, focal γ = {args.focal_gamma if args.focal_gamma is not None else preset.tokenizer.focal_gamma:g} "
        f"(0: the paper's plain MSE) |",
        f"| training | {steps} steps × {preset.train.batch} windows × {context} frames = "
        f"{summary['frames_seen']:,} frames; {cpu_seconds / 60:.1f} CPU-min, {seconds / 60:.1f} min wall-clock |",
        f"| training throughput, CPU time | {summary['frames_seen'] / cpu_seconds:.0f} frames per CPU-second |",
        f"| training throughput, wall-clock | {frames_per_s:.0f} frames/s (median over logging intervals, shared CPU) |",
        f"| **held-out PSNR, unmasked** | **{trained:.2f} dB** over {n_frames} frames |",
        *[f"| {name}: held-out recall / precision (real frames: {ceiling[name]['recall']:.3f} / "
          f"{ceiling[name]['precision']:.3f}) | {rate['recall']:.3f} / {rate['precision']:.3f} "
          f"({rate.get('cells', rate.get('tiles'))} {'cells' if 'cells' in rate else 'tiles'}) |"
          for name, rate in objects.items()],
        f"| baseline: untrained tokenizer | {untrained:.2f} dB |",
        f"| baseline: mean training frame | {mean_frame:.2f} dB |",
        *[f"| tokenize throughput, batch {b} | {r:.0f} frames/s ({f} frames in {s:.1f} s) |"
          for b, f, s, r in tokenize_rows],
        "| MFU | not measured: no GPU was lent to this task (CPU only) |",
        "",
        f"Target ≥ 30 dB held-out PSNR: **{'met' if trained >= 30 else 'missed'}** ({trained:.2f} dB).",
        "",
        "Held-out PSNR during training (the trainer's own evaluation on "
        f"{preset.train.eval_windows} held-out windows, fixed masks; `RUN/metrics.jsonl`):",
        "",
        "| step | PSNR unmasked (dB) | PSNR masked input (dB) |",
        "| --- | --- | --- |",
        *[f"| {a} | {b:.2f} | {c:.2f} |" for a, b, c in curve],
        "",
        f"Reconstructions of held-out frames (rows: original, masked input, reconstruction from the masked "
        f"input, reconstruction from all patches): `{grid.relative_to(REPO) if grid.is_relative_to(REPO) else grid}`.",
        "",
    ]
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
