"""``dreamer-data``: ingest raw episodes into stores, merge parts, inspect and verify stores."""

from __future__ import annotations

import json
import sys
from enum import Enum
from typing import Optional

import typer
from rich.table import Table
from rich.text import Text

from dreamer_data.cluster.ingest import ingest_on_ray
from dreamer_data.cluster.session import import_ray
from dreamer_data.errors import DreamerDataError
from dreamer_data.ingest import IngestPlan, IngestProgress, ingest
from dreamer_data.collect.minatar_render import DEFAULT_DRAW_ORDER, DEFAULT_PALETTE, DRAW_ORDERS, PALETTES
from dreamer_data.recipes import load_recipe, parse_resolution
from dreamer_data.sources import SOURCES, ReadOptions, source_class
from dreamer_data.sources.as_video import frames_as_video
from dreamer_data.sources.base import DEFAULT_FRAME_CHUNK_ROWS
from dreamer_data.store.merge import merge_stores
from dreamer_data.store.reader import StoreReader
from dreamer_data.store.summary import summarize
from dreamer_data.store.verify import verify_store
from dreamer_data.store.wds import DEFAULT_CLIP_LENGTH

from .cluster import RAY, RayGroup
from .collect import collect_command
from .common import EXIT_FAILED_EPISODES, VERSION, Rate, console, progress_bar, report_errors, stderr
from .tokenize import tokenize_command

app = typer.Typer(cls=RayGroup, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Turn raw gameplay episodes into verified zarr / webdataset training stores.")
stdout = console()


@app.callback()
def options(version: bool = VERSION) -> None:
    """Options before the command (--version)."""


SourceKind = Enum("SourceKind", {kind: kind for kind in SOURCES}, type=str)


class StoreFormat(str, Enum):
    zarr = "zarr"
    wds = "wds"
    both = "both"


class FramesAs(str, Enum):
    array = "array"
    video = "video"


class Codec(str, Enum):
    h264 = "h264"
    av1 = "av1"


def parse_part(text: str) -> tuple[int, int]:
    try:
        index, count = (int(v) for v in text.split("/"))
    except ValueError:
        raise DreamerDataError(f"--part must look like I/N (e.g. 0/3), got {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise DreamerDataError(f"--part {text}: need 0 <= I < N")
    return index, count


@app.command("ingest")
@report_errors("dreamer-data ingest")
def ingest_command(
    kind: SourceKind = typer.Argument(..., help="Source kind."),
    src: Optional[str] = typer.Argument(None, help="Folder, fsspec URL, or index file of raw episodes."),
    out: str = typer.Option(..., "--out", help="Store to write (local dir or fsspec URL); rerun to resume."),
    manifest: Optional[str] = typer.Option(None, "--manifest", help="Dataset recipe (manifests/*.json)."),
    resolution: Optional[str] = typer.Option(None, help="Stored frame size HxW, e.g. 64x64 (area resize)."),
    workers: Optional[int] = typer.Option(None, min=0, help="Decoding processes (default 1; 0: decode in this "
                                          "process; with --ray: tasks at once, default one per cluster CPU)."),
    threads: int = typer.Option(1, min=1, help="Decoder threads per worker."),
    part: str = typer.Option("0/1", help="Take slice I of N of the episodes (SLURM/K8s array jobs)."),
    limit: Optional[int] = typer.Option(None, min=1, help="Only the first N episodes of the source order."),
    format: Optional[StoreFormat] = typer.Option(None, "--format", help="zarr, or also webdataset shards."),
    backend: Optional[str] = typer.Option(None, help="Video decoder: pyav (default) or decord."),
    length_tolerance: Optional[int] = typer.Option(None, min=0, help="Frames video and actions may differ."),
    chunk_frames: Optional[int] = typer.Option(None, min=1, help=f"Frames per zarr chunk (default {DEFAULT_FRAME_CHUNK_ROWS}), "
                                               "or per video clip with --frames-as video (default 512)."),
    frames_as: FramesAs = typer.Option(FramesAs.array, "--frames-as",
                                       help="Store frames as a zarr array, or as video clips + a frame index."),
    codec: Codec = typer.Option(Codec.h264, help="--frames-as video: clip codec."),
    gop: Optional[int] = typer.Option(None, min=1, help="--frames-as video: a keyframe every N frames (default 16)."),
    crf: Optional[int] = typer.Option(None, min=0, max=63,
                                      help="--frames-as video: quality (default h264 18, av1 12)."),
    clip_length: Optional[int] = typer.Option(None, min=1, help="Frames per webdataset clip (default 64)."),
    compression_level: int = typer.Option(3, min=1, max=22, help="zstd level for the zarr chunks."),
    staging: Optional[str] = typer.Option(None, help="Local scratch dir for staged episodes."),
    camera: Optional[str] = typer.Option(None, help="Camera to store, for multi-camera sources "
                                                    "(lerobot: observation.images.<name>)."),
    palette: str = typer.Option(DEFAULT_PALETTE, help=f"MinAtar: colours the grid is drawn in ({', '.join(PALETTES)}; "
                                                      "cubehelix is MinAtar's own display)."),
    draw_order: str = typer.Option(DEFAULT_DRAW_ORDER, help=f"MinAtar: what a cell shows where channels overlap "
                                                            f"({', '.join(DRAW_ORDERS)}; objects draws breakout's "
                                                            "ball over the bricks, minatar is MinAtar's own rule)."),
    ray: Optional[str] = RAY,
    debug: bool = typer.Option(False, help="Show tracebacks."),
) -> None:
    """Ingest raw episodes into a store (resumable; failed episodes are listed and exit status is 1)."""
    recipe = load_recipe(manifest) if manifest else None
    if recipe and recipe.kind != kind.value:
        raise DreamerDataError(f"{manifest}: recipe is for {recipe.kind!r}, not {kind.value!r}")
    src = src or (recipe.location if recipe else None)
    if src is None:
        raise DreamerDataError("give SRC or --manifest RECIPE")

    if palette not in PALETTES:
        raise DreamerDataError(f"--palette must be one of {', '.join(PALETTES)}, got {palette!r}")
    if draw_order not in DRAW_ORDERS:
        raise DreamerDataError(f"--draw-order must be one of {', '.join(DRAW_ORDERS)}, got {draw_order!r}")
    if ray:
        import_ray()  # one line saying how to install it, before anything starts
        if workers == 0:
            raise DreamerDataError("--workers 0 decodes in this process; with --ray give the tasks to run at once")

    def pick(flag, recipe_value, default):
        return flag if flag is not None else (recipe_value if recipe else default)

    options = ReadOptions(
        resolution=parse_resolution(resolution, "--resolution") if resolution else (recipe.resolution if recipe else None),
        video_backend=pick(backend, recipe and recipe.video_backend, "pyav"),
        decode_threads=threads,
        length_tolerance=pick(length_tolerance, recipe and recipe.length_tolerance, 2),
        frame_chunk_rows=pick(chunk_frames, recipe and recipe.chunk_frames, DEFAULT_FRAME_CHUNK_ROWS),
        camera=camera,
        palette=palette,
        draw_order=draw_order,
    )
    store_format = (format.value if format else (recipe.format if recipe else "zarr"))
    plan = IngestPlan(part=parse_part(part), limit=pick(limit, recipe and recipe.limit, None),
                      workers=workers if workers is not None else 0 if ray else 1,
                      compression_level=compression_level, staging=staging,
                      recipe=recipe.raw if recipe else None,
                      clip_length=pick(clip_length, recipe and recipe.clip_length, DEFAULT_CLIP_LENGTH)
                      if store_format in ("wds", "both") else None)
    source = source_class(kind.value)(src, options)
    if frames_as is FramesAs.video:
        source = frames_as_video(source, codec.value, gop=gop, crf=crf, clip_frames=chunk_frames)
    elif gop is not None or crf is not None or codec is not Codec.h264:
        raise DreamerDataError("--codec, --gop and --crf set how video frames are encoded: add --frames-as video")

    with progress_bar() as bar:
        task = bar.add_task(f"ingest {kind.value}{' on ray' if ray else ''}", total=None, detail="listing episodes")
        rate = Rate()

        def progress(event: IngestProgress) -> None:
            bar.update(task, completed=event.done, total=event.total,
                       detail=f"{event.frames} frames, {rate(event.frames):.0f} frames/s")
            if event.failure:
                bar.console.print(f"failed: {event.failure['file']}: {event.failure['reason']}",
                                  highlight=False, soft_wrap=True, markup=False)

        if ray:
            report = ingest_on_ray(source, out, plan, ray, progress=progress, cpus_per_task=threads)
        else:
            report = ingest(source, out, plan, progress=progress)

    stderr.print(f"{out}: {report.ingested} episodes ingested ({report.frames} frames), {report.skipped} already "
                 f"there, {len(report.failed)} failed", highlight=False)
    if report.failed:
        sys.exit(EXIT_FAILED_EPISODES)


@app.command("merge")
@report_errors("dreamer-data merge")
def merge_command(
    parts: list[str] = typer.Argument(..., help="Part stores written with --part I/N."),
    out: str = typer.Option(..., "--out", help="Merged store (rerun to resume)."),
    debug: bool = typer.Option(False, help="Show tracebacks."),
) -> None:
    """Join part stores into one, in source order."""
    with progress_bar() as bar:
        task = bar.add_task("merge", total=None, detail="")
        manifest = merge_stores(parts, out, progress=lambda done, total: bar.update(task, completed=done, total=total))
    stderr.print(f"{out}: {manifest['totals']['episodes']} episodes, {manifest['totals']['frames']} frames "
                 f"from {len(parts)} parts", highlight=False)


def _human_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return str(n)


SHOWN_EPISODES = 5  # inspect names the first and last few episode ids (and failures) unless --episodes


def _latents_line(latents: dict | None) -> str:
    """The tokenize entry as a person reads it: latent shape, checkpoint hash, which tokenizer run made it."""
    if not latents:
        return "none (run dreamer-data tokenize)"
    shape = "x".join(str(n) for n in latents.get("shape") or []) or "?"
    line = f"{shape} {latents.get('dtype', '')} per frame from tokenizer {latents.get('checkpoint_hash', '?')}"
    tokenizer = latents.get("tokenizer") or {}
    run = ", ".join(f"{key} {tokenizer[key]}" for key in ("preset", "step") if tokenizer.get(key) is not None)
    if tokenizer.get("checkpoint"):
        run = f"{run}, {tokenizer['checkpoint']}" if run else str(tokenizer["checkpoint"])
    return f"{line} ({run})" if run else line


def _episode_ids(episodes: list[dict], show_all: bool) -> str:
    ids = [episode["id"] for episode in episodes]
    if show_all or len(ids) <= 2 * SHOWN_EPISODES:
        return ", ".join(ids) or "none"
    hidden = len(ids) - 2 * SHOWN_EPISODES
    return (f"{', '.join(ids[:SHOWN_EPISODES])}, … {hidden} more …, {', '.join(ids[-SHOWN_EPISODES:])} "
            f"(--episodes lists all)")


def _failures(failed: list[dict], show_all: bool) -> str:
    shown = failed if show_all else failed[:2 * SHOWN_EPISODES]
    lines = [f"{failure.get('file') or failure.get('id')}: {failure.get('reason', '')}" for failure in shown]
    if len(shown) < len(failed):
        lines.append(f"… {len(failed) - len(shown)} more (--episodes lists all)")
    return "\n".join(lines)


@app.command("inspect")
@report_errors("dreamer-data inspect")
def inspect_command(
    store: str = typer.Argument(..., help="Store path or URL."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON (for scripts)."),
    episodes: bool = typer.Option(False, "--episodes", help="List every episode id and every failed file."),
    debug: bool = typer.Option(False, help="Show tracebacks."),
) -> None:
    """Show what a store holds: counts, sizes, latents, episode ids, failed files."""
    reader = StoreReader(store)
    if as_json:
        sys.stdout.write(json.dumps(reader.manifest, indent=1) + "\n")
        return
    summary = summarize(reader)
    table = Table(title=f"store {store}", show_header=False)
    table.add_column("", style="bold")
    table.add_column("", overflow="fold")  # a narrow terminal folds a hash or a path; it never cuts one short
    rows = [
        ("source", summary["source"]),
        ("episodes", f"{summary['episodes']} ({summary['failed']} failed)"),
        ("episode ids", _episode_ids(reader.episodes, episodes)),
        ("frames", f"{summary['frames']:,}"),
        ("hours", f"{summary['hours']:.3f}" if summary["hours"] is not None else "-"),
        ("resolution", f"{summary['resolution']} @ {summary['fps']} fps"),
        ("actions", ", ".join(f"{k}: {v}" for k, v in summary["actions"].items())),
        ("fields", ", ".join(summary["fields"])),
        ("bytes on disk", _human_bytes(summary["bytes_on_disk"])),
        ("bytes / frame", _human_bytes(summary["bytes_per_frame"])),
        ("compression", f"{summary['compression_ratio']:.1f}x (zstd{' + video' if summary['video_fields'] else ''})"
                        if summary["compression_ratio"] else "-"),
        *((f"{name} as video", f"{v['codec']} crf {v['crf']}, keyframe every {v['gop']}, {v['clip_frames']} frames "
                               f"per clip, {v['pix_fmt']}") for name, v in summary["video_fields"].items()),
        ("wds shards", str(summary["wds_shards"])),
        ("latents", _latents_line(summary["latents"])),
    ]
    if reader.manifest["failed"]:
        rows.append(("failed", _failures(reader.manifest["failed"], episodes)))
    if "returns" in summary:
        r = summary["returns"]
        rows.append(("return", f"{r['mean']:.2f} ± {r['std']:.2f} (min {r['min']:.2f}, max {r['max']:.2f}), "
                               f"mean length {r['mean_length']:.0f}"))
    if "achievements" in summary:
        a = summary["achievements"]
        counts = sorted(((n, k) for k, n in a["episodes"].items() if n), reverse=True)
        rows.append(("achievements", f"Crafter score {a['score']:.2f} %; episodes unlocking: "
                                     + (", ".join(f"{k} {n}" for n, k in counts) or "none")))
    for key, value in rows:
        table.add_row(key, Text(value))  # Text: ids, paths and reasons are not rich markup
    stdout.print(table)


@app.command("verify")
@report_errors("dreamer-data verify")
def verify_command(
    store: str = typer.Argument(..., help="Store path or URL."),
    debug: bool = typer.Option(False, help="Show tracebacks."),
) -> None:
    """Re-read everything and check every count and checksum (exit 1 on any mismatch)."""
    with progress_bar(transient=True) as bar:
        task = bar.add_task("verify", total=None, detail="")
        problems = verify_store(store, progress=lambda done, total: bar.update(task, completed=done, total=total))
    for problem in problems:
        stderr.print(f"verify: {problem}", highlight=False, soft_wrap=True, markup=False)
    if problems:
        stderr.print(f"{store}: {len(problems)} problem(s)", highlight=False)
        sys.exit(1)
    stderr.print(f"{store}: ok", highlight=False)


app.command("collect")(collect_command)
app.command("tokenize")(tokenize_command)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
