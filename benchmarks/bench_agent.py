"""The agent benchmark (issue 7): behaviour policy vs BC (phase 2) vs Dreamer (phase 3) on MinAtar breakout.

    python benchmarks/bench_agent.py --work /tmp/agent_bench all        # every stage, in order
    python benchmarks/bench_agent.py --work /tmp/agent_bench phase3     # one stage (earlier ones must exist)

Stages (each runs the real CLI; the exact command lines and wall times are appended to
WORK/commands.jsonl and summarised in benchmarks/results/agent.md by the ``report`` stage):

  data       collect random and noisy-scripted breakout episodes, mix them into one RAW folder, ingest
  tokenizer  dreamer-train tokenizer (tiny)            tokenize   dreamer-data tokenize
  phase1     dreamer-train phase1 (tiny)               phase2     dreamer-train phase2 (BC + reward heads)
  phase3     dreamer-train phase3 (PMPO in imagination)
  eval       dreamer-train eval minatar for the behaviour policies, BC and Dreamer, same seeds

``dreamer-data merge`` joins parts of one ingest only, so the two collect runs are combined at the
RAW level: episode files are copied (renumbered) into WORK/raw_mix, whose collect.json records both
runs; every episode keeps its own info (policy, seeds) and the store's episode notes show it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

GAME = "breakout"
MAX_STEPS = 1000
REPO = Path(__file__).resolve().parents[1]
WORK_NAMES = ("tokenizer.yaml", "phase1.yaml", "phase2.yaml", "phase3.yaml", "raw_random", "raw_scripted", "raw_mix", "store", "run_tokenizer", "run_phase1", "run_phase2",
              "run_phase3", "eval")
RESOLUTION = "32x32"  # MinAtar's 10x10 grid drawn at 32x32: every cell 3-4 pixels, nothing lost
# A micro tokenizer (the CPU here is 2 cores shared by several jobs): 16 patches of 8x8, 8 latents x 16 dims.
MICRO = {"dim": 64, "depth": 2, "heads": 2, "kv_heads": 1, "head_dim": 32, "registers": 2, "time_every": 2}
TOKENIZER_CONFIG = {
    "tokenizer": {"height": 32, "width": 32, "patch": 8, "latent_tokens": 8, "latent_dim": 16, "context": 4,
                  "encoder": MICRO, "decoder": MICRO},
    "train": {"batch": 16, "lr": 2e-3, "warmup": 50, "eval_every": 500, "checkpoint_every": 500},
}
# One intra-op thread: on 2 shared cores, torch's default 2 threads made a tokenizer step 10x slower.
THREADS = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
STAGES = ("data", "tokenizer", "tokenize", "phase1", "phase2", "phase3", "eval", "report")


class Bench:
    def __init__(self, work: Path, args: argparse.Namespace):
        self.work, self.args = work, args
        self.work.mkdir(parents=True, exist_ok=True)
        self.log = self.work / "commands.jsonl"

    def path(self, arg: str) -> str:
        """Relative run/store names in commands live under WORK."""
        return str(self.work / arg) if arg.split("/")[0] in WORK_NAMES else arg

    def run(self, stage: str, *command: str) -> float:
        """Run one CLI command, streaming its output to WORK/logs/STAGE.log; record it and its wall time."""
        logs = self.work / "logs"
        logs.mkdir(exist_ok=True)
        began = time.time()
        with open(logs / f"{stage}.log", "a") as handle:
            handle.write(f"$ {' '.join(command)}\n")
            handle.flush()
            # cwd: the repository (the venv's editable install resolves dreamer_data from there; see report)
            result = subprocess.run([self.path(c) for c in command], stdout=handle, stderr=subprocess.STDOUT,
                                    cwd=REPO, env={**os.environ, "COLUMNS": "160", **THREADS})
        seconds = time.time() - began
        with open(self.log, "a") as handle:
            handle.write(json.dumps({"stage": stage, "command": " ".join(command), "seconds": round(seconds, 1),
                                     "rc": result.returncode}) + "\n")
        if result.returncode:
            raise SystemExit(f"{stage}: {' '.join(command)} failed with {result.returncode}; see {logs / stage}.log")
        return seconds

    # ------------------------------------------------------------------------------------------ stages

    def data(self) -> None:
        a = self.args
        self.run("data", "dreamer-data", "collect", "minatar", "--game", GAME, "--policy", "random",
                 "--episodes", str(a.random_episodes), "--seed", "0", "--max-steps", str(MAX_STEPS), "--out", "raw_random")
        self.run("data", "dreamer-data", "collect", "minatar", "--game", GAME, "--policy", "noisy-scripted",
                 "--episodes", str(a.scripted_episodes), "--seed", "1", "--max-steps", str(MAX_STEPS),
                 "--out", "raw_scripted")
        mix_raw(self.work / "raw_mix", [self.work / "raw_random", self.work / "raw_scripted"])
        self.run("data", "dreamer-data", "ingest", "minatar", "raw_mix", "--out", "store", "--workers", "0",
                 "--resolution", RESOLUTION)

    def tokenizer(self) -> None:
        write_config(self.work / "tokenizer.yaml", TOKENIZER_CONFIG)
        self.run("tokenizer", "dreamer-train", "tokenizer", "--data", "store", "--out", "run_tokenizer",
                 "--preset", "tiny", "--config", "tokenizer.yaml", "--steps", str(self.args.tokenizer_steps),
                 "--device", "cpu", "--lpips-weight", "0")

    def tokenize(self) -> None:
        self.run("tokenize", "dreamer-data", "tokenize", "store", "--ckpt", "run_tokenizer")


def write_config(path: Path, config: dict) -> None:
    import yaml

    path.write_text(yaml.safe_dump(config, sort_keys=False))


def mix_raw(out: Path, sources: list[Path]) -> None:
    """Copy the episodes of several collect runs of one game into one RAW folder, renumbered."""
    if (out / "collect.json").exists():
        return
    runs = [json.loads((src / "collect.json").read_text()) for src in sources]
    base = {k: v for k, v in runs[0].items() if k not in ("policy", "seed", "episodes", "epsilon")}
    for run in runs[1:]:
        other = {k: v for k, v in run.items() if k not in ("policy", "seed", "episodes", "epsilon")}
        if other != base:
            raise SystemExit(f"cannot mix collect runs with different settings: {base} vs {other}")
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "episodes").mkdir(parents=True)
    index = 0
    for src in sources:
        for episode in sorted((src / "episodes").glob("*.npz")):
            shutil.copyfile(episode, tmp / "episodes" / f"{index:06d}.npz")
            index += 1
    settings = {**base, "policy": "+".join(run["policy"] for run in runs), "seed": None, "episodes": index,
                "mixed_from": [{"folder": str(src), **run} for src, run in zip(sources, runs)]}
    (tmp / "collect.json").write_text(json.dumps(settings, indent=1) + "\n")
    os.replace(tmp, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=(*STAGES, "all"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/agent_bench"))
    parser.add_argument("--random-episodes", type=int, default=1000)
    parser.add_argument("--scripted-episodes", type=int, default=60)
    parser.add_argument("--tokenizer-steps", type=int, default=3000)
    args = parser.parse_args()
    torch.set_num_threads(2)
    bench = Bench(args.work.resolve(), args)
    for stage in (STAGES if args.stage == "all" else (args.stage,)):
        getattr(bench, stage)()


if __name__ == "__main__":
    main()
