"""Ingest's RGB conversion of decoded source frames (``dreamer_data/video/decode.py``): swscale's default thread
count (a thread per CPU) against the one thread decode.py now asks for, at native 360x640 and resized to 128x128.

    python benchmarks/bench_swscale_threads.py [--frames 300 --rounds 5 --out benchmarks/results/swscale_threads.md]

Both sides decode the same VPT-like H.264 file with one codec thread and convert every frame with the same
``VideoFrame.to_ndarray`` arguments but the thread count; rounds are interleaved and medians reported.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.vpt_like import HEIGHT, WIDTH, write_recording  # noqa: E402
from dreamer_data.video.decode import open_pyav, pyav_frames, pyav_reformat  # noqa: E402

SWSCALE_DEFAULT = "default (a thread per CPU)"


def frames_per_s(video: str, size: tuple[int, int] | None, threads: str) -> float:
    reformat = pyav_reformat(size)
    if threads == SWSCALE_DEFAULT:
        del reformat["threads"]
    container, stream = open_pyav(video, video, threads=1)
    start, count = time.perf_counter(), 0
    with container:
        for frame in pyav_frames(container, stream):
            frame.to_ndarray(**reformat)
            count += 1
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        video, _ = write_recording(Path(work), "rec", args.frames)
        load = os.getloadavg()[0]
        cases = [(size, threads) for size in (None, (128, 128)) for threads in (SWSCALE_DEFAULT, "1")]
        rates: dict[tuple, list[float]] = {case: [] for case in cases}
        for _ in range(args.rounds):
            for case in cases:
                rates[case].append(frames_per_s(str(video), *case))
    lines = ["# swscale threads in ingest's frame conversion", "",
             f"Command: `python benchmarks/bench_swscale_threads.py --frames {args.frames} --rounds {args.rounds}`", "",
             f"Machine: {os.cpu_count()}-core CPU ({platform.machine()}) shared with other jobs (load average "
             f"{load:.1f} at start). One VPT-like H.264 recording (`benchmarks/vpt_like.py`, {HEIGHT}x{WIDTH}, "
             f"{args.frames} frames), decoded with one codec thread and converted to RGB as `decode.py` does.", "",
             "| converted to | swscale threads | frames/s (median) | ÷ default |", "|---|---|---|---|"]
    for size, threads in cases:
        rate = statistics.median(rates[size, threads])
        base = statistics.median(rates[size, SWSCALE_DEFAULT])
        label = f"{size[0]}x{size[1]} (area)" if size else f"{HEIGHT}x{WIDTH} (native)"
        lines.append(f"| {label} | {threads} | {rate:.0f} | {rate / base:.2f}x |")
    lines += ["", f"{args.rounds} interleaved rounds. `decode.py` converts with one thread: ingest's workers are "
                  "the parallelism, and swscale's threads only hand slices of one small frame around."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
