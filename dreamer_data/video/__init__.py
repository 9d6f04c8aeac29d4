"""Video decoding behind one small interface (PyAV baseline and decord's fallback, decord optional)."""

from .decode import BACKENDS, DecodedVideo, decode_video, probe_video

__all__ = ["BACKENDS", "DecodedVideo", "decode_video", "probe_video"]
