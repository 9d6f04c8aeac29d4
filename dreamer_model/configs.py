"""Model and training sizes: the transformer, tokenizer and optimisation dataclasses, and the YAML / ``--set``
override machinery every stage's config goes through (the named presets of every stage are ``presets.py``; the
soft-cap choice per preset is explained in ``nn/attention.py``).

Overrides are nested mappings (a YAML file, or ``--set tokenizer.encoder.depth=8``); unknown keys or
values of the wrong type are a ``ModelError`` naming the source and the key.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

import yaml

from .errors import ModelError


@dataclass
class TransformerConfig:
    """The block-causal transformer (nn/transformer.py)."""

    dim: int = 128
    depth: int = 4
    heads: int = 4
    kv_heads: int = 2  # GQA: K/V heads shared by heads / kv_heads query heads each
    head_dim: int = 32
    mlp_hidden: int = 0  # 0: the usual SwiGLU width 8·dim/3
    time_every: int = 4  # every 4th layer attends over time, the others over space
    time_window: int | None = None  # steps a temporal layer reads (itself included); None: all
    registers: int = 4  # learned register tokens per time step
    qk_norm: bool = True
    soft_cap: float | None = 50.0  # attention-logit soft-cap c·tanh(x/c); None: off (SDPA everywhere)
    rope_base_space: float = 100.0
    rope_base_time: float = 10_000.0

    @property
    def hidden(self) -> int:
        from .nn.mlp import swiglu_hidden

        return self.mlp_hidden or swiglu_hidden(self.dim)

    @property
    def time_layers(self) -> list[int]:
        return [i for i in range(self.depth) if (i + 1) % self.time_every == 0]


@dataclass
class TokenizerConfig:
    """The causal MAE tokenizer (tokenizer/model.py, paper §3.1 and eq. 5)."""

    height: int = 64
    width: int = 64
    channels: int = 3
    patch: int = 8
    pad_multiple: int | None = None  # pad H, W to a multiple of this (default: of the patch)
    latent_tokens: int = 16  # S_z
    latent_dim: int = 32  # D_z
    context: int = 4  # frames per training window; the temporal layers read at most this many
    # (the tokenizer sets encoder/decoder time_window to ``context``)
    mask_max: float = 0.9  # patch-drop fraction ~ U(0, mask_max) per frame
    lpips_weight: float = 0.2
    lpips_net: str = "alex"
    focal_gamma: float = 0.0  # γ: each pixel's squared error weighs (its error / the mean error)^γ (tokenizer/loss.py)
    rms_decay: float = 0.99  # running-RMS loss normalisers
    encoder: TransformerConfig = field(default_factory=TransformerConfig)
    decoder: TransformerConfig = field(default_factory=TransformerConfig)


@dataclass
class TrainConfig:
    """Optimisation, evaluation and bookkeeping of a trainer."""

    steps: int = 5000  # total optimisation steps (--steps overrides)
    batch: int = 8  # windows per step (global; split over DDP ranks)
    lr: float = 1e-3
    warmup: int = 100
    decay_steps: int = 0  # cosine decay to lr·lr_min_ratio over this many steps after warmup; 0: constant
    lr_min_ratio: float = 0.1
    weight_decay: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    log_every: int = 10
    eval_every: int = 250
    checkpoint_every: int = 250
    keep_checkpoints: int = 3
    heldout_episodes: float = 0.05  # fraction of episodes (at least 1) kept out of training for eval
    eval_windows: int = 32
    workers: int = 0  # DataLoader worker processes
    start_share: float = 0.0  # share of training windows that begin at an episode's first frame (WindowSampler):
    # uniform windows hold an episode's opening once per episode, where an agent acts first, every episode it plays
    threads: int = 0  # torch intra-op CPU threads (0: torch's default); 1 avoids OpenMP spin-waits on a busy CPU;
    # -1: chosen by timing the run's own steps, and again when the machine's load changes (train/threads.py)
    bf16: bool = True  # the transformers under bfloat16 autocast on CUDA (train/precision.py)
    cpu_bf16: bool = False  # the same on CPUs with native bf16 (AVX512-BF16 / AMX): phase 1-2 steps 1.25x faster at
    # quickstart sizes, but the world model's held-out one-step error 25-50 % worse at equal steps (bench_precision)
    compile: bool = False  # torch.compile the model (CPU or CUDA; pays off only once its compile time is amortised)
    fsdp: bool = False  # under torchrun: shard parameters, gradients and optimizer state over the ranks
    # (FSDP2, train/fsdp.py) instead of DDP, for models that do not fit one device; one process: no-op


@dataclass
class TokenizerRun:
    """Everything ``dreamer-train tokenizer`` needs besides paths."""

    preset: str = "tiny"
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# ---------------------------------------------------------------------------------------------- overrides

def _coerce(value: Any, annotation: Any, key: str, source: str) -> Any:
    """Check/cast one override value against a dataclass field annotation."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        annotation = next(a for a in options if a is not type(None))
    if annotation is bool:
        if isinstance(value, bool):
            return value
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 2e-3 (no dot) as a string; Python's float() reads it right
            try:
                number = float(value)
            except ValueError:
                number = math.nan
            if math.isfinite(number):
                return number
    elif annotation is str:
        if isinstance(value, str):
            return value
    raise ModelError(f"{source}: {key} must be {getattr(annotation, '__name__', annotation)}, got {value!r}")


def apply_overrides(config: Any, overrides: Mapping[str, Any], source: str, prefix: str = "") -> Any:
    """Return a copy of dataclass ``config`` with the nested ``overrides`` applied."""
    if not isinstance(overrides, Mapping):
        raise ModelError(f"{source}: {prefix or 'top level'} must be a mapping, got {overrides!r}")
    hints = typing.get_type_hints(type(config))
    known = {f.name for f in fields(config)}
    changes = {}
    for name, value in overrides.items():
        key = f"{prefix}{name}"
        if name not in known:
            raise ModelError(f"{source}: unknown key {key!r} (known here: {', '.join(sorted(known))})")
        current = getattr(config, name)
        if dataclasses.is_dataclass(current):
            changes[name] = apply_overrides(current, value, source, f"{key}.")
        else:
            changes[name] = _coerce(value, hints[name], key, source)
    return replace(config, **changes)


def parse_set(items: list[str]) -> dict:
    """``["a.b=3", "c=none"]`` → ``{"a": {"b": 3}, "c": None}`` (values parsed as YAML scalars)."""
    result: dict = {}
    for item in items:
        if "=" not in item:
            raise ModelError(f"--set {item!r}: expected KEY=VALUE, e.g. tokenizer.encoder.depth=8")
        key, text = item.split("=", 1)
        value = yaml.safe_load(text) if text.strip().lower() not in ("none", "null") else None
        node = result
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return result


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ModelError(f"{path}: malformed YAML ({str(error).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path}: top level must be a mapping of config sections")
    return data


def validate_tokenizer(cfg: TokenizerConfig, source: str) -> None:
    for name, t in (("encoder", cfg.encoder), ("decoder", cfg.decoder)):
        if t.heads % t.kv_heads:
            raise ModelError(f"{source}: tokenizer.{name}.heads ({t.heads}) must be a multiple of kv_heads ({t.kv_heads})")
        if t.head_dim % 4:
            raise ModelError(f"{source}: tokenizer.{name}.head_dim ({t.head_dim}) must be a multiple of 4 (2-D RoPE)")
    if not 0.0 <= cfg.mask_max < 1.0:
        raise ModelError(f"{source}: tokenizer.mask_max must be in [0, 1), got {cfg.mask_max}")
    if cfg.pad_multiple is not None and (cfg.pad_multiple < 1 or cfg.pad_multiple % cfg.patch):
        raise ModelError(f"{source}: tokenizer.pad_multiple ({cfg.pad_multiple}) must be a multiple of the patch "
                         f"({cfg.patch})")
    if cfg.context < 1 or cfg.patch < 1:
        raise ModelError(f"{source}: tokenizer.context and tokenizer.patch must be ≥ 1")


def validate_train(cfg: TrainConfig, source: str) -> None:
    if cfg.threads < -1:
        raise ModelError(f"{source}: train.threads must be -1 (chosen by timing), 0 (torch's default) or a count, "
                         f"got {cfg.threads}")
    if not 0.0 <= cfg.start_share <= 1.0:
        raise ModelError(f"{source}: train.start_share must be in [0, 1], got {cfg.start_share}")


def to_dict(config: Any) -> dict:
    return asdict(config)

