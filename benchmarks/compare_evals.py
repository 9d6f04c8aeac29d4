"""Paired difference of two ``dreamer-train eval`` reports made with the same seeds.

    python benchmarks/compare_evals.py BASELINE_DIR CANDIDATE_DIR [CANDIDATE_DIR …]

Episode i of two evaluations with the same ``--seed`` and ``--episodes`` plays the same environment
seed, so the per-episode differences cancel the variation between seeds: the paired standard error is
smaller than the two reports' own errors combined whenever the policies' returns correlate across seeds.
Prints candidate − baseline as mean ± s.e. over episodes and z = mean / s.e.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def episode_returns(folder: Path) -> tuple[np.ndarray, list[int]]:
    report = json.loads((folder / "report.json").read_text())
    episodes = report["per_episode"]
    return np.array([e["return"] for e in episodes], dtype=np.float64), [e["env_seed"] for e in episodes]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("baseline", type=Path)
    parser.add_argument("candidates", type=Path, nargs="+")
    args = parser.parse_args()
    base, base_seeds = episode_returns(args.baseline)
    for folder in args.candidates:
        returns, seeds = episode_returns(folder)
        if seeds != base_seeds:
            sys.exit(f"{folder}: its episodes were played on other environment seeds than {args.baseline}'s "
                     f"(evaluate both with the same --seed and --episodes)")
        diff = returns - base
        stderr = diff.std(ddof=1) / np.sqrt(len(diff))
        print(f"{folder} − {args.baseline}: {diff.mean():+.3f} ± {stderr:.3f} (paired s.e., {len(diff)} episodes), "
              f"z = {diff.mean() / stderr:.2f}")


if __name__ == "__main__":
    main()
