"""Sizes of the dynamics model and its phase-1 run (the named presets are ``presets.py``).

``TransformerConfig`` and ``TrainConfig`` come from ``dreamer_model.configs`` (shared with the tokenizer); only
what is specific to the world model lives here. ``latent_tokens`` / ``latent_dim`` describe the store's cached
latents ((N, S_z, D_z)); the trainer takes them from the store and refuses a config that says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..configs import TrainConfig, TransformerConfig
from ..errors import ModelError

OBJECTIVES = ("shortcut", "flow")


@dataclass
class DynamicsConfig:
    """The interactive dynamics model (paper §3.2, eqs. 6–8) and its sampler."""

    latent_tokens: int = 16  # S_z of the store's latents
    latent_dim: int = 32  # D_z of the store's latents
    pack: int = 1  # latent tokens regrouped into one dynamics token (paper: 512×16 → 256×32 is pack 2)
    context: int = 16  # frames per training window = frames a temporal layer reads at inference (sliding window)
    k_max: int = 64  # finest step d_min = 1 / k_max (eq. 4)
    objective: str = "shortcut"  # "shortcut" (eq. 7) or "flow": the baseline, trained with d = d_min only
    bootstrap_fraction: float | None = 0.25  # P(d > d_min) per frame; None: eq. 4's uniform over levels (shortcut.py)
    context_fraction: float = 0.0  # P(a training frame is fed as clean context: τ_ctx, d_min, no loss; shortcut.py)
    history_fraction: float = 0.0  # P(a window is cut: sampler-style history, then frames to generate; shortcut.py)
    sample_steps: int = 4  # K denoising steps per generated frame (d = 1 / K)
    tau_ctx: float = 0.9  # signal level context frames are re-noised to at inference
    action_to_latents: bool = False  # also add the action embedding to every latent token (presets: on)
    agent_tokens: int = 0  # hidden agent tokens per step: read everything, read by nothing
    rms_decay: float = 0.99  # running-RMS loss normalisers
    transformer: TransformerConfig = field(default_factory=TransformerConfig)

    @property
    def d_min(self) -> float:
        return 1.0 / self.k_max

    @property
    def tokens(self) -> int:
        """Latent tokens per step inside the dynamics transformer (S_z / pack)."""
        return self.latent_tokens // self.pack

    @property
    def token_dim(self) -> int:
        return self.latent_dim * self.pack


@dataclass
class Phase1Run:
    """Everything ``dreamer-train phase1`` needs besides paths."""

    preset: str = "tiny"
    dynamics: DynamicsConfig = field(default_factory=DynamicsConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def validate_dynamics(cfg: DynamicsConfig, source: str) -> None:
    t = cfg.transformer
    if t.heads % t.kv_heads:
        raise ModelError(f"{source}: dynamics.transformer.heads ({t.heads}) must be a multiple of kv_heads ({t.kv_heads})")
    if t.head_dim % 4:
        raise ModelError(f"{source}: dynamics.transformer.head_dim ({t.head_dim}) must be a multiple of 4 (2-D RoPE)")
    if not t.time_layers:
        raise ModelError(f"{source}: dynamics.transformer has no temporal layer (depth {t.depth} < time_every "
                         f"{t.time_every}); the world model could not read the past")
    if cfg.objective not in OBJECTIVES:
        raise ModelError(f"{source}: dynamics.objective must be one of {', '.join(OBJECTIVES)}, got {cfg.objective!r}")
    if cfg.k_max < 1 or cfg.k_max & (cfg.k_max - 1):
        raise ModelError(f"{source}: dynamics.k_max must be a power of two, got {cfg.k_max}")
    if cfg.sample_steps < 1 or (cfg.objective == "shortcut" and (cfg.sample_steps & (cfg.sample_steps - 1)
                                                                  or cfg.sample_steps > cfg.k_max)):
        raise ModelError(f"{source}: dynamics.sample_steps must be a power of two ≤ k_max ({cfg.k_max}) for a "
                         f"shortcut model, got {cfg.sample_steps}")
    if cfg.bootstrap_fraction is not None and not 0.0 <= cfg.bootstrap_fraction <= 1.0:
        raise ModelError(f"{source}: dynamics.bootstrap_fraction must be in [0, 1] or none, got {cfg.bootstrap_fraction}")
    if not 0.0 <= cfg.context_fraction < 1.0:
        raise ModelError(f"{source}: dynamics.context_fraction must be in [0, 1), got {cfg.context_fraction}")
    if not 0.0 <= cfg.history_fraction < 1.0:
        raise ModelError(f"{source}: dynamics.history_fraction must be in [0, 1) (at 1 no window would train eq. 4's "
                         f"coarser steps, which the sampler takes), got {cfg.history_fraction}")
    if not 0.0 <= cfg.tau_ctx <= 1.0:
        raise ModelError(f"{source}: dynamics.tau_ctx must be in [0, 1], got {cfg.tau_ctx}")
    if cfg.context < 2:
        raise ModelError(f"{source}: dynamics.context must be ≥ 2 frames, got {cfg.context}")
    if cfg.pack < 1 or cfg.latent_tokens % cfg.pack:
        raise ModelError(f"{source}: dynamics.pack ({cfg.pack}) must divide latent_tokens ({cfg.latent_tokens})")
    if cfg.agent_tokens < 0:
        raise ModelError(f"{source}: dynamics.agent_tokens must be ≥ 0, got {cfg.agent_tokens}")

