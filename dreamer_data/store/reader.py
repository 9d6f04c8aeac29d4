"""Opening a finished store for reading (plain zarr underneath)."""

from __future__ import annotations

from typing import Iterator

import numpy as np
import zarr

from ..errors import StoreError
from .fields import FieldSpec
from .location import StoreLocation
from .manifest import load_manifest, manifest_fields

READ_BLOCK_ROWS = 4096


class StoreReader:
    """A store's manifest plus its zarr group, opened read-only."""

    def __init__(self, root: str | StoreLocation):
        self.location = root if isinstance(root, StoreLocation) else StoreLocation(root)
        self.manifest = load_manifest(self.location)
        try:
            self.group = zarr.open_group(self.location.zarr_store(read_only=True), mode="r")
        except (FileNotFoundError, zarr.errors.GroupNotFoundError) as error:
            raise StoreError(f"{self.location.root}: zarr group missing or unreadable ({error})") from None
        self.fields: dict[str, FieldSpec] = manifest_fields(self.manifest)

    @property
    def episodes(self) -> list[dict]:
        return self.manifest["episodes"]

    @property
    def total_frames(self) -> int:
        return self.manifest["totals"]["frames"]

    def array(self, name: str) -> zarr.Array:
        if name not in self.fields:
            raise StoreError(f"{self.location.root}: store has no field {name!r} "
                             f"(has: {', '.join(sorted(self.fields))})")
        try:
            return self.group[self.fields[name].path]
        except KeyError:
            raise StoreError(f"{self.location.root}: manifest lists {name!r} but {self.fields[name].path} "
                             f"is missing") from None

    def iter_rows(self, name: str, start: int, end: int, block: int = READ_BLOCK_ROWS) -> Iterator[np.ndarray]:
        array = self.array(name)
        for offset in range(start, end, block):
            yield array[offset:min(end, offset + block)]

    def episode(self, name: str, index: int) -> np.ndarray:
        episode = self.episodes[index]
        return self.array(name)[episode["start"]:episode["end"]]
