"""Sizes of the dynamics model and its phase-1 run: a dataclass, named presets, YAML / ``--set`` overrides.

The override machinery, ``TransformerConfig``, ``TrainConfig`` and the transformer sizes come from
``dreamer_model.configs`` (shared with the tokenizer); only what is specific to the world model lives
here. ``latent_tokens`` / ``latent_dim`` describe the store's cached latents (``data/latents``,
(N, S_z, D_z)); the trainer takes them from the store and refuses a config that says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from ..configs import BASE, PAPER, SMALL, TINY, TrainConfig, TransformerConfig, apply_overrides, load_yaml, parse_set
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
    sample_steps: int = 4  # K denoising steps per generated frame (d = 1 / K)
    tau_ctx: float = 0.9  # signal level context frames are re-noised to at inference
    action_to_latents: bool = False  # also add the action embedding to every latent token (presets: on)
    agent_tokens: int = 0  # hidden agent tokens per step (issue 7): read everything, read by nothing
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


def _dynamics(context: int, transformer: TransformerConfig, **kw: Any) -> DynamicsConfig:
    return DynamicsConfig(context=context, transformer=replace(transformer, time_window=context),
                          action_to_latents=True, **kw)


def phase1_preset(name: str) -> Phase1Run:
    """A named preset for ``dreamer-train phase1`` (latent shape is filled in from the store)."""
    presets = {
        # tiny: time every 2nd layer: with 4 layers "every 4th" would put the only temporal layer last,
        # so nothing could mix what it reads from the past with the frame's other tokens
        "tiny": lambda: Phase1Run("tiny", _dynamics(16, replace(TINY, time_every=2)),
                                  TrainConfig(steps=3000, batch=8, lr=1e-3, warmup=100, eval_every=250,
                                              checkpoint_every=250, eval_windows=16)),
        "small": lambda: Phase1Run("small", _dynamics(32, SMALL),
                                   TrainConfig(steps=20_000, batch=16, lr=6e-4, eval_windows=32)),
        "base": lambda: Phase1Run("base", _dynamics(64, BASE),
                                  TrainConfig(steps=100_000, batch=32, lr=3e-4, workers=8, eval_every=1000,
                                              checkpoint_every=1000)),
        "paper": lambda: Phase1Run("paper", _dynamics(192, PAPER, latent_tokens=512, latent_dim=16, pack=2),
                                   TrainConfig(steps=300_000, batch=32, lr=3e-4, warmup=2000, workers=16,
                                               eval_every=5000, checkpoint_every=2000)),
    }
    if name not in presets:
        raise ModelError(f"unknown preset {name!r} (known: {', '.join(presets)})")
    return presets[name]()


def resolve_phase1_run(preset: str, config_file: str | None = None, sets: list[str] | None = None) -> Phase1Run:
    """Preset → YAML file overrides → ``--set`` overrides, validated.

    ``dynamics.context`` also sets the transformer's temporal window unless that is given explicitly."""
    run = phase1_preset(preset)
    for source, data in ((config_file, load_yaml(config_file) if config_file else None),
                         ("--set", parse_set(sets) if sets else None)):
        if not data:
            continue
        data = dict(data)
        data.pop("preset", None)
        dynamics = data.get("dynamics") if isinstance(data.get("dynamics"), Mapping) else {}
        transformer = dynamics.get("transformer") if isinstance(dynamics.get("transformer"), Mapping) else {}
        window_given = "time_window" in transformer
        run = apply_overrides(run, data, str(source))
        if not window_given:
            run.dynamics.transformer = replace(run.dynamics.transformer, time_window=run.dynamics.context)
    validate_dynamics(run.dynamics, config_file or "--set")
    return run


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
    if not 0.0 <= cfg.tau_ctx <= 1.0:
        raise ModelError(f"{source}: dynamics.tau_ctx must be in [0, 1], got {cfg.tau_ctx}")
    if cfg.context < 2:
        raise ModelError(f"{source}: dynamics.context must be ≥ 2 frames, got {cfg.context}")
    if cfg.pack < 1 or cfg.latent_tokens % cfg.pack:
        raise ModelError(f"{source}: dynamics.pack ({cfg.pack}) must divide latent_tokens ({cfg.latent_tokens})")
    if cfg.agent_tokens < 0:
        raise ModelError(f"{source}: dynamics.agent_tokens must be ≥ 0, got {cfg.agent_tokens}")


def phase1_run_from_dict(data: Mapping[str, Any], source: str) -> Phase1Run:
    """Rebuild a ``Phase1Run`` saved with ``dataclasses.asdict`` (checkpoints)."""
    return apply_overrides(Phase1Run(), data, source)
