"""``train.threads`` on the quickstart's stages: one thread, every core, and the chooser (``-1``,
dreamer_model/train/threads.py), on an idle machine and with one core taken by another process.

    python benchmarks/bench_threads.py --quickstart DIR [--stages tokenizer,phase1,phase2,phase3] [--rounds 3]
        [--steps 40]

``DIR`` is a finished ``dreamer-train quickstart`` run (its store, latents, world model and BC agent are the inputs;
nothing in it changes). For each machine state and stage, one trainer per variant is built in this process on the
quickstart's config and timed in interleaved rounds of ``--steps`` training steps (the order reversed every other
round, one warm-up step first). The chooser keeps its state from round to round, as in one run, so its first
round pays its first probe. "busy": a second Python process spins on one core for the whole measurement.
Ratios are medians of per-round ratios against one thread (the quickstart's setting before the chooser).
Prints markdown (benchmarks/results/threads.md collects it).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.bench_precision import BASELINE, stage_trainer  # noqa: E402
from dreamer_model.train.threads import ThreadChooser, usable_cores  # noqa: E402


class Variant:
    """A trainer and how its thread count is set: fixed, or by a chooser that lives as long as the variant."""

    def __init__(self, name: str, trainer, threads: int | None):
        self.name, self.trainer, self.fixed = name, trainer, threads
        self.batches = trainer.batches()
        self.chooser = ThreadChooser() if threads is None else None
        self.counts: Counter[int] = Counter()

    def run(self, steps: int) -> float:
        """Seconds per step over ``steps`` training steps."""
        torch.set_num_threads(self.fixed or self.chooser.threads or 1)
        began = time.perf_counter()
        for _ in range(steps):
            batch = next(self.batches)
            if self.chooser is None:
                self.trainer.train_step(batch)
            else:
                self.chooser.timed(lambda: self.trainer.train_step(batch))
                self.counts[self.chooser.threads] += 1
            self.trainer.step += 1
        return (time.perf_counter() - began) / steps


def measure(stage: str, qs: Path, work: Path, rounds: int, steps: int, cores: int) -> tuple[list[Variant], dict]:
    variants = [Variant(name, stage_trainer(stage, qs, work / f"{stage}-{i}-{time.monotonic_ns()}", BASELINE, 10 ** 9),
                        threads)
                for i, (name, threads) in enumerate((("1 thread", 1), (f"{cores} threads", cores), ("chosen", None)))]
    for v in variants:
        if v.chooser is None:
            v.run(1)  # warm-up: first-call allocations, lazy inits (the chooser's probe starts with an untimed step)
    seconds: dict[str, list[float]] = {v.name: [] for v in variants}
    for r in range(rounds):
        for v in (variants if r % 2 == 0 else variants[::-1]):
            seconds[v.name].append(v.run(steps))
    return variants, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quickstart", required=True, help="A finished `dreamer-train quickstart` run directory.")
    parser.add_argument("--stages", default="tokenizer,phase1,phase2,phase3")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=40, help="Training steps per variant per round.")
    parser.add_argument("--machine", default="idle,busy", help="idle and/or busy (one core spun by another process)")
    args = parser.parse_args()
    qs, cores = Path(args.quickstart), usable_cores()
    torch.manual_seed(0)
    print(f"Machine: {platform.processor() or platform.machine()}, {cores} usable cores, torch {torch.__version__}; "
          f"load average at start {os.getloadavg()[0]:.1f}\n")
    print(f"| stage | machine | 1 thread, s/step | {cores} threads | chosen (-1) | steps of the chosen run at each count |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="bench-threads-") as tmp:
        for machine in filter(None, args.machine.split(",")):
            spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if machine == "busy" else None
            try:
                for stage in filter(None, args.stages.split(",")):
                    variants, seconds = measure(stage, qs, Path(tmp), args.rounds, args.steps, cores)
                    base = seconds["1 thread"]
                    cells = [f"{statistics.median(base):.4f}"]
                    for v in variants[1:]:
                        ratio = statistics.median(b / o for b, o in zip(base, seconds[v.name]))
                        cells.append(f"{statistics.median(seconds[v.name]):.4f} ({ratio:.2f}x)")
                    chooser = variants[-1]
                    total = sum(chooser.counts.values())
                    shares = ", ".join(f"{n}: {c / total:.0%}" for n, c in sorted(chooser.counts.items()))
                    print(f"| {stage} | {machine} | " + " | ".join(cells) + f" | {shares} |", flush=True)
            finally:
                if spinner is not None:
                    spinner.kill()
                    spinner.wait()
    print(f"\nLoad average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
