"""The agent benchmark: behaviour policy vs BC (phase 2) vs Dreamer (phase 3) on MinAtar breakout.

    python benchmarks/bench_agent.py --work /tmp/agent_bench all        # every stage, in order
    python benchmarks/bench_agent.py --work /tmp/agent_bench phase3     # one stage (earlier ones must exist)

Stages (each runs the real CLI; the exact command lines and wall times are appended to
WORK/commands.jsonl and summarised in benchmarks/results/agent.md by the ``report`` stage):

  data       collect random and noisy-scripted breakout episodes into WORK/raw/{random,scripted}, ingest WORK/raw
  tokenizer  dreamer-train tokenizer (preset micro)    tokenize   dreamer-data tokenize
  phase1     dreamer-train phase1 (preset micro)       phase2     dreamer-train phase2 (BC + reward heads)
  phase3     dreamer-train phase3 (PMPO in imagination)
  eval       dreamer-train eval minatar for the behaviour policies, BC and Dreamer, same seeds

``dreamer-data ingest minatar WORK/raw`` reads a folder of collect runs as one source: every episode keeps
its own info (policy, seeds) in the store's episode notes, and the manifest records both runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

import torch

GAME = "breakout"
MAX_STEPS = 1000
REPO = Path(__file__).resolve().parents[1]
WORK_NAMES = ("raw", "store", "run_tokenizer", "run_phase1", "run_phase2", "run_phase3", "eval")
RESOLUTION = "32x32"  # MinAtar's 10x10 grid drawn at 32x32: every cell 3-4 pixels, nothing lost
PRESET = "micro"  # every stage's sizes (dreamer_model/presets.py): MinAtar at 32x32, 8 latents x 16 dims per frame
# One intra-op thread: on 2 shared cores, torch's default 2 threads made a tokenizer step 10x slower.
THREADS = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
EVAL_SEED = 0
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
                 "--episodes", str(a.random_episodes), "--seed", "0", "--max-steps", str(MAX_STEPS), "--out", "raw/random")
        self.run("data", "dreamer-data", "collect", "minatar", "--game", GAME, "--policy", "noisy-scripted",
                 "--episodes", str(a.scripted_episodes), "--seed", "1", "--max-steps", str(MAX_STEPS),
                 "--out", "raw/scripted")
        self.run("data", "dreamer-data", "ingest", "minatar", "raw", "--out", "store", "--workers", "0",
                 "--resolution", RESOLUTION)

    def tokenizer(self) -> None:
        resume = ("--resume",) if (self.work / "run_tokenizer" / "checkpoints").is_dir() else ()
        self.run("tokenizer", "dreamer-train", "tokenizer", "--data", "store", "--out", "run_tokenizer",
                 "--preset", PRESET, "--steps", str(self.args.tokenizer_steps),
                 "--device", "cpu", "--lpips-weight", "0", *resume)

    def tokenize(self) -> None:
        self.run("tokenize", "dreamer-data", "tokenize", "store", "--ckpt", "run_tokenizer")

    def phase1(self) -> None:
        self.run("phase1", "dreamer-train", "phase1", "--data", "store", "--out", "run_phase1", "--preset", PRESET,
                 "--steps", str(self.args.phase1_steps), "--device", "cpu")

    def phase2(self) -> None:
        self.run("phase2", "dreamer-train", "phase2", "--data", "store", "--wm", "run_phase1", "--task", "reward",
                 "--out", "run_phase2", "--preset", PRESET, "--steps", str(self.args.phase2_steps), "--device", "cpu")

    def phase3(self) -> None:
        self.run("phase3", "dreamer-train", "phase3", "--data", "store", "--agent", "run_phase2", "--out",
                 "run_phase3", "--preset", PRESET, "--steps", str(self.args.phase3_steps), "--device", "cpu")

    def eval(self) -> None:
        common = ("--episodes", str(self.args.episodes), "--seed", str(EVAL_SEED), "--max-steps", str(MAX_STEPS),
                  "--batch", "50", "--record", "2")
        for policy in ("random", "noisy-scripted"):
            self.run("eval", "dreamer-train", "eval", "minatar", "--policy", policy, "--data", "store", *common,
                     "--out", f"eval/{policy}")
        for name, run in (("bc", "run_phase2"), ("dreamer", "run_phase3")):
            self.run("eval", "dreamer-train", "eval", "minatar", "--ckpt", run, *common, "--out", f"eval/{name}")
            self.run("eval", "dreamer-train", "eval", "minatar", "--ckpt", run, *common, "--greedy",
                     "--out", f"eval/{name}_greedy")

    def report(self) -> None:
        write_report(self.work, REPO / "benchmarks" / "results" / "agent.md")


def write_report(work: Path, out: Path) -> None:
    """benchmarks/results/agent.md: the comparison table, budgets and the exact commands."""
    rows = []
    for name, label in (("random", "behaviour: random"), ("noisy-scripted", "behaviour: noisy-scripted (ε = 0.1)"),
                        ("bc", "BC (phase 2), sampled"), ("bc_greedy", "BC (phase 2), greedy"),
                        ("dreamer", "Dreamer (phase 3), sampled"), ("dreamer_greedy", "Dreamer (phase 3), greedy")):
        path = work / "eval" / name / "report.json"
        if path.exists():
            r = json.loads(path.read_text())
            rows.append(f"| {label} | {r['episodes']} | {r['return_mean']:.2f} ± {r['return_stderr']:.2f} | "
                        f"{r['length_mean']:.0f} | {r['return_min']:.0f} / {r['return_max']:.0f} |")
    commands = [json.loads(line) for line in (work / "commands.jsonl").read_text().splitlines() if line.strip()]
    done = [c for c in commands if c["rc"] == 0]
    seconds = {}
    for c in done:
        seconds[c["stage"]] = seconds.get(c["stage"], 0.0) + c["seconds"]
    lines = ["| policy | episodes | return ± s.e. | mean length | min / max |", "|---|---|---|---|---|", *rows, "",
             "Wall time per stage (s): " + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()), "",
             "Commands (run from the repository root; relative names live under the work folder):", "", "```"]
    lines += [c["command"] for c in done] + ["```"]
    (work / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"(summary in {work / 'summary.md'}; {out} is written by hand from it)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=(*STAGES, "all"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/agent_bench"))
    parser.add_argument("--random-episodes", type=int, default=1000)
    parser.add_argument("--scripted-episodes", type=int, default=60)
    parser.add_argument("--tokenizer-steps", type=int, default=12000)
    parser.add_argument("--phase1-steps", type=int, default=4000)
    parser.add_argument("--phase2-steps", type=int, default=1500)
    parser.add_argument("--phase3-steps", type=int, default=600)
    parser.add_argument("--episodes", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(2)
    bench = Bench(args.work.resolve(), args)
    for stage in (STAGES if args.stage == "all" else (args.stage,)):
        getattr(bench, stage)()


if __name__ == "__main__":
    main()
