"""What a ``dreamer-data`` command costs before it does any work: its start-up, with and without torch.

    python benchmarks/bench_cli_startup.py [--rounds 7] [--out benchmarks/results/cli_startup.md]

The data commands (ingest, inspect, verify, merge, ...) never compute with torch; only the loaders and
``tokenize`` do. Paired interleaved rounds in one script: each round runs ``dreamer-data --help`` and an ingest
of one 20-frame VPT recording (a fresh ``--out`` each time) as a user runs them (B), and the same two commands
with torch imported first (A: what every data command paid while ``dreamer_data.video`` imported torch at the
top; A still undercounts that: the old ingest's worker processes imported torch too). Reported: median wall
seconds of each and the ratio A/B (median of per-round ratios, min-max).
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
from benchmarks.published import cpu_model, publish  # noqa: E402
from makers import write_vpt_episode  # noqa: E402

RUN_DATA_CLI = "import sys; from cli.data import main; sys.argv[0] = 'dreamer-data'; main()"


def seconds(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, cwd=ROOT)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", default=None, help="write the table here (e.g. benchmarks/results/cli_startup.md)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        write_vpt_episode(src, "player-0-2022.06.01", 20, seed=0)
        variants = {"with torch first (A)": ["-c", "import torch; " + RUN_DATA_CLI],
                    "as shipped (B)": ["-c", RUN_DATA_CLI]}
        commands = {"--help": ["--help"], "ingest 20 frames": ["ingest", "vpt", str(src), "--resolution", "36x64"]}
        times = {(variant, name): [] for variant in variants for name in commands}
        fresh_out = (f"{tmp}/out-{index}" for index in itertools.count())
        for round_index in range(args.rounds):
            order = list(variants) if round_index % 2 == 0 else list(variants)[::-1]
            for name, command in commands.items():
                for variant in order:
                    tail = command + (["--out", next(fresh_out)] if command[0] == "ingest" else [])
                    times[variant, name].append(seconds([sys.executable, *variants[variant], *tail]))
    lines = [f"Machine: {cpu_model()}, {args.rounds} interleaved rounds, wall seconds "
             "(median).", "", "| command | with torch first (A) | as shipped (B) | A / B (min-max) |", "|---|---|---|---|"]
    for name in commands:
        a, b = (np.array(times[variant, name]) for variant in variants)
        ratios = a / b
        lines.append(f"| `dreamer-data {name}` | {np.median(a):.2f} | {np.median(b):.2f} | "
                     f"{np.median(ratios):.2f}x ({ratios.min():.2f}-{ratios.max():.2f}) |")
    publish(lines, args.out)


if __name__ == "__main__":
    main()
