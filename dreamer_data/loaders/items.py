"""What a loader hands to a trainer: the chosen store fields of one window, as tensors."""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np
import torch

from ..errors import DreamerDataError, StoreError
from ..store.fields import FieldSpec

FRAMES = "frames"
IS_FIRST = "is_first"
FRAME_DTYPES = {"uint8": torch.uint8, "float32": torch.float32, "float16": torch.float16,
                "bfloat16": torch.bfloat16}


def resolve_fields(store: str, available: Mapping[str, FieldSpec], load: Iterable[str] | str | None) -> tuple[str, ...]:
    """Store fields to read. A name selects that field, or every field under it (``"actions"``)."""
    if load is None:
        return tuple(available)
    chosen: list[str] = []
    for name in ([load] if isinstance(load, str) else list(load)):
        prefix = name.rstrip("/") + "/"
        matches = [field for field in available if field == name or field.startswith(prefix)]
        if not matches:
            hint = " (latents appear after `dreamer-data tokenize STORE --ckpt CKPT`)" if name == "latents" else ""
            raise StoreError(f"{store}: requested field {name!r} is not in this store{hint}; "
                             f"it has: {', '.join(sorted(available))}")
        chosen += [field for field in matches if field not in chosen]
    return tuple(chosen)


def parse_frame_dtype(name: str) -> torch.dtype:
    """uint8 keeps frames as stored (4x less to move between processes); float types scale to [0, 1]."""
    if name not in FRAME_DTYPES:
        raise DreamerDataError(f"frame_dtype must be one of {', '.join(FRAME_DTYPES)}, got {name!r}")
    return FRAME_DTYPES[name]


def check_frame_format(store: str, specs: Mapping[str, FieldSpec], frame_format: str, frames_as: torch.dtype) -> str:
    """``frame_format`` if the loaded fields can be read that way: yuv420p planes come only from video clips."""
    if frame_format == "rgb24":
        return frame_format
    if frame_format != "yuv420p":
        raise DreamerDataError(f"frame_format must be rgb24 or yuv420p, got {frame_format!r}")
    spec = specs.get(FRAMES)
    if spec is None or spec.video is None:
        raise StoreError(f"{store}: frame_format yuv420p needs a video-backed frames field among the loaded ones "
                         f"(ingest --frames-as video)")
    if frames_as != torch.uint8:
        raise DreamerDataError("frame_format yuv420p gives the codec's uint8 planes: use frame_dtype uint8")
    if spec.shape[0] % 2 or spec.shape[1] % 2:
        raise StoreError(f"{store}: frames are {spec.shape[0]}x{spec.shape[1]}; yuv420p planes need an even "
                         f"height and width")
    return frame_format


def make_item(rows: Mapping[str, np.ndarray], is_first: np.ndarray, frames_as: torch.dtype) -> dict[str, torch.Tensor]:
    """Window rows → dict of tensors keyed by store field name, plus ``is_first``."""
    item = {}
    for field, array in rows.items():
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        if field == FRAMES and frames_as != torch.uint8:
            tensor = tensor.to(frames_as).div_(255)
        item[field] = tensor
    item[IS_FIRST] = torch.from_numpy(np.asarray(is_first, dtype=bool))
    return item
