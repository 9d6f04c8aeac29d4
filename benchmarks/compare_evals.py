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

from dreamer_model.eval.report import paired_difference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("baseline", type=Path)
    parser.add_argument("candidates", type=Path, nargs="+")
    args = parser.parse_args()
    base = json.loads((args.baseline / "report.json").read_text())
    for folder in args.candidates:
        try:
            diff = paired_difference(json.loads((folder / "report.json").read_text()), base, f"{folder} vs {args.baseline}")
        except ValueError as error:
            sys.exit(str(error))
        print(f"{folder} − {args.baseline}: {diff['mean']:+.3f} ± {diff['stderr']:.3f} (paired s.e., "
              f"{diff['episodes']} episodes), z = {diff['z'] if diff['z'] is None else round(diff['z'], 2)}")


if __name__ == "__main__":
    main()
