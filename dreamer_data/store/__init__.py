"""The store: a zarr v3 group of per-frame arrays concatenated over episodes, plus manifest.json."""

from .fields import FieldSpec
from .location import StoreLocation
from .manifest import FORMAT_VERSION, load_manifest

__all__ = ["FORMAT_VERSION", "FieldSpec", "StoreLocation", "load_manifest"]
