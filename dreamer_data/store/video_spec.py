"""How a video-backed field is encoded: codec, keyframe interval, quality, clip length (docs/FORMAT.md, "Video").

Recorded per field in the manifest (``fields.<name>.video``), so readers with plain PyAV know what they open,
and compared on resume and merge like every other field setting.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..errors import DreamerDataError

CODECS = {"h264": "libx264", "av1": "libsvtav1"}  # store codec name → PyAV encoder
DEFAULT_CRF = {"h264": 18, "av1": 12}  # benchmarks/results/video_frames.md: >= 40 dB PSNR on VPT-like frames
DEFAULT_PRESET = {"h264": "medium", "av1": "8"}
DEFAULT_TUNE = {"h264": "fastdecode", "av1": ""}  # SVT-AV1's fast-decode=1 did not speed up dav1d here
# no B-frames: a window's last frame comes out of the decoder without decoding the frames after it (-20 % decoding
# time per 16-frame window for 3-4 % more bytes and 0.5 dB more PSNR on VPT-like frames, results/video_frames.md)
DEFAULT_BFRAMES = {"h264": 0, "av1": None}
DEFAULT_GOP = 16
DEFAULT_CLIP_FRAMES = 512
PIX_FMT = "yuv420p"


@dataclass(frozen=True)
class VideoSettings:
    """Encoder settings of a video-backed field. Every clip starts with a keyframe, then one every ``gop`` frames."""

    codec: str = "h264"
    gop: int = DEFAULT_GOP
    crf: int = DEFAULT_CRF["h264"]
    preset: str = DEFAULT_PRESET["h264"]
    clip_frames: int = DEFAULT_CLIP_FRAMES  # frames per clip file (an episode's last clip may hold fewer)
    pix_fmt: str = PIX_FMT
    tune: str = DEFAULT_TUNE["h264"]  # x264's --tune; "" for none (av1)
    fps: float = 20.0  # the clips' nominal frame rate (frame identity is the pts in the index, not the rate)
    bframes: int | None = DEFAULT_BFRAMES["h264"]  # x264's --bframes; None: the preset's (stores written before it)

    def __post_init__(self) -> None:
        if self.codec not in CODECS:
            raise DreamerDataError(f"--codec must be one of {', '.join(CODECS)}, got {self.codec!r}")
        for name in ("gop", "clip_frames"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise DreamerDataError(f"video {name} must be a positive integer, got {value!r}")
        if self.bframes is not None and (isinstance(self.bframes, bool) or not isinstance(self.bframes, int)
                                         or self.bframes < 0):
            raise DreamerDataError(f"video bframes must be a non-negative integer, got {self.bframes!r}")
        if not 0 <= self.crf <= 63:
            raise DreamerDataError(f"--crf must be in [0, 63], got {self.crf}")

    @classmethod
    def for_codec(cls, codec: str = "h264", *, gop: int | None = None, crf: int | None = None,
                  clip_frames: int | None = None, fps: float | None = None) -> "VideoSettings":
        """Settings with the codec's defaults where a value is not given."""
        if codec not in CODECS:
            raise DreamerDataError(f"--codec must be one of {', '.join(CODECS)}, got {codec!r}")
        return cls(codec=codec, gop=DEFAULT_GOP if gop is None else gop,
                   crf=DEFAULT_CRF[codec] if crf is None else crf, preset=DEFAULT_PRESET[codec],
                   tune=DEFAULT_TUNE[codec], bframes=DEFAULT_BFRAMES[codec],
                   clip_frames=DEFAULT_CLIP_FRAMES if clip_frames is None else clip_frames,
                   fps=float(fps or 20.0))

    def encoder_options(self) -> dict[str, str]:
        """PyAV stream options: fixed keyframe interval, no scene-cut keyframes, one thread (same bytes on
        every machine). H.264 is tuned for decoding speed (no CABAC, no deblocking: half the decode time of
        plain ``medium`` for ~25 % more bytes; no B-frames), since loaders decode every window's GOP."""
        if self.codec == "h264":
            options = {"g": str(self.gop), "keyint_min": str(self.gop), "sc_threshold": "0", "crf": str(self.crf),
                       "preset": self.preset, "threads": "1"}
            if self.bframes is not None:
                options["bf"] = str(self.bframes)
            return {**options, "tune": self.tune} if self.tune else options
        return {"g": str(self.gop), "crf": str(self.crf), "preset": self.preset,
                "svtav1-params": f"keyint={self.gop}:scd=0:lp=1"}

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "VideoSettings":
        known = {key: data[key] for key in cls.__dataclass_fields__ if key in data}
        return cls(**{"bframes": None, **known})  # a store without the key was encoded with the preset's B-frames
