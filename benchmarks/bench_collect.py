"""Collector throughput vs. the bare environment loop, worker scaling, and bytes per step on disk.

    python benchmarks/bench_collect.py [--crafter-episodes 20 --minatar-episodes 200 --repeats 3]

The bare loop and the collector play the very same episodes (same environment seeds, same random
action stream: the random policy draws one ``rng.integers(n)`` per step from the same policy seed),
so the ratio is the collector's own cost: policy call, recording, npz compression, file writes.
The machine is shared with other jobs, so the ratio is taken on this process's CPU time (both
runs are in-process), which other jobs' load does not inflate; wall-clock rates are shown too.
Each measurement is repeated (interleaved) and the fastest run kept.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dreamer_data.collect.collector import CollectConfig, collect, episode_seeds  # noqa: E402
from dreamer_data.collect.crafter_env import DeterministicCrafter  # noqa: E402
from dreamer_data.collect.minatar_env import minatar_environment  # noqa: E402
from dreamer_data.ingest import IngestPlan, ingest  # noqa: E402
from dreamer_data.sources import ReadOptions, source_class  # noqa: E402
from dreamer_data.store.reader import StoreReader  # noqa: E402
from dreamer_data.store.summary import summarize  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "collect.md"


def bare_loop(config: CollectConfig, episodes: int) -> int:
    """The environments stepped directly (observation included) with uniform random actions; returns steps."""
    steps = 0
    for index in range(episodes):
        env_seed, policy_seed = episode_seeds(config.seed, index)
        rng = np.random.default_rng(policy_seed)
        if config.env == "crafter":
            env = DeterministicCrafter(seed=env_seed, length=config.max_steps)
            env.reset()
            done = False
            while not done:
                _, _, done, _ = env.step(int(rng.integers(17)))
                steps += 1
        else:
            env = minatar_environment()(config.game, sticky_action_prob=config.sticky_prob)
            env.seed(env_seed)
            env.reset()
            terminal, t = False, 0
            while not terminal and t < config.max_steps:
                _, terminal = env.act(int(rng.integers(6)))
                env.state()  # an agent needs the observation: MinAtar's act() does not return it
                t += 1
            steps += t
    return steps


def timed(run) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of this process, steps) of one run."""
    wall, cpu = time.perf_counter(), time.process_time()
    steps = run()
    return time.perf_counter() - wall, time.process_time() - cpu, steps


def measure(config: CollectConfig, episodes: int, repeats: int, scratch: Path) -> dict:
    raw = scratch / f"raw-{config.env}-{config.game}"

    def collector(workers: int):
        def run() -> int:
            shutil.rmtree(raw, ignore_errors=True)
            return collect(config, raw, episodes, workers=workers).steps
        return run

    bare, one, two = [], [], []
    for _ in range(repeats):  # interleaved, so slow phases of the shared machine hit all three alike
        bare.append(timed(lambda: bare_loop(config, episodes)))
        one.append(timed(collector(1)))
        two.append(timed(collector(2)))
    steps = bare[0][2]
    assert all(run[2] == steps for run in bare + one + two), "bare loop and collector played different episodes"
    raw_bytes = sum(p.stat().st_size for p in raw.rglob("*") if p.is_file())
    store = scratch / f"store-{config.env}-{config.game}"
    shutil.rmtree(store, ignore_errors=True)
    report = ingest(source_class(config.env)(str(raw), ReadOptions()), str(store), IngestPlan())
    summary = summarize(StoreReader(str(store)))
    return {"env": config.env + (f" {config.game}" if config.game else ""), "episodes": episodes, "steps": steps,
            "bare": steps / min(run[0] for run in bare), "one": steps / min(run[0] for run in one),
            "two": steps / min(run[0] for run in two),
            "bare_cpu": steps / min(run[1] for run in bare), "one_cpu": steps / min(run[1] for run in one),
            "raw_per_step": raw_bytes / steps, "rows": report.frames,
            "store_per_row": summary["array_bytes"] / report.frames, "fields": summary["fields"]}


def write_section(name: str, text: str) -> None:
    """Replace (or append) the section between ``<!-- name -->`` markers in results/collect.md."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    current = RESULTS.read_text() if RESULTS.exists() else "# Collect: Crafter and MinAtar\n"
    block = f"<!-- {name} -->\n{text.rstrip()}\n<!-- /{name} -->"
    pattern = re.compile(rf"<!-- {name} -->.*?<!-- /{name} -->", re.S)
    updated = pattern.sub(lambda _: block, current) if pattern.search(current) else f"{current.rstrip()}\n\n{block}\n"
    RESULTS.write_text(updated)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crafter-episodes", type=int, default=20)
    parser.add_argument("--minatar-episodes", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    configs = [(CollectConfig("crafter", "random", seed=0).checked(), args.crafter_episodes),
               (CollectConfig("minatar", "random", seed=0, game="breakout").checked(), args.minatar_episodes),
               (CollectConfig("minatar", "random", seed=0, game="freeway").checked(), args.minatar_episodes // 10)]
    with tempfile.TemporaryDirectory() as scratch:
        rows = [measure(config, episodes, args.repeats, Path(scratch)) for config, episodes in configs]
    lines = ["## Collector throughput vs. the bare environment loop", "",
             f"`python benchmarks/bench_collect.py --crafter-episodes {args.crafter_episodes} --minatar-episodes "
             f"{args.minatar_episodes} --repeats {args.repeats}` (2-core CPU shared with other jobs; random policy; "
             f"best of {args.repeats} interleaved runs; same episodes in every column)", "",
             "| environment | episodes | steps | bare loop steps/CPU-s | collector steps/CPU-s | **ratio** | "
             "bare loop steps/s (wall) | collector 1 worker steps/s | collector 2 workers steps/s | "
             "raw bytes/step (npz) | store bytes/row (zarr) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['env']} | {r['episodes']} | {r['steps']:,} | {r['bare_cpu']:,.0f} | {r['one_cpu']:,.0f} | "
                     f"**{r['one_cpu'] / r['bare_cpu']:.2f}x** | {r['bare']:,.0f} | {r['one']:,.0f} | "
                     f"{r['two']:,.0f} | {r['raw_per_step']:,.0f} | {r['store_per_row']:,.0f} |")
    lines += ["", "Raw = `RAW/episodes/*.npz` (zlib) + `collect.json` per environment step; store = every array "
              "under `data/` and `meta/` (zstd 3) per row, rows = steps + one final-observation row per episode. "
              "Crafter stores 64x64 RGB frames; MinAtar stores the binary grid and 64x64 rendered frames."]
    write_section("bench_collect", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
