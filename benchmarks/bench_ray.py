"""``--ray`` against the one-machine commands on the same input: ingest and tokenize throughput, Ray's cost.

    python benchmarks/bench_ray.py [--episodes 8 --frames 200 --rounds 3]

Every run is the real command in a fresh process (`python -m cli.data ...`), so each pays what a user's
command pays: the one-machine runs their worker pool's start-up, the Ray runs joining a running local
instance (2 CPUs, started once here, as a cluster would be) their job's worker start-up. One extra Ray
run starts its own local instance (bare ``--ray``). Configurations run once per round, rounds
interleaved; tables give medians, so load from other jobs hits all of them alike. Ray's cost per
episode is the slope: (Ray - local pool) time on many tiny episodes minus that on a few, per episode.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--tiny", type=int, nargs=2, default=(4, 20), help="episode counts for the slope")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/ray.md")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    src = work / "src"
    for index in range(args.episodes):
        write_recording(src, f"ep{index:03d}", args.frames, seed=index)
    few, many = work / "few", work / "many"
    for index in range(max(args.tiny)):
        for folder, count in ((few, min(args.tiny)), (many, max(args.tiny))):
            if index < count:
                write_recording(folder, f"ep{index:03d}", 2, seed=index)
    ckpt = tiny_tokenizer_checkpoint(work / "ckpt")

    logging.getLogger("ray").setLevel(logging.ERROR)
    address = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                       configure_logging=False).address_info["address"]
    store = work / "store"
    timed(command("ingest", "vpt", src, "--out", store, *INGEST), store)  # the store tokenize reads

    def ingest(workers: str, *ray_flags: str, source: Path = src) -> Run:
        out = work / f"out-{len(runs)}"
        return command("ingest", "vpt", source, "--out", out, *INGEST, "--workers", workers, *ray_flags), out, None

    def tokenize(*flags: str) -> Run:
        out = work / f"tok-{len(runs)}"
        return command("tokenize", out, "--ckpt", ckpt, *flags), out, store

    runs: dict[str, Run] = {}
    runs["ingest --workers 1"] = ingest("1")
    runs["ingest --workers 2"] = ingest("2")
    runs["ingest --ray ADDRESS --workers 1"] = ingest("1", "--ray", address)
    runs["ingest --ray ADDRESS --workers 2"] = ingest("2", "--ray", address)
    runs["ingest --ray --workers 2 (own local instance)"] = ingest("2", "--ray")
    ingests = measure(runs, args.rounds)
    runs = {}
    runs["tokenize"] = tokenize()
    runs["tokenize --ray ADDRESS --workers 1"] = tokenize("--ray", address, "--workers", "1")
    runs["tokenize --ray ADDRESS --workers 2"] = tokenize("--ray", address, "--workers", "2")
    tokenizes = measure(runs, args.rounds)
    runs = {}
    for name, folder in (("few", few), ("many", many)):
        runs[f"{name}: ingest --workers 1"] = ingest("1", source=folder)
        runs[f"{name}: ingest --ray ADDRESS --workers 1"] = ingest("1", "--ray", address, source=folder)
    tiny = measure(runs, args.rounds)
    ray.shutdown()

    extra = {name: tiny[f"{name}: ingest --ray ADDRESS --workers 1"] - tiny[f"{name}: ingest --workers 1"]
             for name in ("few", "many")}
    per_episode = (extra["many"] - extra["few"]) / (max(args.tiny) - min(args.tiny))
    frames = args.episodes * args.frames
    lines = [
        "# Ray (`--ray`) against one machine",
        "",
        f"Command: `python benchmarks/bench_ray.py --episodes {args.episodes} --frames {args.frames} --tiny "
        f"{min(args.tiny)} {max(args.tiny)} --rounds {args.rounds}`. Input: {args.episodes} synthetic VPT-like "
        f"recordings x {args.frames} frames (640x360 H.264), ingested at 64x64; tokenize: that store with the "
        f"`tiny` preset's tokenizer (64x64, initial weights). Each run is the real command in a fresh process; "
        f"`--ray ADDRESS` joins a local Ray instance with 2 CPUs kept running by the script (as a cluster is), "
        f"so it pays its job's worker start-up; medians of {args.rounds} interleaved rounds. Machine: the "
        f"project's 2-core CPU box, shared with other jobs, so compare ratios within a table only.",
        "",
        *table("Ingest", ingests, frames, {
            "ingest --workers 2": "ingest --workers 1",
            "ingest --ray ADDRESS --workers 1": "ingest --workers 1",
            "ingest --ray ADDRESS --workers 2": "ingest --workers 2",
            "ingest --ray --workers 2 (own local instance)": "ingest --workers 2"}),
        *table("Tokenize", tokenizes, frames, {
            "tokenize --ray ADDRESS --workers 1": "tokenize",
            "tokenize --ray ADDRESS --workers 2": "tokenize"}),
        "`tokenize` is one process with torch's default threads (2 here); each Ray worker runs one thread.",
        "",
        "## Ray's cost per episode",
        "",
        "| episodes (2 frames each) | `ingest --workers 1` s | `ingest --ray ADDRESS --workers 1` s | Ray extra s |",
        "|---|---|---|---|",
        *(f"| {count} | {tiny[f'{name}: ingest --workers 1']:.2f} | "
          f"{tiny[f'{name}: ingest --ray ADDRESS --workers 1']:.2f} | {extra[name]:.2f} |"
          for name, count in (("few", min(args.tiny)), ("many", max(args.tiny)))),
        "",
        f"Ray's cost per episode over a local worker process (the slope): **{1000 * per_episode:.0f} ms** (a task "
        f"round trip, the staged files shipped through the object store and landed in the driver's staging "
        f"folder); the rest of the extra time is per command (joining the cluster, starting the job's workers).",
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
