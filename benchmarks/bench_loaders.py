"""Training-loader throughput: zarr windows vs. seek+decode from the source mp4s, DataLoader
workers, the tiny tokenizer step, and the frames chunk-size study.

    python benchmarks/bench_loaders.py [--episodes 4 --frames 1200 --gop 100 --out benchmarks/results/loaders.md]

Every ratio compares measurements made in this one process on the same windows. Source videos
are VPT-like (640x360 H.264 at 20 fps, a keyframe every ``--gop`` frames); the store holds them
at 64x64. "cold" reads use a one-chunk cache, so every window decodes its zarr chunks as in a
store far larger than memory; "warm" reads use the default chunk cache (the store fits in it).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

import av
import numpy as np
import torch
import zarr
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.vpt_like import FPS, write_recording  # noqa: E402
from dreamer_data.ingest import IngestPlan, ingest  # noqa: E402
from dreamer_data.loaders import StreamDataset, WindowDataset, WindowSampler  # noqa: E402
from dreamer_data.loaders.chunks import DEFAULT_CACHE_BYTES  # noqa: E402
from dreamer_data.sources import ReadOptions  # noqa: E402
from dreamer_data.sources.base import DEFAULT_FRAME_CHUNK_ROWS  # noqa: E402
from dreamer_data.sources.vpt import VptSource  # noqa: E402
from dreamer_data.store.fields import FieldSpec  # noqa: E402
from dreamer_data.store.manifest import save_manifest  # noqa: E402
from dreamer_data.store.reader import StoreReader  # noqa: E402
from dreamer_data.store.wds import export_shards  # noqa: E402
from dreamer_data.store.writer import create_field_array  # noqa: E402
from dreamer_data.tokenize import LATENT_CHUNK_ROWS  # noqa: E402

SIZE = (64, 64)
T = 16
LATENT_SHAPE = (16, 32)
COLD = 0  # cache budget that keeps only the chunk just read
CHUNK_ROWS = (16, 32, 64, 128, 256)
DYNAMICS_FIELDS = ("latents", "actions", "rewards", "is_terminal")


# ------------------------------------------------------------------------------------------- data
def writable(reader: StoreReader) -> zarr.Group:
    return zarr.open_group(reader.location.zarr_store(read_only=False), mode="r+")


def build_store(src: Path, out: Path) -> None:
    """Ingest the recordings at 64x64 (default chunking), add a synthetic float16 latents field, export shards."""
    if out.exists():
        return
    report = ingest(VptSource(str(src), ReadOptions(resolution=SIZE)), str(out), IngestPlan(workers=2))
    assert not report.failed, report.failed
    reader = StoreReader(str(out))
    spec = FieldSpec("latents", "float16", LATENT_SHAPE, LATENT_CHUNK_ROWS)  # as `tokenize` writes it
    latents = create_field_array(writable(reader), spec, reader.total_frames, 3)
    latents[:] = np.random.default_rng(0).standard_normal((reader.total_frames, *LATENT_SHAPE)).astype(np.float16)
    reader.manifest["fields"]["latents"] = spec.to_json()
    reader.manifest["wds"] = export_shards(reader, clip_length=64, shard_bytes=4 * 2**20)
    save_manifest(reader.location, reader.manifest)


def rechunked(store: Path, rows: int) -> Path:
    """A copy of ``store`` whose frames are chunked ``rows`` frames per chunk (same codec)."""
    out = store.parent / f"{store.name}-chunk{rows}"
    if out.exists():
        return out
    shutil.copytree(store, out, ignore=shutil.ignore_patterns("wds"))
    reader = StoreReader(str(out))
    frames = reader.array("frames")[:]
    spec = FieldSpec("frames", "uint8", frames.shape[1:], rows)
    create_field_array(writable(reader), spec, len(frames), 3)[:] = frames
    reader.manifest["fields"]["frames"] = spec.to_json()
    reader.manifest["wds"] = None
    save_manifest(reader.location, reader.manifest)
    return out


def frames_bytes(store: Path) -> int:
    return sum(p.stat().st_size for p in (store / "data" / "frames").rglob("*") if p.is_file())


# ------------------------------------------------------------------------------------ measuring
def windows_per_cpu_s(read, windows: list, seconds: float) -> float:
    """Windows read per CPU-second of this process (all its threads), over ``windows`` in order
    until ``seconds`` of CPU time have passed (at least 10 windows).

    CPU time, not wall time: other jobs share this machine, and a reader that runs in this one
    process costs the same CPU however busy the machine is.
    """
    start, done = time.process_time(), 0
    for window in windows:
        read(window)
        done += 1
        if done >= 10 and time.process_time() - start > seconds:
            break
    return done / (time.process_time() - start)


def over(read, pool: list, per_round: int, seconds: float):
    """A case for ``best_of``: round r reads its own slice of ``pool``."""
    return lambda r: windows_per_cpu_s(read, pool[r * per_round:(r + 1) * per_round], seconds)


def best_of(cases: dict, rounds: int) -> dict:
    """Best rate of each case over ``rounds`` interleaved rounds (other jobs share this machine).

    ``cases`` maps a name to ``measure(round) -> rate``; interleaving gives every case the same
    chances at a quiet moment, so ratios taken from one run stay fair.
    """
    best = {name: 0.0 for name in cases}
    for round_ in range(rounds):
        for name, measure in cases.items():
            best[name] = max(best[name], measure(round_))
    return best


class PyAVWindows:
    """The naive loader: seek to the keyframe before the window, decode up to it, resize."""

    def __init__(self, videos: dict[str, str]):
        self.containers = {}
        for episode, path in videos.items():
            container = av.open(path)
            container.streams.video[0].codec_context.thread_count = 1
            self.containers[episode] = container

    def __call__(self, window: tuple[str, int]) -> np.ndarray:
        episode, start = window
        container = self.containers[episode]
        stream = container.streams.video[0]
        to_pts = lambda index: int(round(index / FPS / stream.time_base)) + (stream.start_time or 0)  # noqa: E731
        container.seek(to_pts(start), stream=stream, backward=True, any_frame=False)
        frames = []
        for frame in container.decode(stream):
            index = int(round((frame.pts - (stream.start_time or 0)) * stream.time_base * FPS))
            if index >= start:
                frames.append(frame.to_ndarray(format="rgb24", height=SIZE[0], width=SIZE[1], interpolation="AREA"))
                if len(frames) == T:
                    break
        return np.stack(frames)

    def close(self) -> None:
        for container in self.containers.values():
            container.close()


def pyav_open_per_window(videos: dict[str, str]):
    """What many dataset classes do: open the file in ``__getitem__``, seek, decode, close."""
    def read(window: tuple[str, int]) -> np.ndarray:
        reader = PyAVWindows({window[0]: videos[window[0]]})
        try:
            return reader(window)
        finally:
            reader.close()
    return read


class DecordWindows:
    def __init__(self, videos: dict[str, str]):
        import decord

        self.readers = {episode: decord.VideoReader(path, ctx=decord.cpu(0), width=SIZE[1], height=SIZE[0],
                                                    num_threads=1) for episode, path in videos.items()}

    def __call__(self, window: tuple[str, int]) -> np.ndarray:
        episode, start = window
        return self.readers[episode].get_batch(list(range(start, start + T))).asnumpy()


def zarr_reader(store: Path, cache_bytes: int, length: int = T):
    dataset = WindowDataset(str(store), length, load="frames", cache_bytes=cache_bytes)
    lookup = {dataset.locate(i): i for i in range(len(dataset))}
    return dataset, (lambda window: dataset[lookup[window]]["frames"])


def random_windows(store: Path, count: int, seed: int = 0, length: int = T) -> list[tuple[str, int]]:
    dataset = WindowDataset(str(store), length, load="frames")
    return [dataset.locate(i) for i in islice(WindowSampler(dataset, seed=seed), count)]


# ------------------------------------------------------------------------------------- DataLoader
def loader_rate(dataset, workers: int, batch: int = 32, batches: int = 40, sampler=None) -> float:
    """Windows per second after the first batch (worker start-up excluded)."""
    loader = DataLoader(dataset, batch_size=batch, sampler=sampler, num_workers=workers,
                        persistent_workers=workers > 0, multiprocessing_context=dataset.multiprocessing_context)
    iterator = iter(loader)
    next(iterator)
    start, done = time.perf_counter(), 0
    for item in islice(iterator, batches):
        done += len(item["is_first"])
    return done / (time.perf_counter() - start)


def stream_epoch_rate(dataset: StreamDataset, workers: int, batch: int = 32) -> float:
    """Windows per second over a whole second epoch (workers already started; shuffle buffer fills included)."""
    loader = DataLoader(dataset, batch_size=batch, num_workers=workers, persistent_workers=workers > 0,
                        multiprocessing_context=dataset.multiprocessing_context)
    for _ in loader:
        pass
    dataset.set_epoch(1)
    start = time.perf_counter()
    done = sum(len(item["is_first"]) for item in loader)
    return done / (time.perf_counter() - start)


def tiny_tokenizer_frames_per_s(steps: int = 6) -> tuple[float, str] | None:
    """Frames per CPU-second one tiny-preset tokenizer step consumes (forward, MSE, backward, AdamW)."""
    try:
        from dreamer_model.presets import preset
        from dreamer_model.tokenizer.model import Tokenizer
    except ImportError as error:
        print(f"tiny tokenizer step not measured: {error}")
        return None
    run = preset("tokenizer", "tiny")
    cfg = run.tokenizer
    model = Tokenizer(cfg)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    frames = torch.randint(0, 256, (run.train.batch, cfg.context, cfg.height, cfg.width, 3), dtype=torch.uint8)
    timings = []
    for _ in range(steps):
        start = time.process_time()
        recon, _ = model(frames)
        loss = torch.nn.functional.mse_loss(recon, frames.float() / 255)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        timings.append(time.process_time() - start)
    step_s = min(timings[1:])
    return run.train.batch * cfg.context / step_s, (f"batch {run.train.batch} x {cfg.context} frames, "
                                                   f"{step_s * 1e3:.0f} CPU-ms/step")


# ------------------------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--frames", type=int, default=1200, help="frames per recording (1200 = 1 min at 20 fps)")
    parser.add_argument("--gop", type=int, default=100, help="keyframe interval of the source mp4s")
    parser.add_argument("--also-gop", type=int, default=250, help="a second set of mp4s for the baselines only "
                        "(250 is x264's default keyframe interval)")
    parser.add_argument("--video-windows", type=int, default=40, help="random windows per mp4 reader and round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; each case reports its best")
    parser.add_argument("--workdir", default=None, help="reuse recordings and stores from an earlier run")
    parser.add_argument("--out", default=None, help="write the markdown results here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-loaders-"))
    src, store = work / "vpt", work / "store"
    if not src.exists():
        for i in range(args.episodes):
            write_recording(src, f"episode-{i:03d}", args.frames, seed=i, gop=args.gop)
    build_store(src, store)
    episodes = StoreReader(str(store)).episodes
    videos = {episode["id"]: str(src / f"{episode['id']}.mp4") for episode in episodes}
    also_src = work / f"vpt-gop{args.also_gop}"
    if not also_src.exists():
        for i in range(args.episodes):
            write_recording(also_src, f"episode-{i:03d}", args.frames, seed=i, gop=args.also_gop)
    also_videos = {episode_id: str(also_src / Path(path).name) for episode_id, path in videos.items()}
    command = (f"python benchmarks/bench_loaders.py --episodes {args.episodes} --frames {args.frames} "
               f"--gop {args.gop} --also-gop {args.also_gop} --video-windows {args.video_windows} "
               f"--rounds {args.rounds}" + (f" --workdir {args.workdir}" if args.workdir else "")
               + (f" --out {args.out}" if args.out else ""))
    lines = [f"Command: `{command}`", "",
             f"Machine: {os.cpu_count()}-core CPU ({platform.processor() or platform.machine()}) shared with other "
             f"jobs (load average {os.getloadavg()[0]:.1f} at start), torch threads 1, store on local disk with a "
             f"warm page cache. Every figure is the best of {args.rounds} interleaved rounds. Single-process "
             f"readers are timed in CPU seconds of the process (robust to the other jobs); DataLoader figures are "
             f"wall-clock and move with the machine's load.", "",
             f"Data: {args.episodes} VPT-like recordings x {args.frames} frames, 640x360 H.264 "
             f"(x264 ultrafast, crf 23, "
             f"keyframe every {args.gop} frames = {args.gop / FPS:g} s at {FPS} fps), "
             f"{sum(Path(v).stat().st_size for v in videos.values()) / (args.episodes * args.frames) / 1024:.1f} "
             f"KiB/frame; the store holds them at 64x64 (frames chunk {DEFAULT_FRAME_CHUNK_ROWS} rows, zstd 3) plus a "
             f"synthetic float16 latents field {LATENT_SHAPE} ({LATENT_CHUNK_ROWS}-row chunks, as `tokenize` "
             f"writes).", ""]

    def emit(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    # 1. zarr vs seek+decode from the mp4s: same random windows, one process, one thread
    windows = random_windows(store, 4000, seed=1)
    video_windows = windows[:args.video_windows * args.rounds]
    _, cold = zarr_reader(store, COLD)
    _, warm = zarr_reader(store, DEFAULT_CACHE_BYTES)
    pyav, decord_reader = PyAVWindows(videos), DecordWindows(videos)
    same = sum(np.array_equal(pyav(w), cold(w).numpy()) for w in video_windows[:10])
    key = f"keyframe every {args.gop}"
    also_key = f"keyframe every {args.also_gop}"
    rates = best_of({"zarr store, cold chunks": over(cold, windows, 1000, 2.0),
                     "zarr store, warm chunk cache": over(warm, windows, 1000, 2.0),
                     f"mp4 ({key}) + PyAV seek+decode": over(pyav, video_windows, args.video_windows, 0.0),
                     f"mp4 ({key}) + decord seek+decode": over(decord_reader, video_windows, args.video_windows, 0.0),
                     f"mp4 ({key}) + PyAV open+seek+decode per window": over(pyav_open_per_window(videos),
                                                                             video_windows, args.video_windows, 0.0),
                     f"mp4 ({also_key}) + PyAV seek+decode": over(PyAVWindows(also_videos), video_windows,
                                                                  args.video_windows, 0.0),
                     f"mp4 ({also_key}) + decord seek+decode": over(DecordWindows(also_videos), video_windows,
                                                                    args.video_windows, 0.0)},
                    args.rounds)
    emit("## Random 16-frame windows at 64x64: store vs. seek+decode from the source mp4s")
    emit()
    emit("| reader | windows per CPU-s | frames per CPU-s | store (cold) ÷ this |")
    emit("|---|---|---|---|")
    for name, rate in rates.items():
        emit(f"| {name} | {rate:.1f} | {rate * T:.0f} | {rates['zarr store, cold chunks'] / rate:.1f}x |")
    emit()
    emit("Same windows for every reader (seeded WindowSampler), one process, one thread. The mp4 readers keep each "
         "file open between windows unless the row says otherwise, and resize to 64x64 while decoding. PyAV "
         f"windows equal the store's byte for byte in {same}/10 checked (ingest used the same decoder and scaler).")
    emit()

    # 2. DataLoader workers
    def loader_case(kind: str, load, cache: int | None, workers: int):
        def measure(round_: int) -> float:
            if kind == "StreamDataset":
                return stream_epoch_rate(StreamDataset(str(store), T, load=load, shuffle=64, seed=round_), workers)
            dataset = WindowDataset(str(store), T, load=load, cache_bytes=cache)
            return loader_rate(dataset, workers, sampler=WindowSampler(dataset, seed=round_))
        return measure

    dynamics = "latents+actions+rewards+is_terminal"
    loader_rows = [(kind, fields, cache, workers)
                   for kind, fields, cache in (("WindowDataset", "frames", COLD),
                                               ("WindowDataset", "frames", DEFAULT_CACHE_BYTES),
                                               ("WindowDataset", dynamics, COLD),
                                               ("WindowDataset", dynamics, DEFAULT_CACHE_BYTES),
                                               ("StreamDataset", "frames", None))
                   for workers in (0, 1, 2)]
    loader_rates = best_of({row: loader_case(row[0], "frames" if row[1] == "frames" else DYNAMICS_FIELDS, row[2],
                                             row[3]) for row in loader_rows}, args.rounds)
    emit("## DataLoader throughput (batch 32 of 16-frame windows, persistent workers)")
    emit()
    emit("| dataset | fields | chunk cache | workers | windows/s | frames/s (latent frames/s) |")
    emit("|---|---|---|---|---|---|")
    for (kind, fields, cache, workers), rate in loader_rates.items():
        cache_name = "-" if cache is None else ("cold" if cache == COLD else f"warm ({cache >> 20} MiB)")
        emit(f"| {kind} | {fields} | {cache_name} | {workers} | {rate:.0f} | {rate * T:.0f} |")
    emit()
    emit("WindowDataset: random windows from a seeded WindowSampler, timed after the first batch. StreamDataset: "
         "non-overlapping windows, a whole second epoch (shuffle buffer 64, shards split over the workers).")
    emit()
    step = tiny_tokenizer_frames_per_s()
    if step is not None:
        emit(f"Tiny-preset tokenizer training step (forward + MSE + backward + AdamW, LPIPS left out, 1 thread): "
             f"{step[0]:.0f} frames per CPU-second consumed ({step[1]}), so one core of loading feeds many cores "
             f"of training.")
        emit()

    # 3. chunk-size study
    long_windows = random_windows(store, 2000, seed=2, length=64)
    total = sum(episode["length"] for episode in episodes)
    chunk_cases = {}
    for rows in CHUNK_ROWS:
        copy = rechunked(store, rows)
        chunk_cases[(rows, 16, COLD)] = over(zarr_reader(copy, COLD)[1], windows, 1000, 1.5)
        chunk_cases[(rows, 64, COLD)] = over(zarr_reader(copy, COLD, length=64)[1], long_windows, 500, 1.5)
        chunk_cases[(rows, 16, DEFAULT_CACHE_BYTES)] = over(zarr_reader(copy, DEFAULT_CACHE_BYTES)[1], windows,
                                                            1000, 1.5)
    chunk_rates = best_of(chunk_cases, args.rounds)
    emit("## Frames chunk size (rows per zarr chunk) vs. random-window throughput, one process")
    emit()
    emit("| chunk rows | KiB/frame on disk | 16-frame windows per CPU-s, cold | 64-frame windows per CPU-s, cold | "
         "16-frame windows per CPU-s, warm |")
    emit("|---|---|---|---|---|")
    for rows in CHUNK_ROWS:
        emit(f"| {rows} | {frames_bytes(rechunked(store, rows)) / total / 1024:.2f} | "
             f"{chunk_rates[(rows, 16, COLD)]:.0f} | {chunk_rates[(rows, 64, COLD)]:.0f} | "
             f"{chunk_rates[(rows, 16, DEFAULT_CACHE_BYTES)]:.0f} |")
    emit()
    emit(f"workdir: {work}")
    if args.out:
        Path(args.out).write_text("# Loader benchmarks\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
