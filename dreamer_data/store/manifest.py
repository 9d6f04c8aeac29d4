"""manifest.json: the store's table of contents (see docs/FORMAT.md).

It is written only after the arrays it describes are on disk, always atomically, so whatever a
reader finds in it is complete. ``meta/episode_ends`` in the zarr group mirrors it for readers
that only speak zarr.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from ..errors import StoreError
from .fields import FieldSpec
from .location import StoreLocation

FORMAT_NAME = "dreamer-store"
FORMAT_VERSION = 1  # stores whose fields are all zarr arrays
VIDEO_FORMAT_VERSION = 2  # stores with a video-backed field: older dreamers refuse them in one line
NEWEST_FORMAT_VERSION = VIDEO_FORMAT_VERSION
MANIFEST_FILE = "manifest.json"


def created_with() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"dreamer {version('dreamer')}"
    except PackageNotFoundError:
        return "dreamer (not installed)"


def new_manifest(*, source: dict, observation: dict, actions: dict, fields: dict[str, FieldSpec],
                 rewards_present: bool, extra: dict | None = None) -> dict[str, Any]:
    return {
        "format": FORMAT_NAME,
        "format_version": VIDEO_FORMAT_VERSION if any(s.video for s in fields.values()) else FORMAT_VERSION,
        "created_with": created_with(),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": source,
        "observation": observation,
        "actions": actions,
        "rewards": {"present": rewards_present},
        "fields": {name: spec.to_json() for name, spec in fields.items()},
        "totals": {"episodes": 0, "frames": 0},
        "episodes": [],
        "failed": [],
        "latents": None,
        "wds": None,  # filled by add_shards (--format wds/both); readers use .get: older stores lack the key
        **(extra or {}),
    }


def manifest_fields(manifest: dict) -> dict[str, FieldSpec]:
    return {name: FieldSpec.from_json(name, data) for name, data in manifest["fields"].items()}


def load_manifest(location: StoreLocation | str) -> dict[str, Any]:
    location = location if isinstance(location, StoreLocation) else StoreLocation(location)
    if not location.exists(MANIFEST_FILE):
        raise StoreError(f"{location.root}: not a dreamer store (no {MANIFEST_FILE})")
    try:
        manifest = json.loads(location.read_bytes(MANIFEST_FILE))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise StoreError(f"{location.root}/{MANIFEST_FILE}: malformed JSON ({error})") from None
    if manifest.get("format") != FORMAT_NAME:
        raise StoreError(f"{location.root}/{MANIFEST_FILE}: not a {FORMAT_NAME} manifest")
    if manifest.get("format_version", 0) > NEWEST_FORMAT_VERSION:
        raise StoreError(f"{location.root}: store format v{manifest['format_version']} is newer than this "
                         f"dreamer (v{NEWEST_FORMAT_VERSION}); upgrade dreamer")
    return manifest


def save_manifest(location: StoreLocation, manifest: dict) -> None:
    manifest["totals"] = {
        "episodes": len(manifest["episodes"]),
        "frames": manifest["episodes"][-1]["end"] if manifest["episodes"] else 0,
    }
    location.write_bytes_atomic(MANIFEST_FILE, (json.dumps(manifest, indent=1) + "\n").encode())
