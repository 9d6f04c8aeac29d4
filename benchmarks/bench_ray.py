"""``--ray`` against the one-machine commands on the same input: ingest and tokenize throughput, Ray's cost.

    python benchmarks/bench_ray.py [--episodes 8 --frames 500 --tokenize 4 100 --tiny 4 36 --rounds 3]

Every run is the real command in a fresh process (`python -m cli.data ...`), so each pays what a user's
command pays: the one-machine runs their worker pool's start-up, the Ray runs joining a running local
instance (2 CPUs, started once here, as a cluster would be) their job's worker start-up. One extra Ray
run starts its own local instance (bare ``--ray``). Configurations run once per round, rounds
interleaved; tables give medians, so load from other jobs hits all of them alike. Ray's cost per
episode: one tiny episode staged as a Ray task, shipped and landed, against staged in this process,
one at a time (an upper bound: in a run, tasks overlap the driver's work).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import ray
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.vpt_like import write_recording  # noqa: E402
from dreamer_data.cluster.ingest import land, stage_and_ship  # noqa: E402
from dreamer_data.ingest import stage_episode  # noqa: E402
from dreamer_data.sources import ReadOptions  # noqa: E402
from dreamer_data.sources.vpt import VptSource  # noqa: E402
from dreamer_model.checkpoint import model_hash, save_checkpoint  # noqa: E402
from dreamer_model.configs import to_dict  # noqa: E402
from dreamer_model.presets import preset  # noqa: E402
from dreamer_model.tokenizer import Tokenizer  # noqa: E402

INGEST = ["--resolution", "64x64"]


def command(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "cli.data", *map(str, args)]


def timed(argv: list[str], fresh: Path, copy_from: Path | None = None) -> float:
    """Seconds of one command writing ``fresh`` (removed first; a copy of ``copy_from`` to tokenize)."""
    shutil.rmtree(fresh, ignore_errors=True)
    if copy_from is not None:
        shutil.copytree(copy_from, fresh)
    env = {**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {done.stderr[-2000:]}")
    return elapsed


def tiny_tokenizer_checkpoint(run_dir: Path) -> Path:
    """The ``tiny`` preset's tokenizer (64x64) with its initial weights: speed does not depend on training."""
    torch.manual_seed(0)
    run = preset("tokenizer", "tiny")
    model = Tokenizer(run.tokenizer)
    config = to_dict(run)
    save_checkpoint(run_dir, 1, {"kind": "tokenizer", "version": 1, "step": 1, "seed": 0, "config": config,
                                 "model": model.state_dict(),
                                 "model_hash": model_hash(model.state_dict(), config["tokenizer"])})
    return run_dir


Run = tuple[list[str], Path, Path | None]  # (command, the store it writes, the store it copies first)


def measure(runs: dict[str, Run], rounds: int) -> dict[str, float]:
    """Median seconds per configuration over interleaved rounds."""
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for round_index in range(rounds):
        for name, (argv, fresh, copy_from) in runs.items():
            seconds[name].append(timed(argv, fresh, copy_from))
            print(f"round {round_index}: {name}: {seconds[name][-1]:.2f} s", file=sys.stderr)
    return {name: statistics.median(values) for name, values in seconds.items()}


def table(title: str, medians: dict[str, float], frames: int, baselines: dict[str, str]) -> list[str]:
    lines = [f"## {title}", "", "| command | median s | frames/s | speed vs |", "|---|---|---|---|"]
    for name, seconds in medians.items():
        base = baselines.get(name)
        versus = f"{medians[base] / seconds:.2f}x `{base}`" if base else "baseline"
        lines.append(f"| `{name}` | {seconds:.1f} | {frames / seconds:.0f} | {versus} |")
    return lines + [""]


def per_episode_seconds(folder: Path, scratch: Path, rounds: int) -> tuple[float, float]:
    """Median seconds to stage one episode here, and as a Ray task shipped back and landed."""
    source = VptSource(str(folder), ReadOptions(resolution=(64, 64)))
    refs, shared = source.list_episodes(), ray.put(source)
    task = ray.remote(num_cpus=1)(stage_and_ship)
    ray.get(task.remote(shared, refs[0], 0))  # a warm worker, as in a run
    local: list[float] = []
    remote: list[float] = []
    for _ in range(rounds):
        for index, ref in enumerate(refs):
            for times, stage in ((local, lambda: stage_episode(source, ref, str(scratch), index)),
                                 (remote, lambda: land(scratch, ray.get(task.remote(shared, ref, index))))):
                shutil.rmtree(scratch, ignore_errors=True)
                scratch.mkdir(parents=True)
                start = time.perf_counter()
                stage()
                times.append(time.perf_counter() - start)
    return statistics.median(local), statistics.median(remote)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--frames", type=int, default=500)
    parser.add_argument("--tokenize", type=int, nargs=2, default=(4, 150), help="episodes, frames to tokenize")
    parser.add_argument("--tiny", type=int, default=20, help="two-frame episodes for Ray's cost per episode")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/ray.md")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    src, tokenize_src, tiny = work / "src", work / "tokenize-src", work / "tiny"
    for index in range(args.episodes):
        write_recording(src, f"ep{index:03d}", args.frames, seed=index)
    for index in range(args.tokenize[0]):
        write_recording(tokenize_src, f"ep{index:03d}", args.tokenize[1], seed=index)
    for index in range(args.tiny):
        write_recording(tiny, f"ep{index:03d}", 2, seed=index)
    ckpt = tiny_tokenizer_checkpoint(work / "ckpt")

    logging.getLogger("ray").setLevel(logging.ERROR)
    address = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                       configure_logging=False).address_info["address"]
    store = work / "store"
    timed(command("ingest", "vpt", tokenize_src, "--out", store, *INGEST), store)  # the store tokenize reads

    def ingest(name: str, workers: str, *ray_flags: str) -> None:
        out = work / f"out-{len(runs)}"
        runs[name] = command("ingest", "vpt", src, "--out", out, *INGEST, "--workers", workers, *ray_flags), out, None

    def tokenize(name: str, *flags: str) -> None:
        out = work / f"tok-{len(runs)}"
        runs[name] = command("tokenize", out, "--ckpt", ckpt, *flags), out, store

    runs: dict[str, Run] = {}
    ingest("ingest --workers 1", "1")
    ingest("ingest --workers 2", "2")
    ingest("ingest --ray ADDRESS --workers 1", "1", "--ray", address)
    ingest("ingest --ray ADDRESS --workers 2", "2", "--ray", address)
    ingest("ingest --ray --workers 2 (own local instance)", "2", "--ray")
    ingests = measure(runs, args.rounds)
    runs = {}
    tokenize("tokenize")
    tokenize("tokenize --ray ADDRESS --workers 1", "--ray", address, "--workers", "1")
    tokenize("tokenize --ray ADDRESS --workers 2", "--ray", address, "--workers", "2")
    tokenizes = measure(runs, args.rounds)
    local_s, ray_s = per_episode_seconds(tiny, work / "micro", args.rounds)
    ray.shutdown()

    lines = [
        "# Ray (`--ray`) against one machine",
        "",
        f"Command: `python benchmarks/bench_ray.py --episodes {args.episodes} --frames {args.frames} --tokenize "
        f"{args.tokenize[0]} {args.tokenize[1]} --tiny {args.tiny} --rounds {args.rounds}`. Input: {args.episodes} "
        f"synthetic VPT-like recordings x {args.frames} frames (640x360 H.264), ingested at 64x64; tokenize: a "
        f"store of {args.tokenize[0]} such recordings x {args.tokenize[1]} frames with the `tiny` preset's "
        f"tokenizer (64x64, initial weights). Each run is the real command in a fresh process; `--ray ADDRESS` "
        f"joins a local Ray instance with 2 CPUs kept running by the script (as a cluster is), so it pays its "
        f"job's worker start-up; medians of {args.rounds} interleaved rounds. Machine: the project's 2-core CPU "
        f"box, shared with other jobs, so compare ratios within a table only.",
        "",
        *table("Ingest", ingests, args.episodes * args.frames, {
            "ingest --workers 2": "ingest --workers 1",
            "ingest --ray ADDRESS --workers 1": "ingest --workers 1",
            "ingest --ray ADDRESS --workers 2": "ingest --workers 2",
            "ingest --ray --workers 2 (own local instance)": "ingest --workers 2"}),
        *table("Tokenize", tokenizes, args.tokenize[0] * args.tokenize[1], {
            "tokenize --ray ADDRESS --workers 1": "tokenize",
            "tokenize --ray ADDRESS --workers 2": "tokenize"}),
        "`tokenize` is one process with torch's default threads (2 here); each Ray worker runs one thread.",
        "",
        "## Ray's cost per episode",
        "",
        f"{args.tiny} two-frame episodes, one at a time, medians of {args.rounds * args.tiny}: staged in this "
        f"process {1000 * local_s:.0f} ms; as a Ray task on a warm worker, shipped through the object store and "
        f"landed in the driver's staging folder {1000 * ray_s:.0f} ms: **Ray adds {1000 * (ray_s - local_s):.0f} ms "
        f"per episode** (an upper bound: in a run the next tasks already run while the driver lands and commits). "
        f"Per command, joining a running cluster and starting the job's workers costs the difference between "
        f"the `--ray ADDRESS` and the local rows above; starting a local instance, the last ingest row's.",
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
