"""Video-backed frames (``ingest --frames-as video``) at 360x640: bytes and PSNR against the source H.264, and
16-frame windows per second from a 2-worker DataLoader against the zarr field and against seeking into the mp4,
as RGB and as the codec's yuv420p planes (``frame_format="yuv420p"``, the source read the same way).

    python benchmarks/bench_video_frames.py [--recordings 2 --seconds 30 --rounds 5 --out benchmarks/results/video_frames.md]

Every ratio compares measurements made in this one process on the same windows (one seeded list of windows
for every reader); rounds are interleaved and medians reported, because other jobs share the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

import av
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.vpt_like import FPS, HEIGHT, WIDTH, write_recording  # noqa: E402
from dreamer_data.loaders import WindowDataset, WindowSampler  # noqa: E402
from dreamer_data.store.reader import StoreReader  # noqa: E402
from dreamer_data.video import decode_video, yuv420_to_rgb  # noqa: E402
from dreamer_data.video.clip_reader import copy_planes  # noqa: E402

T = 16
BATCH = 4  # 16 x 360x640x3 uint8 = 11 MB a window


def build(src: Path, out: Path, codec: str | None, gop: int | None = None) -> Path:
    """Ingest the recordings at native size with the CLI (2 workers): frames as a zarr array (codec None) or as
    video clips. A separate process, as a user runs it (and this process forks DataLoader workers later)."""
    if not out.exists():
        video = ["--frames-as", "video", "--codec", codec, "--gop", str(gop)] if codec else []
        subprocess.run([sys.executable, "-m", "cli.data", "ingest", "vpt", str(src), "--out", str(out), "--workers", "2",
                        *video], check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                       stdout=subprocess.DEVNULL)
    return out


def frame_bytes(store: Path) -> int:
    folder = store / "data" / ("frames_video" if (store / "data" / "frames_video").exists() else "frames")
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def psnr(stored: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Per-frame PSNR (dB) of ``stored`` against ``source``."""
    mse = ((stored.astype(np.float64) - source) ** 2).reshape(len(stored), -1).mean(axis=1)
    return 10 * np.log10(255.0 ** 2 / np.maximum(mse, 1e-12))


def quality(store: Path, videos: dict[str, Path]) -> np.ndarray:
    """PSNR of every stored frame against the same frame decoded from the source mp4."""
    reader = StoreReader(str(store))
    frames = reader.array("frames")
    scores = []
    for episode in reader.episodes:
        offset = episode["start"]
        for chunk in decode_video(str(videos[episode["id"]]), file=str(videos[episode["id"]]), chunk=64):
            scores.append(psnr(frames[offset:offset + len(chunk)], chunk))
            offset += len(chunk)
    return np.concatenate(scores)


class SourceWindows(Dataset):
    """The baseline: seek into the source mp4 (kept open per worker) to the keyframe before the window, decode it."""

    def __init__(self, windows: list[tuple[str, int]], videos: dict[str, Path], frame_format: str):
        self.windows, self.videos = windows, {k: str(v) for k, v in videos.items()}
        self.frame_format = frame_format
        self.containers: dict[str, av.container.InputContainer] = {}
        self.pid = None

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if self.pid != os.getpid():
            self.containers, self.pid = {}, os.getpid()
        episode, start = self.windows[index]
        if episode not in self.containers:
            self.containers[episode] = av.open(self.videos[episode])
            self.containers[episode].streams.video[0].codec_context.thread_count = 1
        container = self.containers[episode]
        stream = container.streams.video[0]
        base = stream.start_time or 0
        container.seek(int(round(start / FPS / stream.time_base)) + base, stream=stream, backward=True, any_frame=False)
        frames = []
        for frame in container.decode(stream):
            if int(round((frame.pts - base) * stream.time_base * FPS)) >= start:
                frames.append(frame)
                if len(frames) == T:
                    break
        height, width = frames[0].height, frames[0].width
        shape = (height * 3 // 2, width) if self.frame_format == "yuv420p" else (height, width, 3)
        out = np.empty((T, *shape), np.uint8)
        for row, frame in zip(out, frames):  # copied as WindowDataset copies
            if self.frame_format == "yuv420p":
                copy_planes(frame, row)
            else:
                row[...] = frame.to_ndarray(format="rgb24", threads=1)
        return {"frames": torch.from_numpy(out)}


class HandOver(Dataset):
    """Windows that cost nothing to make: what the DataLoader's hand-over of a window's bytes alone allows."""

    def __init__(self, frame_format: str):
        self.shape = (T, HEIGHT * 3 // 2, WIDTH) if frame_format == "yuv420p" else (T, HEIGHT, WIDTH, 3)

    def __len__(self) -> int:
        return 1 << 20

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"frames": torch.empty(self.shape, dtype=torch.uint8)}


class Picked(Dataset):
    """Window ``order[i]`` of ``dataset`` (the same windows, in the same order, for every reader)."""

    def __init__(self, dataset: Dataset, order: list[int]):
        self.dataset, self.order = dataset, order

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.dataset[self.order[index]]


def windows_per_s(dataset: Dataset, batches: int) -> float:
    """Wall-clock windows/s of a fresh 2-worker DataLoader after its first batch (worker start-up excluded)."""
    loader = DataLoader(dataset, batch_size=BATCH, num_workers=2)
    iterator = iter(loader)
    next(iterator)
    start = time.perf_counter()
    done = sum(len(batch["frames"]) for batch in islice(iterator, batches))
    return done / (time.perf_counter() - start)


def ms_per_window(dataset: Dataset, indices: range) -> float:
    """Milliseconds per window read in this one process (no DataLoader): the reader's own work."""
    start = time.perf_counter()
    for index in indices:
        dataset[index]
    return (time.perf_counter() - start) / len(indices) * 1e3


def convert_cost(store: Path, order: list[int]) -> str:
    """What ``yuv420_to_rgb`` costs the consumer per window on this CPU (on a GPU it is one small kernel)."""
    planes = WindowDataset(str(store), T, load="frames", frame_format="yuv420p")
    batch = torch.stack([planes[i]["frames"] for i in order[:BATCH]])
    seconds = []
    for _ in range(5):
        start = time.perf_counter()
        yuv420_to_rgb(batch)
        seconds.append(time.perf_counter() - start)
    return (f"`yuv420_to_rgb` on this CPU (torch, 1 thread): {statistics.median(seconds) / BATCH * 1e3:.1f} ms per "
            f"window, paid by the consumer (on the trainer's GPU in real training).")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--source-gop", type=int, default=100, help="keyframe interval of the recordings ingested")
    parser.add_argument("--also-source-gop", type=int, default=250, help="a second copy of the recordings, read as a "
                                                                        "second source baseline")
    parser.add_argument("--gops", default="4,8,16,32")
    parser.add_argument("--formats", default="rgb24,yuv420p", help="frame formats the loaders hand over")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", type=int, default=8, help="batches of 4 windows per round and reader")
    parser.add_argument("--workdir", default=None, help="keep recordings and stores here between runs")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-video-"))
    src = work / "src"
    frames_per = args.seconds * FPS
    videos = {f"rec{i}": src / f"rec{i}.mp4" for i in range(args.recordings)}
    also = {name: work / "src-also" / f"{name}.mp4" for name in videos}
    for i, name in enumerate(videos):
        if not videos[name].exists():
            write_recording(src, name, frames_per, seed=i, gop=args.source_gop)
        if not also[name].exists():
            write_recording(also[name].parent, name, frames_per, seed=i, gop=args.also_source_gop)
    load = os.getloadavg()[0]
    gops = [int(g) for g in args.gops.split(",")]
    began, reused = time.perf_counter(), (work / "zarr").exists()
    stores = {f"video h264, GOP {g}": build(src, work / f"h264-g{g}", "h264", g) for g in gops}
    stores["video av1, GOP 16"] = build(src, work / "av1-g16", "av1", 16)
    stores["zarr array"] = build(src, work / "zarr", None)
    build_s = time.perf_counter() - began

    total = args.recordings * frames_per
    source_bytes = sum(v.stat().st_size for v in videos.values())
    lines = [f"# Video-backed frames at {HEIGHT}x{WIDTH}", "",
             f"Command: `python benchmarks/bench_video_frames.py --recordings {args.recordings} --seconds "
             f"{args.seconds} --source-gop {args.source_gop} --also-source-gop {args.also_source_gop} --gops {args.gops} --formats {args.formats} --rounds {args.rounds} "
             f"--batches {args.batches}`", "",
             f"Machine: {os.cpu_count()}-core CPU ({platform.machine()}) shared with other jobs (load average "
             f"{load:.1f} at start), torch threads 1. Data: {args.recordings} VPT-like recordings "
             f"(`benchmarks/vpt_like.py`) x {args.seconds} s = {total} frames at {HEIGHT}x{WIDTH}, 20 fps, x264 "
             f"ultrafast crf 23, a keyframe every {args.source_gop} frames: {source_bytes / total / 1024:.1f} "
             f"KiB/frame. Stores " + ("reused from an earlier run in --workdir (same code for writing)" if reused
                                     else f"built in {build_s:.0f} s (ingest, 2 workers)") + ".", "",
             "## Bytes per frame and PSNR against the decoded source frame", "",
             "| frames stored as | KiB/frame | ÷ source mp4 | PSNR mean (dB) | PSNR min (dB) |", "|---|---|---|---|---|"]
    for name, store in stores.items():
        scores = quality(store, videos) if name != "zarr array" else np.array([np.inf])
        size = frame_bytes(store)
        quality_cells = (f"{scores.mean():.1f} | {scores.min():.1f}" if np.isfinite(scores).all()
                         else "lossless | lossless")
        lines.append(f"| {name} | {size / total / 1024:.1f} | {size / source_bytes:.2f}x | {quality_cells} |")
        print(lines[-1], flush=True)
    crf = {name: StoreReader(str(store)).fields["frames"].video for name, store in stores.items() if "video" in name}
    lines += ["", "Video settings: " + "; ".join(f"{name}: crf {v.crf}, preset {v.preset}, {v.clip_frames} frames "
                                                  f"per clip, {v.pix_fmt}" for name, v in crf.items()) + ".",
              "The zarr field is zstd level 3, 32 frames per chunk (ingest's defaults).", ""]

    reference = WindowDataset(str(stores["zarr array"]), T, load="frames")
    order = list(islice(WindowSampler(reference, seed=0), args.rounds * args.batches * BATCH + BATCH))
    windows = [reference.locate(i) for i in order]
    formats = args.formats.split(",")
    sources = {f"source mp4 (keyframe every {args.source_gop}), seek + decode": videos,
               f"source mp4 (keyframe every {args.also_source_gop}), seek + decode": also}
    readers: dict[tuple[str, str], Dataset] = {}
    for frame_format in formats:
        for name, store in stores.items():
            if frame_format == "rgb24" or name != "zarr array":  # zarr holds RGB
                readers[frame_format, name] = Picked(WindowDataset(str(store), T, load="frames",
                                                                   frame_format=frame_format), order)
        readers.update({(frame_format, name): SourceWindows(windows, source, frame_format)
                        for name, source in sources.items()})
        readers[frame_format, "nothing decoded (hand-over only)"] = HandOver(frame_format)
    rates: dict[tuple[str, str], list[float]] = {key: [] for key in readers}
    costs: dict[tuple[str, str], list[float]] = {key: [] for key in readers}
    per_round = args.batches * BATCH
    for round_ in range(args.rounds):
        for key, dataset in readers.items():
            chunk = torch.utils.data.Subset(dataset, range(round_ * per_round, (round_ + 1) * per_round + BATCH))
            rates[key].append(windows_per_s(chunk, args.batches))
            costs[key].append(ms_per_window(dataset, range(round_ * per_round, (round_ + 1) * per_round)))
            print(round_, *key, f"{rates[key][-1]:.1f} windows/s, {costs[key][-1]:.2f} ms", flush=True)
    median = {key: statistics.median(values) for key, values in rates.items()}
    for frame_format in formats:
        base = {name: median[frame_format, name] for name in sources}
        base["zarr array (RGB)"] = median["rgb24", "zarr array"]
        lines += [f"## Random {T}-frame windows at {HEIGHT}x{WIDTH} as {frame_format}, DataLoader with 2 workers "
                  f"(batch {BATCH})", "",
                  f"| reader ({frame_format} out) | windows/s (median) | ÷ source mp4, keyframe every {args.source_gop} "
                  f"| ÷ source mp4, keyframe every {args.also_source_gop} | ÷ zarr array (RGB) | ms per window in one "
                  f"process (median) |", "|---|---|---|---|---|---|"]
        for (row_format, name), rate in median.items():
            if row_format == frame_format:
                lines.append(f"| {name} | {rate:.2f} | " + " | ".join(f"{rate / b:.2f}x" for b in base.values())
                             + f" | {statistics.median(costs[row_format, name]):.2f} |")
        lines.append("")
    lines += [f"Same {per_round} windows per round for every reader (seeded `WindowSampler`), {args.rounds} "
              "interleaved rounds, each a fresh DataLoader timed after its first batch, then the same windows read in "
              "this process alone (the last column). The video and zarr rows "
              "read through `WindowDataset`; the source rows keep each mp4 open per worker and seek to the "
              "keyframe before the window (the best case for reading the source directly), handing over the same "
              "format as the rows they are compared with; the hand-over row hands over empty windows of that format. "
              "yuv420p windows are (16, 540, 640) uint8, half the bytes of RGB."]
    if "yuv420p" in formats:
        lines += ["", convert_cost(next(iter(stores.values())), order)]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
