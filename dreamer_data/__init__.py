"""dreamer_data: raw gameplay episodes → sharded zarr / webdataset stores → fast PyTorch datasets."""

from .errors import DreamerDataError, EpisodeError, StoreError

__all__ = ["DreamerDataError", "EpisodeError", "StoreError", "StreamDataset", "WindowDataset"]
_LOADERS = ("StreamDataset", "WindowDataset")


def __getattr__(name: str):
    """The datasets import torch; load them on first use so the CLI and plain imports stay light."""
    if name in _LOADERS:
        from . import loaders

        return getattr(loaders, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
