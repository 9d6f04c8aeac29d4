"""Declarative dataset recipes (``manifests/*.json``): everything needed to rebuild a store exactly."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DreamerDataError
from .sources.base import DEFAULT_FRAME_CHUNK_ROWS

RECIPE_KEYS = {"name", "version", "description", "source", "resolution", "fps", "format", "clip_length",
               "chunk_frames", "video_backend", "limit", "length_tolerance"}


@dataclass(frozen=True)
class Recipe:
    name: str
    version: str
    kind: str
    location: str  # folder, URL, or index file of the source
    resolution: tuple[int, int] | None = None
    format: str = "zarr"
    clip_length: int = 64
    chunk_frames: int = DEFAULT_FRAME_CHUNK_ROWS
    video_backend: str = "pyav"
    limit: int | None = None
    length_tolerance: int = 2
    raw: dict = field(default_factory=dict)


def parse_resolution(text: str | list | None, where: str) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        height, width = (int(v) for v in (text.lower().split("x") if isinstance(text, str) else text))
    except (ValueError, TypeError):
        raise DreamerDataError(f"{where}: resolution must look like 64x64 (HxW), got {text!r}") from None
    if height <= 0 or width <= 0:
        raise DreamerDataError(f"{where}: resolution must be positive, got {text!r}")
    return height, width


def load_recipe(path: str | Path) -> Recipe:
    where = str(path)
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DreamerDataError(f"{where}: recipe file not found") from None
    except json.JSONDecodeError as error:
        raise DreamerDataError(f"{where}: malformed JSON ({error.msg} at line {error.lineno})") from None
    unknown = set(data) - RECIPE_KEYS
    if unknown:
        raise DreamerDataError(f"{where}: unknown recipe keys {sorted(unknown)}")
    try:
        source = data["source"]
        kind = source["kind"]
        location = source.get("index") or source["path"]
    except (KeyError, TypeError):
        raise DreamerDataError(f"{where}: needs source.kind and source.index or source.path") from None
    return Recipe(
        name=data.get("name", Path(path).stem), version=str(data.get("version", "1")), kind=kind,
        location=location, resolution=parse_resolution(data.get("resolution"), where),
        format=data.get("format", "zarr"), clip_length=int(data.get("clip_length", 64)),
        chunk_frames=int(data.get("chunk_frames", DEFAULT_FRAME_CHUNK_ROWS)), video_backend=data.get("video_backend", "pyav"),
        limit=data.get("limit"), length_tolerance=int(data.get("length_tolerance", 2)), raw=data,
    )
