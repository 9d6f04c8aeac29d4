"""Decoded YUV 4:2:0 frames to RGB on the consumer's device (``frame_format="yuv420p"`` of both loaders).

A loader that hands over the codec's planes moves half the bytes of RGB between processes and skips swscale;
the trainer converts the batch where it computes (the GPU). Ingest converts RGB to yuv420p with swscale's
defaults for an untagged stream, BT.601 limited range, and the RGB read path converts back with the same;
this is that conversion, with each chroma sample covering its 2x2 block of pixels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# BT.601, limited range: Y in [16, 235], Cb/Cr in [16, 240]
_Y_SCALE = 255 / 219
_CR_TO_R, _CB_TO_B = 255 / 112 * 0.701, 255 / 112 * 0.886
_CB_TO_G, _CR_TO_G = 255 / 112 * 0.886 * 0.114 / 0.587, 255 / 112 * 0.701 * 0.299 / 0.587


def yuv420_planes_shape(height: int, width: int) -> tuple[int, int]:
    """Shape of one frame's planes as PyAV's ``to_ndarray()`` lays out yuv420p: Y rows, then U and V packed."""
    return height * 3 // 2, width


def yuv420_to_rgb(planes: torch.Tensor) -> torch.Tensor:
    """(..., H*3/2, W) uint8 yuv420p planes (Y, then U, then V, each flat) → (..., H, W, 3) uint8 RGB."""
    import torch  # here, not at the top: every data command imports this module, and torch costs 2-3 s of start-up

    if planes.dtype != torch.uint8 or planes.dim() < 2 or planes.shape[-2] % 3 or planes.shape[-1] % 2:
        raise ValueError(f"yuv420_to_rgb takes (..., H*3/2, W) uint8 planes with H and W even, got "
                         f"{tuple(planes.shape)} {planes.dtype}")
    lead, width = planes.shape[:-2], planes.shape[-1]
    height = planes.shape[-2] * 2 // 3
    half = (height // 2, width // 2)
    flat = planes.reshape(*lead, -1)
    luma = flat[..., :height * width].reshape(*lead, half[0], 2, half[1], 2).float()  # pixel (2i + a, 2j + b)
    cb, cr = (flat[..., height * width:].float() - 128).reshape(*lead, 2, *half).unbind(-3)
    # the chroma terms at chroma resolution, each added to its 2x2 pixels by broadcasting
    chroma = torch.stack([_CR_TO_R * cr, -_CB_TO_G * cb - _CR_TO_G * cr, _CB_TO_B * cb], dim=-1)
    rgb = ((luma - 16) * _Y_SCALE).unsqueeze(-1) + chroma[..., :, None, :, None, :]
    return rgb.round_().clamp_(0, 255).to(torch.uint8).reshape(*lead, height, width, 3)
