"""What one per-frame array of a store looks like: name, dtype, per-row shape, chunking."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .video_spec import VideoSettings


@dataclass(frozen=True)
class FieldSpec:
    """A per-frame field stored at ``data/<name>`` (or ``stored_at``) with shape (N, *shape)."""

    name: str  # e.g. "frames", "actions/buttons", "rewards"
    dtype: str
    shape: tuple[int, ...] = ()
    chunk_rows: int = 1024  # rows per zarr chunk along time
    stored_at: str = ""  # the array's path where it is not data/<name>: a later version of latents
    video: VideoSettings | None = None  # stored as video clips plus a frame index (store/video_field.py)

    @property
    def path(self) -> str:
        return self.stored_at or f"data/{self.name}"

    @property
    def file_stem(self) -> str:
        """Name safe to use as one path component (staging files)."""
        return self.name.replace("/", "__")

    def check(self, array: np.ndarray, file: str) -> np.ndarray:
        """Return ``array`` if it fits this field (casting only value-preserving dtypes), else raise."""
        from ..errors import EpisodeError

        if tuple(array.shape[1:]) != self.shape:
            raise EpisodeError(file, f"{self.name} has per-frame shape {tuple(array.shape[1:])}, expected {self.shape}")
        if array.dtype != np.dtype(self.dtype):
            if not np.can_cast(array.dtype, self.dtype, casting="same_kind"):
                raise EpisodeError(file, f"{self.name} has dtype {array.dtype}, expected {self.dtype}")
            array = array.astype(self.dtype)
        return np.ascontiguousarray(array)

    def to_json(self) -> dict:
        data = {"path": self.path, "dtype": self.dtype, "shape": list(self.shape), "chunk_rows": self.chunk_rows}
        if self.video is not None:  # array fields keep exactly the keys they always had
            data.update(storage="video", video=self.video.to_json())
        return data

    @classmethod
    def from_json(cls, name: str, data: dict) -> "FieldSpec":
        path = data.get("path", f"data/{name}")
        video = VideoSettings.from_json(data["video"]) if data.get("storage") == "video" else None
        return cls(name=name, dtype=data["dtype"], shape=tuple(data["shape"]), chunk_rows=data["chunk_rows"],
                   stored_at="" if path == f"data/{name}" else path, video=video)


# Names of the per-frame fields readers look up (docs/FORMAT.md; ``is_first`` is added to every window item by the
# loaders): one place, for the data and the model side.
FRAMES = "frames"
LATENTS = "latents"
REWARDS = "rewards"
IS_TERMINAL = "is_terminal"
IS_FIRST = "is_first"
HAS_ACTION = "has_action"


def action_field(name: str) -> str:
    """The field of the action component ``name`` of a manifest's ``actions`` entry."""
    return f"actions/{name}"
