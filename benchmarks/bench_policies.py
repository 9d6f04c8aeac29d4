"""Behaviour-policy baselines: return, episode length, Crafter success rates and Crafter score.

    python benchmarks/bench_policies.py [--episodes 100 --workers 2 --only crafter|minatar]

Every episode goes through the real collector (``collect`` into a scratch RAW folder, seed 0), so
these are exactly the policies whose data ``dreamer-data collect`` writes. Crafter score = the
geometric mean of the 22 success rates in percent, exp(mean(ln(1 + s_i))) - 1 (Hafner 2021).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.bench_collect import write_section  # noqa: E402
from dreamer_data.collect.collector import CollectConfig, collect  # noqa: E402
from dreamer_data.collect.crafter_env import ACHIEVEMENTS  # noqa: E402
from dreamer_data.collect.minatar_env import GAMES  # noqa: E402
from dreamer_data.collect.policies import POLICIES  # noqa: E402
from dreamer_data.collect.raw import read_episode  # noqa: E402
from dreamer_data.scores import crafter_score  # noqa: E402


def play(config: CollectConfig, episodes: int, workers: int, scratch: Path) -> tuple[list[dict], float]:
    """Infos of ``episodes`` collected episodes, and the wall time it took."""
    raw = scratch / f"{config.env}-{config.game}-{config.policy}"
    start = time.perf_counter()
    collect(config, raw, episodes, workers=workers)
    elapsed = time.perf_counter() - start
    member = "frames" if config.env == "crafter" else "obs"
    infos = [read_episode(path, str(path), member)[1] for path in sorted((raw / "episodes").glob("*.npz"))]
    return infos, elapsed


def spread(values: list[float]) -> str:
    return f"{np.mean(values):.2f} ± {np.std(values):.2f}"


def crafter_tables(episodes: int, workers: int, scratch: Path) -> list[str]:
    results = {}
    for policy in POLICIES:
        infos, elapsed = play(CollectConfig("crafter", policy, seed=0).checked(), episodes, workers, scratch)
        unlocked = np.array([[name in info["achievements_unlocked"] for name in ACHIEVEMENTS] for info in infos])
        rates = 100.0 * unlocked.mean(axis=0)
        results[policy] = (infos, rates, elapsed)
        print(f"crafter {policy}: {elapsed:.0f} s", flush=True)
    lines = ["## Crafter baselines", "",
             "| policy | episodes | return | length | died | Crafter score (%) | wall time |", "|---|---|---|---|---|---|---|"]
    for policy, (infos, rates, elapsed) in results.items():
        lines.append(f"| {policy} | {len(infos)} | {spread([i['return'] for i in infos])} | "
                     f"{spread([i['steps'] for i in infos])} | {np.mean([i['terminated'] for i in infos]):.0%} | "
                     f"{crafter_score(rates):.2f} | {elapsed:.0f} s |")
    lines += ["", "Success rate (% of episodes unlocking each achievement at least once):", "",
              "| achievement | " + " | ".join(results) + " |", "|---|" + "---|" * len(results)]
    for index, name in enumerate(ACHIEVEMENTS):
        lines.append(f"| {name} | " + " | ".join(f"{rates[index]:.1f}" for _, rates, _ in results.values()) + " |")
    return lines


def minatar_table(episodes: int, workers: int, scratch: Path) -> list[str]:
    lines = ["## MinAtar baselines", "",
             "Sticky actions 0.1, difficulty ramping on (MinAtar's defaults), episodes cut at 10,000 steps.", "",
             "| game | policy | episodes | return | length | cut at the time limit | wall time |",
             "|---|---|---|---|---|---|---|"]
    for game in GAMES:
        for policy in POLICIES:
            infos, elapsed = play(CollectConfig("minatar", policy, seed=0, game=game).checked(), episodes, workers,
                                  scratch)
            lines.append(f"| {game} | {policy} | {len(infos)} | {spread([i['return'] for i in infos])} | "
                         f"{spread([i['steps'] for i in infos])} | {np.mean([i['truncated'] for i in infos]):.0%} | "
                         f"{elapsed:.0f} s |")
            print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", choices=("crafter", "minatar"), default=None)
    args = parser.parse_args()
    command = f"`python benchmarks/bench_policies.py --episodes {args.episodes} --workers {args.workers}" + \
              (f" --only {args.only}`" if args.only else "`")
    header = [f"{command} (2-core CPU shared with other jobs; seed 0; noisy-scripted epsilon 0.1)", ""]
    with tempfile.TemporaryDirectory() as scratch:
        if args.only in (None, "crafter"):
            lines = crafter_tables(args.episodes, args.workers, Path(scratch))
            write_section("bench_policies_crafter", "\n".join([lines[0], "", *header, *lines[2:]]))
        if args.only in (None, "minatar"):
            lines = minatar_table(args.episodes, args.workers, Path(scratch))
            write_section("bench_policies_minatar", "\n".join([lines[0], "", *header, *lines[2:]]))


if __name__ == "__main__":
    main()
