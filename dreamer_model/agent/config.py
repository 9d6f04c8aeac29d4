"""Sizes and coefficients of the agent (phases 2 and 3): heads, MTP, bins, PMPO, TD(λ), imagination.

Defaults follow the paper's setup as used by public reproductions: MTP length L = 8, 255 symlog
bins, PMPO α = 0.5 and β = 0.3, γ = 0.997, λ = 0.95, imagination horizon 16 from a real context of
16 frames generated with K = 4 shortcut steps. All of them can be overridden from YAML / ``--set``
(``agent.beta=0.1``), validated by ``dreamer_model.configs.apply_overrides``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ..configs import TrainConfig
from ..errors import ModelError


@dataclass
class AgentConfig:
    agent_tokens: int = 1  # agent tokens per time step (hidden: read by no world-model token)
    head_hidden: int = 256
    head_layers: int = 2
    mtp: int = 8  # L of eq. 9: heads predict n = 0 … L steps ahead
    bins: int = 255
    bins_low: float = -20.0  # symlog-space range of the bins
    bins_high: float = 20.0
    bins_target: str = "twohot"  # or "hlgauss"
    unimix: float = 0.01  # uniform mix of categorical policies
    # False: the agent tokens read the world model run with every action replaced by the null embedding, so the
    # policy acts on observations alone. With past actions in view, BC on autocorrelated behaviour learns to
    # repeat its last action (high offline accuracy, no reaction to the game in closed loop: the copycat problem).
    policy_sees_actions: bool = True
    # Frames each temporal layer of the agent's pass reads (None: the world model's window). 1: the policy sees
    # the current frame only; k > 1: (k − 1) · (temporal layers) + 1 frames reach it through the stack. Reading
    # eight frames instead of one cost an MLP on breakout's latents about a third of its return (ladder.md, run
    # 5: the copycat problem through the frames); a narrower window gives the policy its own pass and cache.
    policy_window: int | None = None
    # phase 3
    alpha: float = 0.5  # PMPO weight of D+ (eq. 11)
    beta: float = 0.3  # PMPO weight of KL[π ‖ π_prior]
    gamma: float = 0.997
    lam: float = 0.95
    horizon: int = 16  # imagined steps
    context: int = 16  # real frames the imagination starts from
    sample_steps: int = 4  # K denoising steps per imagined frame: the name dynamics.sample_steps has for generation
    slow_value_decay: float = 0.98  # EMA of the value head used to bootstrap R^λ
    # phase 2 loss weights (eq. 9 terms and the world model's own loss)
    bc_weight: float = 1.0
    reward_weight: float = 1.0
    continue_weight: float = 1.0
    balance_continue: bool = True  # average the continuation loss over episode ends and the rest separately
    dynamics_weight: float = 1.0


@dataclass
class Phase2Run:
    preset: str = "tiny"
    agent: AgentConfig = field(default_factory=AgentConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=2000, batch=16, lr=3e-4, warmup=50,
                                                                   eval_every=250, checkpoint_every=250))
    freeze_world_model: bool = False


@dataclass
class Phase3Run:
    preset: str = "tiny"
    agent: AgentConfig = field(default_factory=AgentConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=1000, batch=16, lr=1e-4, warmup=20,
                                                                   weight_decay=0.0, eval_every=100,
                                                                   checkpoint_every=100))
    value_lr: float = 3e-4
    value_warmup: int = 50  # steps that train only the value head before the policy starts moving


def validate_agent(cfg: AgentConfig, source: str) -> None:
    checks = [
        (cfg.agent_tokens >= 1, "agent.agent_tokens must be >= 1"),
        (cfg.policy_window is None or cfg.policy_window >= 1, "agent.policy_window must be >= 1 (or null: all)"),
        (cfg.mtp >= 0, "agent.mtp must be >= 0"),
        (cfg.bins >= 2, "agent.bins must be >= 2"),
        (cfg.bins_low < cfg.bins_high, "agent.bins_low must be < agent.bins_high"),
        (cfg.bins_target in ("twohot", "hlgauss"), "agent.bins_target must be twohot or hlgauss"),
        (0.0 <= cfg.alpha <= 1.0, "agent.alpha must be in [0, 1]"),
        (cfg.beta >= 0.0, "agent.beta must be >= 0"),
        (0.0 < cfg.gamma <= 1.0, "agent.gamma must be in (0, 1]"),
        (0.0 <= cfg.lam <= 1.0, "agent.lam must be in [0, 1]"),
        (cfg.horizon >= 1 and cfg.context >= 1, "agent.horizon and agent.context must be >= 1"),
        (cfg.sample_steps >= 1 and cfg.sample_steps & (cfg.sample_steps - 1) == 0,
         "agent.sample_steps must be a power of two"),
        (0.0 <= cfg.slow_value_decay < 1.0, "agent.slow_value_decay must be in [0, 1)"),
        (0.0 <= cfg.unimix < 1.0, "agent.unimix must be in [0, 1)"),
    ]
    for ok, message in checks:
        if not ok:
            raise ModelError(f"{source}: {message}")


RENAMED = {"sampling_steps": "sample_steps"}  # keys of agent configs saved by older checkpoints


def saved_agent_config(data: Mapping[str, Any]) -> dict[str, Any]:
    """An ``agent`` config dict as saved in a checkpoint, with keys renamed since then under their new names."""
    return {RENAMED.get(key, key): value for key, value in data.items()}
