"""``--ray`` against the one-process commands on the same input: ingest and tokenize throughput, Ray's cost.

    python benchmarks/bench_ray.py [--episodes 8 --frames 300 --tiny-episodes 24 --rounds 3]

One local Ray instance (2 CPUs) is started once, in this process, as a driver would; its start-up is
reported apart. Every configuration runs once per round, rounds interleaved, and the table gives
medians, so load from other jobs on the machine hits all of them alike. Ray's cost per episode is the
difference between Ray with one worker and one local worker process, per episode, on many tiny
episodes (where decoding costs next to nothing).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import ray
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.vpt_like import write_recording  # noqa: E402
from dreamer_data.cluster.ingest import ingest_on_ray  # noqa: E402
from dreamer_data.cluster.tokenize import tokenize_on_ray  # noqa: E402
from dreamer_data.ingest import IngestPlan, ingest  # noqa: E402
from dreamer_data.sources import ReadOptions  # noqa: E402
from dreamer_data.sources.vpt import VptSource  # noqa: E402
from dreamer_data.tokenize import tokenize_store  # noqa: E402
from dreamer_model.checkpoint import model_hash, save_checkpoint  # noqa: E402
from dreamer_model.configs import to_dict  # noqa: E402
from dreamer_model.presets import preset  # noqa: E402
from dreamer_model.tokenizer import Tokenizer  # noqa: E402
from dreamer_model.tokenizer.frame_encoder import TokenizerFrameEncoder  # noqa: E402

SIZE = (64, 64)


def timed(run: Callable[[], int]) -> tuple[float, int]:
    """(seconds, frames) of one run."""
    start = time.perf_counter()
    frames = run()
    return time.perf_counter() - start, frames


def ingest_run(src: Path, out: Path, workers: int, on_ray: bool) -> Callable[[], int]:
    def run() -> int:
        shutil.rmtree(out, ignore_errors=True)
        source = VptSource(str(src), ReadOptions(resolution=SIZE))
        plan = IngestPlan(workers=workers)
        report = ingest_on_ray(source, str(out), plan, "local") if on_ray else ingest(source, str(out), plan)
        assert not report.failed, report.failed
        return report.frames
    return run


def tokenize_run(store: Path, out: Path, ckpt: Path, workers: int | None, threads: int) -> Callable[[], int]:
    """``workers`` None: the one-process command with ``threads`` torch threads; else that many Ray workers."""
    def run() -> int:
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(store, out)
        torch.set_num_threads(threads)
        encoder = TokenizerFrameEncoder.from_checkpoint(ckpt, device="cpu")
        if workers is None:
            return tokenize_store(str(out), encoder).frames
        make = lambda: TokenizerFrameEncoder.from_checkpoint(ckpt, device="cpu")  # noqa: E731
        return tokenize_on_ray(str(out), encoder, make, "local", workers=workers).frames
    return run


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


def measure(runs: dict[str, Callable[[], int]], rounds: int) -> dict[str, tuple[float, int]]:
    """Median seconds per configuration over interleaved rounds, with its frame count."""
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    frames: dict[str, int] = {}
    for round_index in range(rounds):
        for name, run in runs.items():
            elapsed, frames[name] = timed(run)
            seconds[name].append(elapsed)
            print(f"round {round_index}: {name}: {elapsed:.2f} s", file=sys.stderr)
    return {name: (statistics.median(values), frames[name]) for name, values in seconds.items()}


def table(title: str, results: dict[str, tuple[float, int]], baselines: dict[str, str]) -> list[str]:
    lines = [f"## {title}", "", "| run | median s | frames/s | vs baseline |", "|---|---|---|---|"]
    for name, (seconds, frames) in results.items():
        base = baselines.get(name)
        ratio = f"{results[base][0] / seconds:.2f}x of `{base}`" if base else "baseline"
        lines.append(f"| `{name}` | {seconds:.2f} | {frames / seconds:.0f} | {ratio} |")
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--tiny-episodes", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/ray.md")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    src, tiny = work / "src", work / "tiny"
    for index in range(args.episodes):
        write_recording(src, f"ep{index:03d}", args.frames, seed=index)
    for index in range(args.tiny_episodes):
        write_recording(tiny, f"ep{index:03d}", 2, seed=index)

    logging.getLogger("ray").setLevel(logging.ERROR)
    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    startup = time.perf_counter() - start
    ray.get(ray.remote(lambda: 0).remote())  # first worker process started (what one run would wait for)

    ingests = measure({
        "ingest --workers 1": ingest_run(src, work / "i1", 1, False),
        "ingest --workers 2": ingest_run(src, work / "i2", 2, False),
        "ingest --ray --workers 1": ingest_run(src, work / "r1", 1, True),
        "ingest --ray --workers 2": ingest_run(src, work / "r2", 2, True),
    }, args.rounds)
    tiny_runs = measure({"tiny: ingest --workers 1": ingest_run(tiny, work / "t1", 1, False),
                         "tiny: ingest --ray --workers 1": ingest_run(tiny, work / "tr1", 1, True)}, args.rounds)
    ckpt = tiny_tokenizer_checkpoint(work / "ckpt")
    tokenizes = measure({
        "tokenize (1 thread)": tokenize_run(work / "i1", work / "k0", ckpt, None, 1),
        "tokenize (2 threads)": tokenize_run(work / "i1", work / "k00", ckpt, None, 2),
        "tokenize --ray --workers 1": tokenize_run(work / "i1", work / "k1", ckpt, 1, 1),
        "tokenize --ray --workers 2": tokenize_run(work / "i1", work / "k2", ckpt, 2, 1),
    }, args.rounds)
    ray.shutdown()

    overhead = (tiny_runs["tiny: ingest --ray --workers 1"][0] - tiny_runs["tiny: ingest --workers 1"][0])
    lines = [
        "# Ray (`--ray`) against one machine",
        "",
        f"Command: `python benchmarks/bench_ray.py --episodes {args.episodes} --frames {args.frames} "
        f"--tiny-episodes {args.tiny_episodes} --rounds {args.rounds}`. Input: {args.episodes} synthetic VPT-like "
        f"recordings x {args.frames} frames (640x360 H.264, stored at 64x64); tokenize: the `tiny` preset's "
        f"tokenizer (64x64) over that store. One local Ray instance with 2 CPUs in the benchmark process "
        f"(start-up {startup:.1f} s, not counted below); medians of {args.rounds} interleaved rounds. Machine: the "
        f"project's 2-core CPU box, shared with other jobs, so only ratios within a table compare.",
        "",
        *table("Ingest", ingests, {"ingest --ray --workers 1": "ingest --workers 1",
                                   "ingest --ray --workers 2": "ingest --workers 2",
                                   "ingest --workers 2": "ingest --workers 1"}),
        *table("Tokenize", tokenizes, {"tokenize --ray --workers 1": "tokenize (1 thread)",
                                       "tokenize --ray --workers 2": "tokenize (2 threads)",
                                       "tokenize (2 threads)": "tokenize (1 thread)"}),
        "## Ray's cost per episode",
        "",
        f"{args.tiny_episodes} two-frame episodes: one local worker process {tiny_runs['tiny: ingest --workers 1'][0]:.2f} s, "
        f"one Ray worker {tiny_runs['tiny: ingest --ray --workers 1'][0]:.2f} s: "
        f"**{1000 * overhead / args.tiny_episodes:.0f} ms per episode** more on Ray (a task round trip, the staged "
        f"files shipped through the object store and landed in the driver's staging folder).",
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
