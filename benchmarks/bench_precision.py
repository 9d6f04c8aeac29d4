"""The CPU levers of issue 19 on the quickstart's own stages: bfloat16 autocast (``train.bf16``), intra-op threads
(``train.threads``) and ``torch.compile`` (``train.compile``), as steps per second of each trainer and as what a
run learns in an equal number of steps.

    python benchmarks/bench_precision.py --quickstart DIR [--rounds 5] [--steps 10] [--quality-steps 600]

``DIR`` is a finished ``dreamer-train quickstart`` run (any ``--minutes``): its store, latents, world model and
BC agent are the inputs; nothing in it is changed.

1. Speed: for each stage (tokenizer, phase 1, 2, 3) one trainer per variant is built in this process on the
   quickstart's config, then timed in interleaved rounds (the variants' order alternates each round, so load
   from other jobs falls on all of them): ``--steps`` training steps per round after one warm-up step; the
   table gives each variant's median seconds per step and its speed-up over the baseline (float32, one
   thread: the quickstart's setting before this benchmark), as the median of per-round ratios. Compile's
   one-off cost (the first steps) is reported beside it, with the run length from which it pays off.
2. Quality: the tokenizer and phase 1 trained ``--quality-steps`` steps from the same seed in float32 and in
   bf16; their held-out metrics at the end (PSNR and object recall of the tokenizer, latent MSE of phase 1).

Prints markdown (benchmarks/results/precision.md collects it).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from dreamer_model.train.precision import cpu_has_native_bf16


@dataclass(frozen=True)
class Variant:
    name: str
    bf16: bool
    threads: int
    compile: bool = False

    def sets(self) -> list[str]:
        return [f"train.cpu_bf16={str(self.bf16).lower()}", f"train.threads={self.threads}",
                f"train.compile={str(self.compile).lower()}"]


BASELINE = Variant("float32, 1 thread", bf16=False, threads=1)
VARIANTS = (BASELINE, Variant("float32, 2 threads", bf16=False, threads=2),
            Variant("bf16, 1 thread", bf16=True, threads=1), Variant("bf16, 2 threads", bf16=True, threads=2))


def stage_trainer(stage: str, qs: Path, out: Path, variant: Variant, steps: int):
    """The quickstart's trainer of ``stage`` with ``variant``'s settings on top of its config."""
    common = dict(data=str(qs / "store"), out=str(out), preset="quickstart", steps=steps,
                  config=str(qs / "configs" / f"{stage}.yaml"), sets=variant.sets(), device="cpu")
    if stage == "tokenizer":
        from dreamer_model.train.tokenizer import TokenizerTrainer, TokenizerTrainOptions
        return TokenizerTrainer(TokenizerTrainOptions(**common))
    if stage == "phase1":
        from dreamer_model.train.phase1 import Phase1Trainer, Phase1TrainOptions
        return Phase1Trainer(Phase1TrainOptions(**common))
    if stage == "phase2":
        from dreamer_model.train.phase2 import Phase2Trainer, Phase2TrainOptions
        return Phase2Trainer(Phase2TrainOptions(**common, wm=str(qs / "phase1"), tasks=["reward"]))
    from dreamer_model.train.phase3 import Phase3Trainer, Phase3TrainOptions
    return Phase3Trainer(Phase3TrainOptions(**common, agent=str(qs / "phase2")))


class Timed:
    """One variant's trainer and its batches; ``run(n)`` times n training steps (wall-clock and CPU seconds)."""

    def __init__(self, trainer, variant: Variant):
        self.trainer, self.variant, self.batches = trainer, variant, trainer.batches()

    def run(self, n: int) -> tuple[float, float]:
        torch.set_num_threads(self.variant.threads)
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(n):
            self.trainer.train_step(next(self.batches))
            self.trainer.step += 1
        return time.perf_counter() - wall, time.process_time() - cpu


def interleaved(timed: list[Timed], rounds: int, steps: int) -> dict[str, list[tuple[float, float]]]:
    """(wall, CPU) seconds per step of every variant in each round, the order reversed every other round."""
    per_step: dict[str, list[tuple[float, float]]] = {t.variant.name: [] for t in timed}
    for t in timed:
        t.run(1)  # warm-up: first-call allocations, lazy inits
    for r in range(rounds):
        for t in (timed if r % 2 == 0 else timed[::-1]):
            wall, cpu = t.run(steps)
            per_step[t.variant.name].append((wall / steps, cpu / steps))
    return per_step


def median_ratio(base: list[float], other: list[float]) -> float:
    return statistics.median(b / o for b, o in zip(base, other))


def speed_rows(stage: str, qs: Path, work: Path, rounds: int, steps: int) -> list[str]:
    timed = [Timed(stage_trainer(stage, qs, work / f"{stage}-{i}", v, 10 ** 9), v) for i, v in enumerate(VARIANTS)]
    per_step = interleaved(timed, rounds, steps)
    base_wall, base_cpu = zip(*per_step[BASELINE.name])
    rows = []
    for t in timed:
        wall, cpu = zip(*per_step[t.variant.name])
        cpu_ratio = f"{median_ratio(base_cpu, cpu):.2f}x" if t.variant.threads == BASELINE.threads else "—"
        rows.append(f"| {stage} | {t.variant.name} | {statistics.median(wall):.4f} | {median_ratio(base_wall, wall):.2f}x "
                    f"| {statistics.median(cpu):.4f} | {cpu_ratio} |")
    return rows


def compile_row(stage: str, qs: Path, work: Path, steps: int, rounds: int, threads: int) -> str:
    """Compile's first-steps cost and its steady speed against the same float32 step without it, at ``threads``."""
    plain_variant = Variant(f"float32, {threads} thread(s)", bf16=False, threads=threads)
    compiled_variant = Variant(f"float32 + compile, {threads} thread(s)", bf16=False, threads=threads, compile=True)
    plain = Timed(stage_trainer(stage, qs, work / f"{stage}-plain", plain_variant, 10 ** 9), plain_variant)
    compiled = Timed(stage_trainer(stage, qs, work / f"{stage}-compiled", compiled_variant, 10 ** 9),
                     compiled_variant)
    first_wall, first_cpu = compiled.run(3)  # compiles on the first call (and recompiles per new shape, if any)
    plain_wall, plain_cpu = plain.run(3)
    per_step = interleaved([plain, compiled], rounds, steps)
    plain_wall_s, plain_cpu_s = zip(*per_step[plain_variant.name])
    compiled_wall_s, compiled_cpu_s = zip(*per_step[compiled_variant.name])
    saved = statistics.median(plain_cpu_s) - statistics.median(compiled_cpu_s)  # CPU seconds per step
    overhead = first_cpu - plain_cpu
    pays_after = (f"{overhead / saved:,.0f} steps ({overhead / saved * statistics.median(plain_cpu_s) / 60:.1f} "
                  "CPU-min)" if saved > 0 else "never")
    return (f"| {stage} | {threads} | {median_ratio(plain_wall_s, compiled_wall_s):.2f}x | "
            f"{median_ratio(plain_cpu_s, compiled_cpu_s):.2f}x | {first_wall - plain_wall:.0f} s / {overhead:.0f} s "
            f"| {pays_after} |")


def quality(stage: str, qs: Path, work: Path, steps: int, seed: int, eval_seeds: int = 4) -> dict[str, dict[str, float]]:
    """Held-out metrics after ``steps`` steps from the same seed, float32 vs bf16 (1 thread), each the mean over
    ``eval_seeds`` evaluations (different held-out windows' noise and masks; a single evaluation of phase 1's
    open-loop error moves ~±12 % with its seed)."""
    out = {}
    for variant in (VARIANTS[0], VARIANTS[2]):
        trainer = stage_trainer(stage, qs, work / f"q-{stage}-{variant.bf16}-{seed}", variant, steps)
        trainer.seed = seed
        trainer.run.train.eval_every = steps  # evaluate once, at the end
        trainer.run.train.checkpoint_every = steps
        began = time.perf_counter()
        try:
            trainer.fit()
            minutes = (time.perf_counter() - began) / 60
            evaluations = []
            for eval_seed in range(eval_seeds):
                trainer.seed = 1000 + eval_seed
                evaluations.append(trainer.evaluate())
        finally:
            trainer.close()
        out[variant.name] = {key: statistics.mean(float(e[key]) for e in evaluations) for key in evaluations[0]
                             if all(isinstance(e.get(key), (int, float)) for e in evaluations)}
        out[variant.name]["minutes"] = minutes
    return out


QUALITY_KEYS = {"tokenizer": ("psnr", "recall/ball", "precision/ball", "recall/paddle", "recall/trail"),
                "phase1": ("rollout_mse_1", "copy_mse_1", "flow", "x_mse")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quickstart", required=True, help="A finished `dreamer-train quickstart` run directory.")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="Training steps per variant per round.")
    parser.add_argument("--stages", default="tokenizer,phase1,phase2,phase3")
    parser.add_argument("--compile-stages", default="tokenizer,phase1",
                        help="Stages to time with torch.compile ('' to skip; phases 2-3 call no compiled module).")
    parser.add_argument("--compile-threads", type=int, default=1)
    parser.add_argument("--quality-steps", type=int, default=600, help="0 skips the equal-steps quality part.")
    parser.add_argument("--quality-stages", default="tokenizer,phase1")
    parser.add_argument("--seed", type=int, default=0, help="Training seed of the quality runs.")
    args = parser.parse_args()
    qs = Path(args.quickstart)
    torch.manual_seed(0)
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"native bf16: {cpu_has_native_bf16()}; load average at start {os.getloadavg()[0]:.1f}\n")
    with tempfile.TemporaryDirectory(prefix="bench-precision-") as tmp:
        work = Path(tmp)
        stages = [stage for stage in args.stages.split(",") if stage]
        if stages:
            print("| stage | variant | wall s/step | wall speed-up | CPU s/step | CPU-time speed-up |")
            print("|---|---|---|---|---|---|")
        for stage in stages:
            for row in speed_rows(stage, qs, work, args.rounds, args.steps):
                print(row, flush=True)
        if args.compile_stages:
            print("\n| stage | threads | compiled over eager (float32), wall | CPU time | compile time, wall / CPU "
                  "| pays off after |")
            print("|---|---|---|---|---|---|")
            for stage in filter(None, args.compile_stages.split(",")):
                print(compile_row(stage, qs, work, args.steps, args.rounds, args.compile_threads), flush=True)
        if args.quality_steps:
            print(f"\nEqual steps ({args.quality_steps}, training seed {args.seed}, 1 thread): held-out metrics at "
                  "the end, each the mean of 4 evaluations\n")
            for stage in filter(None, args.quality_stages.split(",")):
                keys = QUALITY_KEYS[stage]
                results = quality(stage, qs, work, args.quality_steps, args.seed)
                print(f"| {stage} | " + " | ".join(keys) + " | minutes |")
                print("|---" * (len(keys) + 2) + "|")
                for name, metrics in results.items():
                    cells = [f"{metrics[k]:.4f}" if k in metrics else "—" for k in keys]
                    print(f"| {name} | " + " | ".join(cells) + f" | {metrics['minutes']:.1f} |", flush=True)
    print(f"\nLoad average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
