"""What the writer lock and versioned latents (issue 17) cost: ingest, tokenize and latents reads.

    python benchmarks/bench_store_safety.py [--episodes 60 --max-steps 300 --rounds 5]

One process, paired interleaved rounds: each round runs every phase on the baseline (A) and the
safe code (B) back to back, on the same inputs, in alternating order. In A the safety mechanisms
are replaced by no-ops here (the library is untouched): ``StoreLocation.lock_for_writing`` returns
None (no flock, no lock file, no sweep of dead writers' ``.tmp``/``.partial`` files), ``tokenize``
removes no old latents version, and latents reads skip the check that the version they read still
exists. Both write a replacing checkpoint's latents to a new path, which costs what the in-place
write it replaced cost. Reported: medians over rounds, the ratio B/A (median of the per-round
ratios, with min-max), and the share of B's time spent inside the mechanisms (clocked in B).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.published import publish  # noqa: E402
from dreamer_data.collect.collector import CollectConfig, collect  # noqa: E402
from dreamer_data.ingest import IngestPlan, ingest  # noqa: E402
from dreamer_data.loaders.window_dataset import WindowDataset  # noqa: E402
from dreamer_data.sources import ReadOptions  # noqa: E402
from dreamer_data.sources.minatar import MinAtarSource  # noqa: E402
from dreamer_data.store import latents as versions  # noqa: E402
from dreamer_data.store.location import StoreLocation, WriteLock  # noqa: E402
from dreamer_data.store.reader import LatentsArray, StoreReader  # noqa: E402
from dreamer_data.tokenize import tokenize_store  # noqa: E402
from dreamer_model.configs import TokenizerConfig, TransformerConfig  # noqa: E402
from dreamer_model.tokenizer import Tokenizer  # noqa: E402
from dreamer_model.tokenizer.frame_encoder import TokenizerFrameEncoder  # noqa: E402

RESOLUTION = (64, 64)
# tests/test_tokenize_store.py's mini transformer at the store's 64x64 frames (64 patches of 8x8), with the
# tiny preset's latent shape (16 x 32 float16: 1 KiB a row, 1 MiB a latents chunk), so reads move real sizes
MINI = TransformerConfig(dim=32, depth=2, heads=2, kv_heads=1, head_dim=16, registers=1, time_every=2)
TOKENIZER = TokenizerConfig(height=64, width=64, patch=8, latent_tokens=16, latent_dim=32, context=3,
                            encoder=MINI, decoder=MINI)
WINDOW = 16
PHASES = ("ingest", "tokenize", "overwrite_keep", "overwrite_remove", "windows_seq", "windows_random")
LABELS = {
    "ingest": "ingest (frames/s)",
    "tokenize": "tokenize, first (frames/s)",
    "overwrite_keep": "tokenize --overwrite, v2 (frames/s)",
    "overwrite_remove": "tokenize --overwrite, v3: removes v1 (frames/s)",
    "windows_seq": "WindowDataset latents, every window in order (windows/s)",
    "windows_random": "WindowDataset latents, random order, no chunk cache (windows/s)",
}


@contextmanager
def baseline() -> Iterator[None]:
    """The safety mechanisms replaced by no-ops for the duration of the block (arm A)."""
    saved = (StoreLocation.lock_for_writing, versions.prune, LatentsArray._checked)
    StoreLocation.lock_for_writing = lambda self: None  # no flock, no lock file, no temp sweep
    versions.prune = lambda location, keep: []  # tokenize calls versions.prune: old versions stay
    LatentsArray._checked = lambda self, rows: rows  # no existence check after a latents read
    try:
        yield
    finally:
        StoreLocation.lock_for_writing, versions.prune, LatentsArray._checked = saved


@contextmanager
def safe(spent: dict[str, float]) -> Iterator[None]:
    """The code as shipped (arm B), with the seconds spent inside each mechanism added up in ``spent``."""
    saved = (StoreLocation.lock_for_writing, WriteLock.release, versions.prune, LatentsArray._checked)

    def clocked(name: str, function: Callable) -> Callable:
        def call(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - start
        return call

    StoreLocation.lock_for_writing = clocked("lock", saved[0])  # flock, pid, sweep of dead writers' temp files
    WriteLock.release = clocked("lock", saved[1])  # delete the lock file, drop the flock
    versions.prune = clocked("prune", saved[2])
    LatentsArray._checked = clocked("check", saved[3])
    try:
        yield
    finally:
        StoreLocation.lock_for_writing, WriteLock.release, versions.prune, LatentsArray._checked = saved


def encoder(seed: int) -> TokenizerFrameEncoder:
    torch.manual_seed(seed)
    return TokenizerFrameEncoder(Tokenizer(TOKENIZER), f"sha256:bench-store-safety-{seed}",
                                 {"checkpoint": f"mini-{seed}"})


def timed(work: Callable[[], int]) -> tuple[float, float]:
    """(units per wall second, units per CPU second of this process) of ``work()``, which returns units."""
    wall, cpu = time.perf_counter(), time.process_time()
    units = work()
    return units / (time.perf_counter() - wall), units / (time.process_time() - cpu)


def read_windows(store: Path, order: np.ndarray | None, cache_bytes: int | None, passes: int) -> int:
    """Read the latents of windows (all, in ``order`` or in index order) ``passes`` times, cold each pass."""
    read = 0
    for _ in range(passes):
        kwargs = {} if cache_bytes is None else {"cache_bytes": cache_bytes}
        dataset = WindowDataset(store, WINDOW, load=["latents"], **kwargs)
        for index in (order if order is not None else range(len(dataset))):
            dataset[int(index)]
        read += len(order) if order is not None else len(dataset)
    return read


def phases(raw: Path, encoders: list[TokenizerFrameEncoder], args) -> dict[str, Callable[[Path], int]]:
    """Each phase as work on one arm's store, in pipeline order; each returns the frames or windows it did."""
    def do_ingest(store: Path) -> int:
        shutil.rmtree(store, ignore_errors=True)
        report = ingest(MinAtarSource(str(raw), ReadOptions(resolution=RESOLUTION)), str(store), IngestPlan(workers=0))
        assert not report.failed, report.failed
        return report.frames

    def do_tokenize(seed: int, overwrite: bool) -> Callable[[Path], int]:
        def work(store: Path) -> int:
            report = tokenize_store(str(store), encoders[seed], overwrite=overwrite)
            assert report.frames > 0 and not report.already_done
            return report.frames
        return work

    def random_order(store: Path) -> np.ndarray:
        windows = len(WindowDataset(store, WINDOW, load=["latents"]))
        return np.random.default_rng(0).permutation(windows)[:args.random_windows]

    return {
        "ingest": do_ingest,
        "tokenize": do_tokenize(0, False),
        "overwrite_keep": do_tokenize(1, True),
        "overwrite_remove": do_tokenize(2, True),
        "windows_seq": lambda store: read_windows(store, None, None, args.seq_passes),
        "windows_random": lambda store: read_windows(store, random_order(store), 0, 1),
    }


def one_round(work: dict[str, Callable[[Path], int]], stores: dict[str, Path], order: tuple[str, str],
              spent: dict[str, float]) -> dict[str, dict[str, tuple[float, float, float]]]:
    """Each phase on both arms back to back (in ``order``), the arms on their own stores:
    {arm: {phase: (wall rate, cpu rate, share of wall time inside the mechanisms)}}."""
    result: dict[str, dict] = {arm: {} for arm in order}
    for phase, run in work.items():
        for arm in order:
            spent.clear()
            with (baseline() if arm == "A" else safe(spent)):
                start = time.perf_counter()
                wall, cpu = timed(lambda: run(stores[arm]))
                result[arm][phase] = (wall, cpu, sum(spent.values()) / (time.perf_counter() - start))
    return result


def stored_latents(store: Path) -> list[str]:
    return versions.stored_versions(StoreLocation(str(store)))


def micro_costs(store: Path, repeat: int = 200) -> dict[str, float]:
    """Seconds per call of each mechanism on the tokenized store, for where the time goes."""
    location = StoreLocation(str(store))
    path = versions.published(StoreReader(location).manifest)[1]

    def per_call(work: Callable[[], object], n: int = repeat) -> float:
        start = time.perf_counter()
        for _ in range(n):
            work()
        return (time.perf_counter() - start) / n

    def lock_cycle() -> None:
        with location.writing():
            pass

    return {"lock": per_call(lock_cycle, 50), "sweep": per_call(location._remove_temp_files, 50),
            "exists": per_call(lambda: versions.exists(location, path), 2000),
            "files": sum(1 for item in location.local_path.rglob("*") if item.is_file())}


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in subprocess.run(
        ["lscpu"], capture_output=True, text=True).stdout.splitlines() if line.startswith("Model name")), "?")
    return f"{model}, {os.cpu_count()} cores ({platform.machine()}), torch {torch.__version__}"


def load() -> str:
    return "/".join(f"{value:.1f}" for value in os.getloadavg())


def summarise(rounds: list[dict[str, dict]], phase: str) -> tuple[float, ...]:
    """Medians of A and B (wall), B/A wall (median, min, max), B/A cpu (median), B's share in the mechanisms."""
    a = np.array([r["A"][phase][0] for r in rounds])
    b = np.array([r["B"][phase][0] for r in rounds])
    wall = b / a
    cpu = np.array([r["B"][phase][1] / r["A"][phase][1] for r in rounds])
    share = np.array([r["B"][phase][2] for r in rounds])
    return float(np.median(a)), float(np.median(b)), float(np.median(wall)), float(wall.min()), float(wall.max()), \
        float(np.median(cpu)), float(np.median(share))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=60)
    parser.add_argument("--max-steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seq-passes", type=int, default=10, help="cold passes over every window in order")
    parser.add_argument("--random-windows", type=int, default=1000, help="windows read in random order")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (tokenize)")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--results", default=None,
                        help="write the markdown here (benchmarks/results/store_safety.md)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-store-safety-"))
    raw = work / "raw"
    began, load_start = time.perf_counter(), load()

    collected = collect(CollectConfig(env="minatar", game="breakout", policy="noisy-scripted", seed=0,
                                      max_steps=args.max_steps), raw, args.episodes, workers=1)
    encoders = [encoder(seed) for seed in range(3)]
    work_of = phases(raw, encoders, args)
    stores = {"A": work / "store-a", "B": work / "store-b"}
    spent: dict[str, float] = {}
    one_round({phase: work_of[phase] for phase in ("ingest", "tokenize", "windows_seq")}, stores, ("B",),
              spent)  # warm-up of the process (imports, torch kernels, page cache); not reported

    rounds = []
    for index in range(args.rounds):
        result = one_round(work_of, stores, ("A", "B") if index % 2 == 0 else ("B", "A"), spent)
        rounds.append(result)
        print(f"round {index + 1}/{args.rounds}: " + ", ".join(
            f"{phase} {result['B'][phase][0] / result['A'][phase][0]:.3f}" for phase in PHASES), flush=True)
    # the arms did what they claim: A kept every version, B removed v1 when it published v3
    kept, left = stored_latents(stores["A"]), stored_latents(stores["B"])
    assert len(kept) == 3 and kept[0] == versions.FIRST_PATH and kept[1:] == left, (kept, left)
    store = stores["B"]
    micro = micro_costs(store)
    frames = StoreReader(str(store)).total_frames
    windows = len(WindowDataset(store, WINDOW, load=["latents"]))
    shutil.rmtree(work, ignore_errors=True)
    seconds = time.perf_counter() - began

    lines = [
        "# Store safety: cost of the writer lock and versioned latents (issue 17)",
        "",
        f"Data: {args.episodes} MinAtar breakout episodes collected in the script (noisy-scripted, seed 0, "
        f"<= {args.max_steps} steps): {collected.steps:,} steps, {frames:,} stored rows at "
        f"{RESOLUTION[0]}x{RESOLUTION[1]}; ingest with `--workers 0` (one process). Tokenizer: "
        f"the tests' mini transformer (dim 32, depth 2) at 64x64, patch 8, with the tiny preset's 16x32 "
        f"latents (1 MiB per 1,024-row chunk), untrained, "
        f"{args.threads} torch thread(s). Windows: {WINDOW} frames, stride 1, `load=[\"latents\"]`, "
        f"{windows:,} per pass.",
        "",
        f"Method: one process, {args.rounds} paired rounds after a warm-up. A = baseline, the mechanisms "
        "replaced by no-ops in this script only: `StoreLocation.lock_for_writing` returns None (no flock, no "
        "lock file, no sweep of dead writers' temp files), `tokenize` removes no old latents version, latents "
        "reads skip the check that their version still exists. B = the code as shipped. A and B each have "
        "their own store; every phase runs on both arms back to back, A first in odd rounds and B first in "
        "even ones: ingest into a fresh store; tokenize it (v1); `--overwrite` with a second checkpoint "
        "(v2; v1 kept for readers opened before); `--overwrite` with a third (v3; v1 removed, in B); read "
        f"the latents of every window in index order ({args.seq_passes} passes, each with a fresh dataset "
        "and a cold chunk cache: one zarr read and one check per 1,024-row chunk); read "
        f"{args.random_windows:,} windows in random order with `cache_bytes=0` (one zarr read and one "
        "check per window: the worst case). Both arms write a replacing checkpoint's latents to a new path, "
        "the same work as the in-place write it replaced; the in-place write (zarr's `create_array(..., "
        "overwrite=True)`) also deleted the old array first, so skipping the removal in A overstates what "
        "versioning adds. Ratio = median of the per-round B/A throughput "
        "ratios (1.000 = free, 0.980 = 2 % slower), wall clock, min-max over rounds; the CPU-time ratio of "
        "this process beside it.",
        "",
        f"Machine: {machine()}, **shared with other jobs** (load average {load_start} at the start, "
        f"{load()} at the end); run under `nice -n 10`. Whole run {seconds:.0f} s.",
        "",
        "| | A: no-op (median) | B: safe (median) | B/A wall (min-max) | B/A CPU time "
        "| B's time inside the mechanisms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    costly, noisy, largest = [], [], (0.0, "")
    for phase in PHASES:
        a, b, ratio, low, high, cpu, share = summarise(rounds, phase)
        name = LABELS[phase].split(" (")[0]
        largest = max(largest, (share, name))
        lines.append(f"| {LABELS[phase]} | {a:,.0f} | {b:,.0f} | {ratio:.3f} ({low:.3f}-{high:.3f}) | {cpu:.3f} | "
                     f"{share * 100:.2f} % |")
        if share >= 0.02:
            costly.append(f"{name}: {share * 100:.1f} % of its time inside the mechanisms")
        elif ratio < 0.98:
            noisy.append(f"{name} (median {ratio:.3f}, rounds {low:.3f}-{high:.3f}, CPU {cpu:.3f}, "
                         f"mechanisms {share * 100:.2f} %)")
    lines += [
        "",
        "The last column is measured, not inferred: in B every call of `lock_for_writing`, `WriteLock.release`, "
        "the latents removal (`latents.prune`) and the post-read check (`LatentsArray._checked`) is clocked, "
        "and their sum is divided by the phase's wall time (median over rounds). It resolves what the "
        "end-to-end ratios cannot on a shared 2-core machine, where rounds of the same code differ by more "
        "than 2 %.",
        "",
        f"Where the time goes, measured on the final tokenized store ({micro['files']:,} files): one lock "
        f"cycle (flock, pid, temp sweep, delete) {micro['lock'] * 1e3:.2f} ms, of which the sweep (a walk of "
        f"the store) {micro['sweep'] * 1e3:.2f} ms; one latents existence check (a stat of the version's "
        f"`zarr.json` through fsspec) {micro['exists'] * 1e6:.1f} µs. The sweep walks the whole store: "
        f"{micro['sweep'] / micro['files'] * 1e6:.0f} µs per file here, so about "
        f"{micro['sweep'] / micro['files'] * 1e5:.0f} s per command on a store of 100,000 files (a fixed cost, "
        f"not per frame). A command takes the lock once; a "
        f"reader checks once per latents read from zarr (once per chunk with the chunk cache, once per "
        f"window without it).",
        "",
        ("**Costs at or above 2 %:** " + "; ".join(costly) + ".") if costly else
        f"**Result:** the lock and versioned latents take under 2 % of every phase's time (last column; the "
        f"largest share, {largest[0] * 100:.2f} %, in {largest[1]}).",
    ]
    if noisy:
        lines += ["", "Wall-clock medians below 0.98 although the time inside the mechanisms is under 2 % "
                      "(compare the CPU-time ratio and the per-round spread): " + "; ".join(noisy) + "."]
    publish(lines, args.results, " (run with `nice -n 10`)")


if __name__ == "__main__":
    main()
