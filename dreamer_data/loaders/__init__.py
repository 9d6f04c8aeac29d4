"""PyTorch datasets over stores: random-access windows (zarr) and streamed windows (webdataset)."""

from .sampling import EpisodeSplit, WindowSampler
from .stream import StreamDataset
from .window_dataset import WindowDataset

__all__ = ["EpisodeSplit", "StreamDataset", "WindowDataset", "WindowSampler"]
