"""The causal tokenizer (paper §3.1): a masked autoencoder built from the block-causal transformer.

Encoder, per frame: the frame's p×p patches (a random fraction ~ U(0, 0.9) of them replaced by a
learned mask token while training) + S_z learned latent tokens + registers. The latent tokens'
outputs go through the bottleneck

    z_t = tanh(W_z · enc(x_≤t)_latent)            (S_z × D_z per frame, e.g. 16 × 32 at 64×64)

Decoder: the projected z_t + one learned query per patch + registers; the patch queries' outputs
become pixels through a sigmoid, so reconstructions stay inside the pixel range [0, 1].

Read rules (the layouts below; §3.1): in the encoder, patches read only patches (and registers)
while latents read everything; in the decoder, latents read only latents (and registers) while
patch queries read everything — information must pass through z. Temporal layers make both halves
causal in time (z_t depends on frames ≤ t; frame t is decoded from z_≤t), at most ``context`` frames.

Frames are uint8 (B, T, H, W, C); ``dreamer_data.patches`` turns them into patches (padding H and W to
a multiple of p) and back.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from dreamer_data.patches import PatchGrid, patchify, unpatchify

from ..configs import TokenizerConfig
from ..errors import ModelError
from ..nn import BlockCausalTransformer, TimeCache, TokenGroup, TokenLayout


def encoder_layout(grid: PatchGrid, latents: int, registers: int) -> TokenLayout:
    groups = [TokenGroup("patch", grid.num_patches, grid=(grid.rows, grid.cols), reads=("patch", "register")),
              TokenGroup("latent", latents)]
    return TokenLayout(groups + ([TokenGroup("register", registers)] if registers else []))


def decoder_layout(grid: PatchGrid, latents: int, registers: int) -> TokenLayout:
    groups = [TokenGroup("patch", grid.num_patches, grid=(grid.rows, grid.cols)),
              TokenGroup("latent", latents, reads=("latent", "register"))]
    return TokenLayout(groups + ([TokenGroup("register", registers)] if registers else []))


class Tokenizer(nn.Module):
    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        self.cfg = cfg
        self.grid = PatchGrid(cfg.height, cfg.width, cfg.patch, cfg.pad_multiple)
        patch_dim = cfg.patch * cfg.patch * cfg.channels
        # both halves read at most ``context`` frames in time: the window they were trained with
        enc, dec = replace(cfg.encoder, time_window=cfg.context), replace(cfg.decoder, time_window=cfg.context)
        self.patch_embed = nn.Linear(patch_dim, enc.dim)
        self.mask_token = nn.Parameter(torch.randn(enc.dim) * 0.02)  # stands in for a dropped patch
        self.latent_queries = nn.Parameter(torch.randn(cfg.latent_tokens, enc.dim) * 0.02)
        self.encoder = BlockCausalTransformer(enc, encoder_layout(self.grid, cfg.latent_tokens, enc.registers))
        self.to_bottleneck = nn.Linear(enc.dim, cfg.latent_dim)  # W_z
        self.from_bottleneck = nn.Linear(cfg.latent_dim, dec.dim)
        self.patch_queries = nn.Parameter(torch.randn(self.grid.num_patches, dec.dim) * 0.02)
        self.decoder = BlockCausalTransformer(dec, decoder_layout(self.grid, cfg.latent_tokens, dec.registers))
        self.to_pixels = nn.Linear(dec.dim, patch_dim)

    @property
    def latent_shape(self) -> tuple[int, int]:
        return self.cfg.latent_tokens, self.cfg.latent_dim

    def check_frames(self, frames: torch.Tensor) -> None:
        expected = (self.cfg.height, self.cfg.width, self.cfg.channels)
        if frames.ndim != 5 or tuple(frames.shape[2:]) != expected:
            raise ModelError(f"tokenizer: frames must be (B, T, {', '.join(map(str, expected))}), "
                             f"got {tuple(frames.shape)}")

    def patchify(self, frames: torch.Tensor) -> torch.Tensor:
        """(…, H, W, C) → (…, N, p·p·C) on this tokenizer's (padded) patch grid."""
        return patchify(frames, self.cfg.patch, self.cfg.pad_multiple)

    def sample_drop(self, batch: int, steps: int, generator: torch.Generator | None = None,
                    device: torch.device | str = "cpu") -> torch.Tensor:
        """MAE patch dropout (B, T, N) bool: each frame drops each patch with its own rate ~ U(0, mask_max)."""
        rate = torch.rand(batch, steps, 1, generator=generator, device=device) * self.cfg.mask_max
        return torch.rand(batch, steps, self.grid.num_patches, generator=generator, device=device) < rate

    def encode(self, frames: torch.Tensor, drop: torch.Tensor | None = None, cache: TimeCache | None = None,
               update_cache: bool = False) -> torch.Tensor:
        """frames (B, T, H, W, C) uint8 (or floats in [0, 1]) → z (B, T, S_z, D_z) in (−1, 1)."""
        self.check_frames(frames)
        pixels = frames.float() / 255.0 if frames.dtype == torch.uint8 else frames.float()
        patches = self.patchify(pixels * 2.0 - 1.0)  # (B, T, N, p·p·C) in [−1, 1]
        tokens = self.patch_embed(patches.to(self.patch_embed.weight.dtype))  # (B, T, N, D)
        if drop is not None:
            tokens = torch.where(drop[..., None], self.mask_token.to(tokens.dtype), tokens)
        b, t = tokens.shape[:2]
        latents = self.latent_queries.to(tokens.dtype).expand(b, t, -1, -1)  # (B, T, S_z, D)
        out = self.encoder({"patch": tokens, "latent": latents}, cache=cache, update_cache=update_cache)
        return torch.tanh(self.to_bottleneck(out["latent"]))  # z (B, T, S_z, D_z), eq. 5 bottleneck

    def decode(self, z: torch.Tensor, cache: TimeCache | None = None, update_cache: bool = False) -> torch.Tensor:
        """z (B, T, S_z, D_z) → frames (B, T, H, W, C) as floats in [0, 1]."""
        if z.ndim != 4 or tuple(z.shape[2:]) != self.latent_shape:
            raise ModelError(f"tokenizer: latents must be (B, T, {self.latent_shape[0]}, {self.latent_shape[1]}), "
                             f"got {tuple(z.shape)}")
        latents = self.from_bottleneck(z.to(self.from_bottleneck.weight.dtype))  # (B, T, S_z, D)
        b, t = latents.shape[:2]
        queries = self.patch_queries.to(latents.dtype).expand(b, t, -1, -1)  # (B, T, N, D)
        out = self.decoder({"patch": queries, "latent": latents}, cache=cache, update_cache=update_cache)
        patches = torch.sigmoid(self.to_pixels(out["patch"]).float())  # (B, T, N, p·p·C) in (0, 1)
        return unpatchify(patches, self.grid)

    def forward(self, frames: torch.Tensor, drop: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstruct frames (B, T, H, W, C) from their (partly dropped) patches → (recon in [0, 1], z)."""
        z = self.encode(frames, drop)
        return self.decode(z), z
