"""Ingest throughput vs. decode-only, worker scaling, peak memory, bytes per frame.

    python benchmarks/bench_ingest.py [--episodes 10 --frames 1200 --long-frames 12000]

Every ratio compares runs made in this same process on the same files: decode-only is the
physical limit of ingest (same decoder, threads and output resolution, frames discarded).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.vpt_like import write_recording  # noqa: E402
from dreamer_data.ingest import IngestPlan, ingest  # noqa: E402
from dreamer_data.sources import ReadOptions  # noqa: E402
from dreamer_data.sources.base import DEFAULT_FRAME_CHUNK_ROWS  # noqa: E402
from dreamer_data.sources.vpt import VptSource  # noqa: E402
from dreamer_data.store.reader import StoreReader  # noqa: E402
from dreamer_data.store.summary import summarize  # noqa: E402
from dreamer_data.video import decode_video  # noqa: E402


def decode_only(path: str, backend: str, size: tuple[int, int]) -> int:
    return sum(len(chunk) for chunk in decode_video(path, file=path, size=size, backend=backend, threads=1))


def decode_only_fps(videos: list[str], backend: str, size: tuple[int, int], workers: int) -> float:
    start = time.perf_counter()
    if workers == 1:
        frames = sum(decode_only(v, backend, size) for v in videos)
    else:
        with ProcessPoolExecutor(workers, mp_context=get_context("forkserver")) as pool:
            frames = sum(pool.map(decode_only, videos, [backend] * len(videos), [size] * len(videos)))
    return frames / (time.perf_counter() - start)


def cpu_seconds_per_frame(work, repeat: int = 3) -> float:
    """Best-of-``repeat`` CPU time of ``work()`` (which returns frames) in this process: robust to other load."""
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        frames = work()
        best = min(best, (time.process_time() - start) / frames)
    return best


def ingest_in_process(src: Path, out: Path, backend: str, size: tuple[int, int]) -> int:
    shutil.rmtree(out, ignore_errors=True)
    source = VptSource(str(src), ReadOptions(resolution=size, video_backend=backend))
    report = ingest(source, str(out), IngestPlan(workers=0))
    assert not report.failed, report.failed
    return report.frames


def ingest_fps(src: Path, out: Path, backend: str, size: tuple[int, int], workers: int) -> float:
    shutil.rmtree(out, ignore_errors=True)
    source = VptSource(str(src), ReadOptions(resolution=size, video_backend=backend))
    start = time.perf_counter()
    report = ingest(source, str(out), IngestPlan(workers=workers))
    elapsed = time.perf_counter() - start
    assert not report.failed, report.failed
    return report.frames / elapsed


def peak_rss_of_ingest(src: Path, out: Path, resolution: str) -> float:
    """Peak resident memory (MiB) of the whole `dreamer-data ingest` process tree, sampled every 20 ms."""
    shutil.rmtree(out, ignore_errors=True)
    process = subprocess.Popen([sys.executable, "-m", "cli.data", "ingest", "vpt", str(src), "--out", str(out),
                                "--resolution", resolution], cwd=Path(__file__).resolve().parents[1],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    root = psutil.Process(process.pid)
    peak = 0
    while process.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.NoSuchProcess:
            pass
        time.sleep(0.02)
    if process.returncode != 0:
        raise RuntimeError(f"ingest exited {process.returncode}")
    return peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--frames", type=int, default=1200)
    parser.add_argument("--long-frames", type=int, default=12000, help="the 10-minute recording for memory")
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-ingest-"))
    src = work / "vpt"
    if not src.exists():
        for i in range(args.episodes):
            write_recording(src, f"episode-{i:03d}", args.frames, seed=i)
    videos = sorted(str(p) for p in src.glob("*.mp4"))
    size = (64, 64)

    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")
    print("| backend | decode-only CPU ms/frame | ingest CPU ms/frame (decode + stage + commit) | decode / ingest |")
    print("|---|---|---|---|")
    for backend in ("pyav", "decord"):
        decode = cpu_seconds_per_frame(lambda: sum(decode_only(v, backend, size) for v in videos))
        full = cpu_seconds_per_frame(lambda: ingest_in_process(src, work / f"store-{backend}-0", backend, size))
        print(f"| {backend} | {1e3 * decode:.3f} | {1e3 * full:.3f} | {decode / full:.2f} |", flush=True)
    print()
    print(f"| backend | workers | decode-only fps | ingest fps | ingest / decode | scaling vs 1 worker |")
    print(f"|---|---|---|---|---|---|")
    for backend in ("pyav", "decord"):
        single = None
        for workers in (1, 2):
            decode = decode_only_fps(videos, backend, size, workers)
            rate = ingest_fps(src, work / f"store-{backend}-{workers}", backend, size, workers)
            single = single or rate
            print(f"| {backend} | {workers} | {decode:.0f} | {rate:.0f} | {rate / decode:.2f} | {rate / single:.2f} |",
                  flush=True)

    print()
    print("| stored resolution | bytes / frame (frames+actions) | compression | codec |")
    print("|---|---|---|---|")
    for resolution in ((64, 64), (128, 128)):
        out = work / f"store-{resolution[0]}"
        ingest_fps(src, out, "pyav", resolution, 2)
        summary = summarize(StoreReader(str(out)))
        print(f"| {resolution[0]}x{resolution[1]} | {summary['bytes_per_frame']:.0f} | "
              f"{summary['compression_ratio']:.1f}x | zstd level 3, {DEFAULT_FRAME_CHUNK_ROWS}-frame chunks |")
    print(f"| (source H.264 640x360) | {sum(Path(v).stat().st_size for v in videos) / (args.episodes * args.frames):.0f} | | |")

    long_src = work / "vpt-long"
    if not long_src.exists():
        write_recording(long_src, "ten-minutes", args.long_frames, seed=99)
    print()
    print("| recording | stored resolution | peak RSS of ingest (MiB) |")
    print("|---|---|---|")
    for resolution in ("64x64", "128x128"):
        peak = peak_rss_of_ingest(long_src, work / f"store-long-{resolution}", resolution)
        print(f"| {args.long_frames} frames 640x360 ({args.long_frames / 20 / 60:.0f} min) | {resolution} | {peak:.0f} |")
    print(f"\nworkdir: {work}")


if __name__ == "__main__":
    main()
