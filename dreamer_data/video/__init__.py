"""Video decoding behind one small interface (PyAV baseline and decord's fallback, decord optional)."""

from .decode import BACKENDS, DecodedVideo, decode_video, probe_video
from .yuv import yuv420_to_rgb

__all__ = ["BACKENDS", "DecodedVideo", "decode_video", "probe_video", "yuv420_to_rgb"]
