"""``ingest --frames-as video``: any source, with its frames field stored as video clips instead of a zarr array.

A wrapper rather than a source option: what a source decodes is unchanged, only the field spec it hands
to ingest says how the store keeps the frames (store/video_field.py).
"""

from __future__ import annotations

from dataclasses import replace

from ..errors import DreamerDataError
from ..store.fields import FRAMES, FieldSpec
from ..store.video_spec import VideoSettings
from .base import EpisodeRef, Emit, Source


class FramesAsVideo(Source):
    """``source`` with ``frames`` encoded as clips; everything else (episodes, rows, other fields) is the source's."""

    def __init__(self, source: Source, settings: VideoSettings):
        super().__init__(source.src, source.options)
        self.source, self.video = source, settings
        self.kind, self.rewards_present = source.kind, source.rewards_present
        spec = source.fields().get(FRAMES)
        if spec is None or spec.dtype != "uint8" or len(spec.shape) != 3 or spec.shape[2] != 3:
            raise DreamerDataError(f"{source.src}: --frames-as video needs RGB uint8 frames; {source.kind} frames "
                                   f"are {spec.dtype + str(spec.shape) if spec else 'absent'}")
        height, width = spec.shape[:2]
        if height % 2 or width % 2:
            raise DreamerDataError(f"{source.src}: --frames-as video stores {settings.pix_fmt}, which needs an even "
                                   f"height and width; frames would be {height}x{width}: pick --resolution")

    def list_episodes(self) -> list[EpisodeRef]:
        return self.source.list_episodes()

    def read_episode(self, ref: EpisodeRef, emit: Emit) -> dict:
        return self.source.read_episode(ref, emit)

    def observation_spec(self) -> dict:
        return self.source.observation_spec()

    def action_spec(self) -> dict:
        return self.source.action_spec()

    def settings(self) -> dict:
        return self.source.settings()

    def fields(self) -> dict[str, FieldSpec]:
        fields = dict(self.source.fields())
        fields[FRAMES] = replace(fields[FRAMES], chunk_rows=self.video.clip_frames, stored_at=f"data/{FRAMES}_video",
                                 video=self.video)
        return fields


def frames_as_video(source: Source, codec: str = "h264", *, gop: int | None = None, crf: int | None = None,
                    clip_frames: int | None = None) -> FramesAsVideo:
    """``source`` wrapped with the codec's defaults where a setting is not given (fps: the source's)."""
    settings = VideoSettings.for_codec(codec, gop=gop, crf=crf, clip_frames=clip_frames,
                                       fps=source.observation_spec().get("fps"))
    return FramesAsVideo(source, settings)
