"""LeRobot ingest throughput vs. decode-only on the same files, for the v2.1 and v3.0 layouts.

    python benchmarks/bench_lerobot.py [--episodes 16 --frames 300 --per-video-file 8 --repeat 3]

Decode-only is the physical limit of ingest: every video file decoded once, start to end, with the
same decoder, threads and output resolution, frames discarded (the VPT benchmark's baseline). In
v3 one mp4 concatenates ``--per-video-file`` episodes, so ingest (one episode at a time) must find
each episode inside its file: PyAV seeks to the keyframe before it; decord counts from the start.
Wall-clock rates are best of ``--repeat`` interleaved runs; a second table compares CPU time in one
process, which other load on a shared machine does not distort.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
from dreamer_data.ingest import IngestPlan, ingest  # noqa: E402
from dreamer_data.sources import ReadOptions  # noqa: E402
from dreamer_data.sources.lerobot import LeRobotSource  # noqa: E402
from dreamer_data.video import decode_video  # noqa: E402
from lerobot_makers import write_lerobot  # noqa: E402

HEIGHT, WIDTH, FPS, SIZE = 360, 640, 30, (64, 64)
_TEXTURE = np.repeat(np.repeat(np.random.default_rng(0).integers(0, 8, (HEIGHT * 2 // 40 + 1, WIDTH * 2 // 40 + 1, 3),
                                                                dtype=np.uint8) * 32, 40, axis=0), 40, axis=1)


def textured(code: int, height: int, width: int) -> np.ndarray:
    """A scrolling blocky texture with noise: real decoder work, unlike flat test patterns."""
    y, x = (3 * code) % height, (5 * code) % width
    frame = _TEXTURE[y:y + height, x:x + width].copy()
    rng = np.random.default_rng(code)
    frame[rng.integers(0, height, 300), rng.integers(0, width, 300)] = rng.integers(0, 256, (300, 3))
    return frame


def decode_only(path: str, backend: str) -> int:
    return sum(len(chunk) for chunk in decode_video(path, file=path, size=SIZE, backend=backend, threads=1))


def decode_only_fps(videos: list[str], backend: str, workers: int) -> float:
    start = time.perf_counter()
    if workers == 1:
        frames = sum(decode_only(v, backend) for v in videos)
    else:
        with ProcessPoolExecutor(workers, mp_context=get_context("forkserver")) as pool:
            frames = sum(pool.map(decode_only, videos, [backend] * len(videos)))
    return frames / (time.perf_counter() - start)


def ingest_frames(src: Path, out: Path, backend: str, workers: int) -> int:
    shutil.rmtree(out, ignore_errors=True)
    source = LeRobotSource(str(src), ReadOptions(resolution=SIZE, video_backend=backend))
    report = ingest(source, str(out), IngestPlan(workers=workers))
    assert not report.failed, report.failed
    return report.frames


def ingest_fps(src: Path, out: Path, backend: str, workers: int) -> float:
    start = time.perf_counter()
    frames = ingest_frames(src, out, backend, workers)
    return frames / (time.perf_counter() - start)


def cpu_fps(work) -> float:
    """Frames per CPU-second of this process (all its threads): unaffected by other load on the machine."""
    start = time.process_time()
    frames = work()
    return frames / (time.process_time() - start)


def scan_seconds(src: Path) -> float:
    """Listing episodes plus the exact action-statistics pass (parquet action columns only)."""
    start = time.perf_counter()
    source = LeRobotSource(str(src), ReadOptions(resolution=SIZE))
    source.list_episodes()
    source.action_spec()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--frames", type=int, default=300, help="frames per episode")
    parser.add_argument("--per-video-file", type=int, default=8, help="v3: episodes concatenated per mp4")
    parser.add_argument("--gop", type=int, default=30, help="keyframe interval of the H.264 videos")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best is reported")
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-lerobot-"))
    lengths = [args.frames] * args.episodes
    video = {"gop": args.gop, "bframes": 0, "crf": 23, "paint": textured}
    sources = {}
    for version in ("v2.1", "v3.0"):
        src = work / version
        if not src.exists():
            write_lerobot(src, version, lengths, height=HEIGHT, width=WIDTH, fps=FPS, action_dim=7, state_dim=7,
                          per_data_file=args.episodes, per_video_file=args.per_video_file,
                          row_group_rows=100_000, video=video)
        sources[version] = (src, sorted(str(p) for p in (src / "videos").rglob("*.mp4")))

    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{args.episodes} episodes x {args.frames} frames, {WIDTH}x{HEIGHT} H.264 (GOP {args.gop}) at {FPS} fps "
          f"-> {SIZE[0]}x{SIZE[1]}; v3 holds {args.per_video_file} episodes per mp4; best of {args.repeat}\n")
    print("| layout | backend | workers | video files | decode-only fps | ingest fps | ingest / decode |")
    print("|---|---|---|---|---|---|---|")
    for version, backend, workers in (("v2.1", "pyav", 1), ("v2.1", "pyav", 2), ("v3.0", "pyav", 1),
                                      ("v3.0", "pyav", 2), ("v2.1", "decord", 1), ("v3.0", "decord", 1)):
        src, videos = sources[version]
        decode = rate = 0.0
        for _ in range(args.repeat):  # interleaved, best of N: the machine is shared, noise only slows runs
            decode = max(decode, decode_only_fps(videos, backend, workers))
            rate = max(rate, ingest_fps(src, work / f"store-{version}-{backend}-{workers}", backend, workers))
        print(f"| {version} | {backend} | {workers} | {len(videos)} | {decode:.0f} | {rate:.0f} | {rate / decode:.2f} |",
              flush=True)
    print("\nIn-process (workers=0), frames per CPU-second, so the ratio holds on a busy machine:\n")
    print("| layout | backend | decode-only fps/CPU-s | ingest fps/CPU-s | ingest / decode |")
    print("|---|---|---|---|---|")
    for version, backend in (("v2.1", "pyav"), ("v3.0", "pyav"), ("v2.1", "decord"), ("v3.0", "decord")):
        src, videos = sources[version]
        out = work / f"store-{version}-{backend}-0"
        decode = rate = 0.0
        for _ in range(args.repeat):
            decode = max(decode, cpu_fps(lambda: sum(decode_only(v, backend) for v in videos)))
            rate = max(rate, cpu_fps(lambda: ingest_frames(src, out, backend, 0)))
        print(f"| {version} | {backend} | {decode:.0f} | {rate:.0f} | {rate / decode:.2f} |", flush=True)
    print()
    for version, (src, _) in sources.items():
        print(f"{version}: listing + exact action statistics over {sum(lengths)} rows: {scan_seconds(src):.2f} s")
    print(f"\nload average at end: {os.getloadavg()[0]:.1f}; workdir: {work}")


if __name__ == "__main__":
    main()
