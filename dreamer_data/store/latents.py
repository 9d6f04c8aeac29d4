"""Versions of a store's latents: each tokenize that replaces them writes a new array beside the old one.

Readers keep the arrays of the manifest they opened, so latents are never rewritten in place: a new
checkpoint's latents go to a new path and are published by the manifest swap (docs/FORMAT.md, "Latents").
Version 1 lives at ``data/latents`` (where a store's first latents always lived), version n >= 2 at
``data/latents-v<n>-<checkpoint hash, 12 characters>``; n counts publications, so a path is never reused.
Publishing version n removes every latents array but n and the one it replaced (a reader opened before
the swap keeps reading that one). Removal deletes the array's ``zarr.json`` first, so a reader that
finds it after a read knows every chunk it read was there (zarr reads a missing chunk as zeros).
"""

from __future__ import annotations

import re

from ..errors import StoreError
from .fields import LATENTS
from .location import StoreLocation

DATA = "data"
FIRST_PATH = f"{DATA}/{LATENTS}"
ZARR_JSON = "zarr.json"  # an array's metadata: zarr cannot open the array without it
VERSION_NAME = re.compile(rf"{LATENTS}(-v\d+-[0-9A-Za-z]*)?")  # array names under data/


def published(manifest: dict) -> tuple[int, str] | None:
    """(version, array path) of the published latents, or None. Stores tokenized before versions: 1."""
    entry, field = manifest.get("latents"), manifest.get("fields", {}).get(LATENTS)
    if not entry or not field:
        return None
    return int(entry.get("version", 1)), field["path"]


def version_path(version: int, checkpoint_hash: str) -> str:
    if version == 1:
        return FIRST_PATH
    short = re.sub(r"[^0-9A-Za-z]", "", checkpoint_hash.split(":", 1)[-1])[:12]
    return f"{DATA}/{LATENTS}-v{version}-{short}"


def stored_versions(location: StoreLocation) -> list[str]:
    """Paths of every latents array under data/, published or not (an interrupted run's included)."""
    if not location.exists(DATA):
        return []
    names = (path.rstrip("/").rsplit("/", 1)[-1] for path in location.fs.ls(location.child(DATA), detail=False))
    return sorted(f"{DATA}/{name}" for name in names if VERSION_NAME.fullmatch(name))


def remove_version(location: StoreLocation, path: str) -> None:
    """Delete one version: its ``zarr.json`` first (readers check it after every read), then its chunks."""
    location.remove(f"{path}/{ZARR_JSON}")
    location.remove(path, recursive=True)


def prune(location: StoreLocation, keep: set[str]) -> list[str]:
    """Remove every latents array whose path is not in ``keep``; returns the removed paths."""
    removed = [path for path in stored_versions(location) if path not in keep]
    for path in removed:
        remove_version(location, path)
    return removed


def exists(location: StoreLocation, path: str) -> bool:
    return location.exists(f"{path}/{ZARR_JSON}")


def removed_error(location: StoreLocation, path: str) -> StoreError:
    return StoreError(f"{location.root}: the latents this reader opened ({path}) were removed: a later "
                      f"`dreamer-data tokenize --overwrite` published newer ones and removed this version "
                      f"(a store keeps the published latents and the ones they replaced); reopen the store")
