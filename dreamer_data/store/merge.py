"""merge: join part stores (``ingest --part I/N``) into one store, in source order.

Rows are copied array to array (zarr chunks are re-compressed; no video is decoded again; the clips of a
video-backed field are copied file by file), and
webdataset shards are rebuilt from the merged rows. Resumable like ingest.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

from ..errors import StoreError
from .location import StoreLocation
from .reader import StoreReader
from .video_field import Clip
from .wds import add_shards_locked
from .writer import StoreWriter


class StoredEpisode:
    """An episode of an existing store, offered to ``StoreWriter.commit`` like a staged one."""

    def __init__(self, reader: StoreReader, entry: dict):
        self.reader = reader
        self.info = entry
        self.length = entry["length"]
        self.id = entry["id"]

    def chunks(self, name: str) -> Iterator[np.ndarray]:
        return self.reader.iter_rows(name, self.info["start"], self.info["end"])

    def clips(self, name: str) -> Iterator[Clip]:
        """A video field's clips, copied as they are (never decoded and encoded again)."""
        return self.reader.array(name).episode_clips(self.info["start"], self.info["end"])

    def remove(self) -> None:
        """Nothing to clean up: the part store stays as it is."""


def merge_stores(parts: list[str], out: str, compression_level: int = 3,
                 progress: Callable[[int, int], None] | None = None) -> dict:
    readers = [StoreReader(part) for part in parts]
    first = readers[0].manifest
    for reader in readers[1:]:
        for key in ("observation", "actions", "fields"):
            if reader.manifest[key] != first[key]:
                raise StoreError(f"{reader.location.root}: {key} differs from {readers[0].location.root}; "
                                 f"only parts of one ingest can be merged")
        if reader.manifest["source"]["settings"] != first["source"]["settings"]:
            raise StoreError(f"{reader.location.root}: ingest settings differ from {readers[0].location.root}")
    template = {key: value for key, value in first.items()}
    template.update(episodes=[], failed=[], latents=None, part=None, wds=None,
                    merged_from=[reader.location.root for reader in readers])
    template["totals"] = {"episodes": 0, "frames": 0}
    episodes = sorted(((entry.get("source_index", 0), index, entry) for index, reader in enumerate(readers)
                       for entry in reader.episodes), key=lambda item: (item[0], item[1]))
    ids = [entry["id"] for _, _, entry in episodes]
    if len(set(ids)) != len(ids):
        raise StoreError(f"{out}: parts share episode ids; were they ingested with the same --part?")
    writer = StoreWriter(StoreLocation(out), template, compression_level)
    try:
        for done, (_, index, entry) in enumerate(episodes, start=1):
            if entry["id"] not in writer.committed_ids:
                writer.commit(StoredEpisode(readers[index], entry))
            if progress:
                progress(done, len(episodes))
        writer.update(failed=[failure for reader in readers for failure in reader.manifest["failed"]])
        if first.get("wds"):  # still under the writer lock
            writer.flush()
            writer.update(wds=add_shards_locked(writer.location, first["wds"]["clip_length"]))
    finally:
        writer.close()
    return writer.manifest
