"""Video decoding behind one small interface (PyAV baseline, decord optional)."""

from .decode import BACKENDS, decode_video, probe_video

__all__ = ["BACKENDS", "decode_video", "probe_video"]
