"""Opening a finished store for reading (plain zarr underneath)."""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import zarr

from ..errors import StoreError
from . import latents as versions
from .fields import LATENTS, FieldSpec
from .location import StoreLocation
from .manifest import load_manifest, manifest_fields
from .video_field import VideoFrames

READ_BLOCK_ROWS = 4096


class LatentsArray:
    """A latents version, which a later ``tokenize --overwrite`` may remove (see ``store/latents.py``).

    Every read checks afterwards that the version still exists, so a reader whose version was removed
    gets one clear error instead of the zeros zarr returns for missing chunks."""

    def __init__(self, array: zarr.Array, location: StoreLocation, path: str):
        self.array, self.location, self.path = array, location, path

    @property
    def shape(self) -> tuple[int, ...]:
        return self.array.shape

    @property
    def dtype(self) -> np.dtype:
        return self.array.dtype

    @property
    def chunks(self) -> tuple[int, ...]:
        return self.array.chunks

    def __len__(self) -> int:
        return self.shape[0]

    def _checked(self, rows: Any) -> Any:
        if not versions.exists(self.location, self.path):
            raise versions.removed_error(self.location, self.path)
        return rows

    def __getitem__(self, selection: Any) -> Any:
        return self._checked(self.array[selection])

    def get_orthogonal_selection(self, selection: Any) -> Any:
        return self._checked(self.array.get_orthogonal_selection(selection))


def open_group(location: StoreLocation) -> zarr.Group:
    try:
        return zarr.open_group(location.zarr_store(read_only=True), mode="r")
    except (FileNotFoundError, zarr.errors.GroupNotFoundError) as error:
        raise StoreError(f"{location.root}: zarr group missing or unreadable ({error})") from None


def _missing(location: StoreLocation, spec: FieldSpec) -> StoreError:
    """Latents the manifest no longer publishes were removed by a later overwrite; else the array is lost."""
    if spec.name == LATENTS:
        now = versions.published(load_manifest(location))
        if now is None or now[1] != spec.path:
            return versions.removed_error(location, spec.path)
    return StoreError(f"{location.root}: manifest lists {spec.name!r} but {spec.path} is missing")


def open_field(location: StoreLocation, group: zarr.Group,
               spec: FieldSpec) -> zarr.Array | LatentsArray | VideoFrames:
    """The array a manifest names for ``spec`` (latents: the version that manifest published; a video-backed
    field: its clips, decoded on read)."""
    if spec.video is not None:
        return VideoFrames(location, group, spec)
    try:
        array = group[spec.path]
    except KeyError:
        raise _missing(location, spec) from None
    return LatentsArray(array, location, spec.path) if spec.name == LATENTS else array


class StoreReader:
    """A store's manifest plus its zarr group, opened read-only.

    The arrays read are the ones this manifest names: latents replaced after it was read stay readable
    until a second replacement removes them (then reads raise ``StoreError``)."""

    def __init__(self, root: str | StoreLocation):
        self.location = root if isinstance(root, StoreLocation) else StoreLocation(root)
        self.manifest = load_manifest(self.location)
        self.group = open_group(self.location)
        self.fields: dict[str, FieldSpec] = manifest_fields(self.manifest)

    @property
    def episodes(self) -> list[dict]:
        return self.manifest["episodes"]

    @property
    def total_frames(self) -> int:
        return self.manifest["totals"]["frames"]

    def array(self, name: str) -> zarr.Array | LatentsArray | VideoFrames:
        if name not in self.fields:
            raise StoreError(f"{self.location.root}: store has no field {name!r} "
                             f"(has: {', '.join(sorted(self.fields))})")
        return open_field(self.location, self.group, self.fields[name])

    def iter_rows(self, name: str, start: int, end: int, block: int = READ_BLOCK_ROWS) -> Iterator[np.ndarray]:
        array = self.array(name)
        for offset in range(start, end, block):
            yield array[offset:min(end, offset + block)]

    def episode(self, name: str, index: int) -> np.ndarray:
        episode = self.episodes[index]
        return self.array(name)[episode["start"]:episode["end"]]
