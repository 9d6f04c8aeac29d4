"""The causal MAE tokenizer (paper §3.1, eq. 5): frames ↔ latents z_t (S_z tokens × D_z dims per frame)."""

from .model import Tokenizer

__all__ = ["Tokenizer"]
