"""dreamer_data: raw gameplay episodes → sharded zarr / webdataset stores → fast PyTorch datasets."""

from .errors import DreamerDataError, EpisodeError, StoreError

__all__ = ["DreamerDataError", "EpisodeError", "StoreError"]
