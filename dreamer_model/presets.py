"""Every stage's sizes by name, and the one resolver: preset → YAML file → ``--set`` overrides, validated.

Stages: ``tokenizer``, ``phase1`` (world model), ``phase2`` (BC + reward heads), ``phase3`` (imagination RL).
The size ladder: ``tiny`` trains on 2 CPU cores in minutes; ``small``; ``base`` for one GPU; ``paper`` at the
paper's Minecraft geometry: 360×640 frames padded to 384×640 (``pad_multiple=128``), 16×16 patches = 960 per
frame, a bottleneck of 512 tokens × 16 dims, packed two to a dynamics token, 192 frames of context. Widths and
depths of ``paper`` (and its agent heads, imagination horizon and learning rates) are ours where the paper
gives no number. Named scales: ``micro`` (MinAtar at 32×32, ``benchmarks/bench_agent.py``) and ``quickstart``
(MinAtar at 20×20, ``dreamer-train quickstart``), each ``tiny`` with the changes listed in ``NAMED``.

The world model's latent shape comes from the store it trains on; ``parameter_counts`` assumes the latents of
the same preset's tokenizer and a reference action space (Minecraft's for the ladder, MinAtar's for the named
scales). Phase 3 keeps the phase-2 agent's networks (``STRUCTURE``); its preset sets the imagination (horizon,
context, K, PMPO and return coefficients), the optimisation and the value learning rate.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Mapping

import torch

from .agent.actions import ActionSpace
from .agent.config import AgentConfig, Phase2Run, Phase3Run, saved_agent_config, validate_agent
from .configs import (TokenizerConfig, TokenizerRun, TrainConfig, TransformerConfig, apply_overrides, load_yaml,
                      parse_set, validate_tokenizer, validate_train)
from .dynamics.actions import action_fields
from .dynamics.config import DynamicsConfig, Phase1Run, validate_dynamics
from .errors import ModelError

STAGES = ("tokenizer", "phase1", "phase2", "phase3")
LADDER = ("tiny", "small", "base", "paper")
PRESETS = (*LADDER, "micro", "quickstart")
Run = TokenizerRun | Phase1Run | Phase2Run | Phase3Run
RUNS: dict[str, type] = {"tokenizer": TokenizerRun, "phase1": Phase1Run, "phase2": Phase2Run, "phase3": Phase3Run}
# Agent fields that shape the networks or what the policy reads: phase 3 takes them from the phase-2 agent.
STRUCTURE = ("agent_tokens", "head_hidden", "head_layers", "mtp", "bins", "bins_low", "bins_high",
             "policy_sees_actions", "policy_window")
# Agent fields only imagination reads: phase 3 takes them from its own preset.
IMAGINATION = ("alpha", "beta", "gamma", "lam", "horizon", "context", "sample_steps", "slow_value_decay")

TINY = TransformerConfig(dim=128, depth=4, heads=4, kv_heads=2, head_dim=32, registers=4)
SMALL = TransformerConfig(dim=256, depth=8, heads=8, kv_heads=4, head_dim=32, registers=4)
BASE = TransformerConfig(dim=512, depth=12, heads=8, kv_heads=4, head_dim=64, registers=8, soft_cap=None)
PAPER = TransformerConfig(dim=1536, depth=16, heads=24, kv_heads=8, head_dim=64, registers=16, soft_cap=None)
MICRO = {"dim": 64, "depth": 2, "heads": 2, "kv_heads": 1, "head_dim": 32, "registers": 2, "time_every": 2}

MINECRAFT_ACTIONS = {"buttons": {"kind": "binary", "size": 23}, "camera": {"kind": "categorical", "size": 121}}
MINATAR_ACTIONS = {"discrete": {"kind": "categorical", "size": 6}}


def _tokenizer(height: int, width: int, patch: int, latents: int, latent_dim: int, context: int,
               transformer: TransformerConfig, pad_multiple: int | None = None) -> TokenizerConfig:
    return TokenizerConfig(height=height, width=width, patch=patch, pad_multiple=pad_multiple, latent_tokens=latents,
                           latent_dim=latent_dim, context=context, encoder=transformer, decoder=transformer)


def _dynamics(context: int, transformer: TransformerConfig, **kw: Any) -> DynamicsConfig:
    return DynamicsConfig(context=context, transformer=replace(transformer, time_window=context),
                          action_to_latents=True, **kw)


LADDER_RUNS: dict[str, dict[str, Callable[[], Run]]] = {
    "tiny": {
        # tiny trains on single frames: at the same 32 frames per step, 32 different scenes beat
        # 8 windows × 4 consecutive frames on held-out Crafter (21.8 vs 20.6 dB PSNR after 1000 steps);
        # the larger presets keep a temporal context.
        "tokenizer": lambda: TokenizerRun("tiny", _tokenizer(64, 64, 8, 16, 32, 1, TINY),
                                          TrainConfig(steps=5000, batch=32, lr=1e-3)),
        # time every 2nd layer: with 4 layers "every 4th" would put the only temporal layer last,
        # so nothing could mix what it reads from the past with the frame's other tokens
        "phase1": lambda: Phase1Run("tiny", _dynamics(16, replace(TINY, time_every=2)),
                                    TrainConfig(steps=3000, batch=8, lr=1e-3, warmup=100, eval_every=250,
                                                checkpoint_every=250, eval_windows=16)),
        "phase2": lambda: Phase2Run("tiny"),
        "phase3": lambda: Phase3Run("tiny"),
    },
    "small": {
        "tokenizer": lambda: TokenizerRun("small", _tokenizer(64, 64, 8, 32, 32, 8, SMALL),
                                          TrainConfig(steps=20_000, batch=16, lr=6e-4)),
        "phase1": lambda: Phase1Run("small", _dynamics(32, SMALL),
                                    TrainConfig(steps=20_000, batch=16, lr=6e-4, eval_windows=32)),
        "phase2": lambda: Phase2Run("small", AgentConfig(head_hidden=512),
                                    TrainConfig(steps=10_000, batch=32, lr=3e-4, warmup=100, eval_every=500,
                                                checkpoint_every=500)),
        "phase3": lambda: Phase3Run("small", AgentConfig(horizon=16, context=32),
                                    TrainConfig(steps=5000, batch=32, lr=1e-4, warmup=50, weight_decay=0.0,
                                                eval_every=250, checkpoint_every=250), value_lr=3e-4,
                                    value_warmup=100),
    },
    "base": {
        "tokenizer": lambda: TokenizerRun("base", _tokenizer(128, 128, 8, 64, 32, 16, BASE),
                                          TrainConfig(steps=100_000, batch=32, lr=3e-4, workers=8, eval_every=1000,
                                                      checkpoint_every=1000)),
        "phase1": lambda: Phase1Run("base", _dynamics(64, BASE),
                                    TrainConfig(steps=100_000, batch=32, lr=3e-4, workers=8, eval_every=1000,
                                                checkpoint_every=1000)),
        "phase2": lambda: Phase2Run("base", AgentConfig(agent_tokens=2, head_hidden=1024, head_layers=3),
                                    TrainConfig(steps=50_000, batch=32, lr=1e-4, warmup=1000, workers=8,
                                                eval_every=1000, checkpoint_every=1000)),
        "phase3": lambda: Phase3Run("base", AgentConfig(horizon=32, context=64),
                                    TrainConfig(steps=20_000, batch=64, lr=3e-5, warmup=500, weight_decay=0.0,
                                                workers=8, eval_every=1000, checkpoint_every=1000),
                                    value_lr=1e-4, value_warmup=500),
    },
    "paper": {
        "tokenizer": lambda: TokenizerRun("paper", _tokenizer(360, 640, 16, 512, 16, 64, PAPER, pad_multiple=128),
                                          TrainConfig(steps=300_000, batch=64, lr=3e-4, warmup=2000, workers=16,
                                                      eval_every=5000, checkpoint_every=2000)),
        "phase1": lambda: Phase1Run("paper", _dynamics(192, PAPER, latent_tokens=512, latent_dim=16, pack=2),
                                    TrainConfig(steps=300_000, batch=32, lr=3e-4, warmup=2000, workers=16,
                                                eval_every=5000, checkpoint_every=2000)),
        "phase2": lambda: Phase2Run("paper", AgentConfig(agent_tokens=4, head_hidden=1536, head_layers=3),
                                    TrainConfig(steps=100_000, batch=32, lr=1e-4, warmup=2000, workers=16,
                                                eval_every=5000, checkpoint_every=2000)),
        "phase3": lambda: Phase3Run("paper", AgentConfig(horizon=32, context=64),
                                    TrainConfig(steps=50_000, batch=64, lr=3e-5, warmup=1000, weight_decay=0.0,
                                                workers=16, eval_every=2000, checkpoint_every=2000),
                                    value_lr=1e-4, value_warmup=1000),
    },
}

QUICK_BOOKS = {"log_every": 5, "eval_every": 500, "checkpoint_every": 200}
# The named scales: ``tiny`` with these changes (what the benchmark and the quickstart measured).
NAMED: dict[str, dict[str, dict]] = {
    # benchmarks/bench_agent.py: MinAtar at 32x32, 16 patches of 8x8, 8 latents x 16 dims; the world model and agent
    # at the same micro scale, context 8 (half the random-policy episodes are 7 frames long, and 16-frame windows
    # would leave almost only scripted play)
    "micro": {
        "tokenizer": {"tokenizer": {"height": 32, "width": 32, "patch": 8, "latent_tokens": 8, "latent_dim": 16,
                                    "context": 4, "mask_max": 0.0, "encoder": MICRO, "decoder": MICRO},
                      "train": {"batch": 16, "lr": 2e-3, "warmup": 50, "eval_every": 500, "checkpoint_every": 500}},
        "phase1": {"dynamics": {"context": 8, "transformer": {**MICRO, "dim": 96, "depth": 4, "heads": 3}},
                   "train": {"batch": 16, "lr": 1e-3, "warmup": 100, "eval_every": 500, "checkpoint_every": 500}},
        "phase2": {"agent": {"head_hidden": 128},
                   "train": {"batch": 16, "lr": 3e-4, "warmup": 50, "eval_every": 250, "checkpoint_every": 250}},
        "phase3": {"agent": {"context": 8, "horizon": 16},
                   "train": {"batch": 16, "lr": 1e-4, "eval_every": 100, "checkpoint_every": 100, "eval_windows": 32},
                   "value_lr": 3e-4, "value_warmup": 50},
    },
    # dreamer-train quickstart on MinAtar (its Crafter run changes the frame size, dreamer_model/quickstart.py).
    "quickstart": {
        # MinAtar's 10x10 grid at 2 pixels per cell with 4-pixel patches: every patch is exactly 2x2 cells. Against
        # 32x32 frames and 8-pixel patches (cells of 3 or 4 pixels straddling patches) in the same budget, an MLP
        # reading the latents predicted the behaviour's actions at 0.88 vs 0.80 held-out accuracy and played
        # breakout at mean return 4.6 vs 0.6 (benchmarks/probe_latents.py, benchmarks/results/agent.md).
        # One frame per window, 32 windows per step: in equal wall time this reached a higher held-out PSNR on
        # breakout (23.4 dB after 150 s) than 4-frame windows (21.7 dB); time is the world model's job.
        # Focal weighting (γ = 1) of the pixel loss and 16 latent tokens: at 4,000 steps (benchmarks/bench_objects.py)
        # plain MSE drew breakout's ball in 12 % (8 tokens) / 41 % (16 tokens) of its unseen cells, 46 % in an
        # earlier plain run; focal in 82 % / 98 % (29.6 / 34.9 dB); phase 1 packs the 16 two to a token, so the
        # world model still sees 8 per frame. 400 held-out windows hold ~400 ball cells.
        "tokenizer": {"tokenizer": {"height": 20, "width": 20, "patch": 4, "latent_tokens": 16, "latent_dim": 16,
                                    "context": 1, "mask_max": 0.0, "lpips_weight": 0.0, "focal_gamma": 1.0,
                                    "encoder": MICRO, "decoder": MICRO},
                      "train": {"batch": 32, "lr": 2e-3, "warmup": 50, **QUICK_BOOKS, "eval_windows": 400}},
        # History mix 0.9 (dynamics/shortcut.py) and lr 2e-3: on breakout the imagined ball lands in the right cell
        # one step ahead after 2,000 steps 0.40 of the time (mix 0.30, lr 0.24 alone) against 0.09 with eq. 4 at
        # lr 1e-3; 0.63 vs 0.37 after 4,000, bricks unchanged (benchmarks/results/ladder.md, "The history mix").
        "phase1": {"dynamics": {"context": 8, "pack": 2, "history_fraction": 0.9,
                                "transformer": {**MICRO, "dim": 96, "depth": 4, "heads": 3}},
                   "train": {"batch": 16, "lr": 2e-3, "warmup": 100, **QUICK_BOOKS}},
        # Heads predict the next action only (mtp 0; the paper's eq. 9 uses L = 8): averaged over n = 0 … 8, the
        # action the policy takes gets a ninth of the BC gradient. Same store, world model and 1,510 steps:
        # greedy BC 5.36 ± 0.47 with mtp 0 vs 1.23 ± 0.12 with mtp 8, sampled 1.79 vs 0.88 (200 seeds).
        # A quarter of the windows start an episode (train.start_share): breakout's first ball is lost or caught in
        # the episode's first six steps, one window in ~250 of a uniform draw. On one quickstart (seed 0, 100
        # evaluation episodes) BC played 3.62 ± 0.23 against 2.55 ± 0.23 without (benchmarks/results/ladder.md, run 7).
        # BC weighted 4x against the world model's loss (agent.bc_weight): every step's gradient is clipped (norm 5-10
        # against 1.0) and eq. 7's dominated its direction. Retraining one quickstart's phase 2 for its 430 s
        # (seed 3000, 200 episodes, sampled): weight 1 → 3.49 / 2.77 (training seeds 0 / 1), 4 → 4.05 / 4.22,
        # 10 → 4.47 / 4.28, 30 → 3.79; the world model's training loss rose 11 % at 4, 26 % at 10 (ladder.md).
        "phase2": {"agent": {"head_hidden": 128, "mtp": 0, "bc_weight": 4.0},
                   "train": {"batch": 16, "lr": 1e-3, "warmup": 50, "start_share": 0.25, **QUICK_BOOKS}},
        "phase3": {"agent": {"context": 8, "horizon": 16},
                   "train": {"batch": 16, "lr": 3e-4, "eval_windows": 32, **QUICK_BOOKS, "eval_every": 100},
                   "value_lr": 3e-4, "value_warmup": 20},
    },
}
REFERENCE_ACTIONS = {**{name: MINECRAFT_ACTIONS for name in LADDER}, **{name: MINATAR_ACTIONS for name in NAMED}}


def _override(run: Run, stage: str, data: Mapping | None, source: str) -> Run:
    """``run`` with one source of overrides applied (a top-level ``preset`` key is ignored). Phase 1:
    ``dynamics.context`` also sets the transformer's temporal window unless that is given explicitly."""
    if not data:
        return run
    data = dict(data)
    data.pop("preset", None)
    if stage != "phase1":
        return apply_overrides(run, data, source)
    dynamics = data.get("dynamics") if isinstance(data.get("dynamics"), Mapping) else {}
    transformer = dynamics.get("transformer") if isinstance(dynamics.get("transformer"), Mapping) else {}
    run = apply_overrides(run, data, source)
    if "time_window" not in transformer:
        run.dynamics.transformer = replace(run.dynamics.transformer, time_window=run.dynamics.context)
    return run


def preset(stage: str, name: str) -> Run:
    """A fresh run config of ``stage`` at preset ``name``."""
    if stage not in RUNS:
        raise ModelError(f"unknown stage {stage!r} (known: {', '.join(STAGES)})")
    if name not in PRESETS:
        raise ModelError(f"unknown preset {name!r} (known: {', '.join(PRESETS)})")
    if name in LADDER_RUNS:
        return LADDER_RUNS[name][stage]()
    return replace(_override(LADDER_RUNS["tiny"][stage](), stage, NAMED[name][stage], f"preset {name}"), preset=name)


def resolve_run(stage: str, name: str, config_file: str | None = None, sets: list[str] | None = None,
                agent: AgentConfig | None = None) -> Run:
    """Preset → YAML file overrides → ``--set`` overrides, validated. Phase 3 starts from the phase-2 ``agent``:
    its networks stay, its imagination settings come from the preset."""
    run = preset(stage, name)
    if stage == "phase3":
        if agent is None:
            raise ModelError("phase 3 resolves its config against the phase-2 agent it starts from")
        run.agent = replace(agent, **{key: getattr(run.agent, key) for key in IMAGINATION})
    run = _override(run, stage, load_yaml(config_file) if config_file else None, str(config_file))
    run = _override(run, stage, parse_set(sets) if sets else None, "--set")
    source = config_file or "--set"
    validate_train(run.train, source)
    if stage == "tokenizer":
        validate_tokenizer(run.tokenizer, source)
    elif stage == "phase1":
        validate_dynamics(run.dynamics, source)
    else:
        validate_agent(run.agent, source)
    if stage == "phase3":
        changed = [key for key in STRUCTURE if getattr(run.agent, key) != getattr(agent, key)]
        if changed:
            raise ModelError(f"{source}: phase 3 cannot change the heads' shape "
                             f"({', '.join('agent.' + key for key in changed)}); they come from phase 2")
        if run.value_warmup < 0:
            raise ModelError(f"{source}: value_warmup must be >= 0")
    return run


def counts_table(counts: Mapping[str, Mapping[str, int]]) -> str:
    """The Markdown table of ``{preset: {stage: parameters}}`` that ``dreamer-train presets`` prints."""
    lines = ["| preset | " + " | ".join(STAGES) + " |", "|---|" + "---:|" * len(STAGES)]
    lines += [f"| {name} | " + " | ".join(f"{counts[name][stage]:,}" for stage in STAGES) + " |" for name in counts]
    return "\n".join(lines)


def run_from_dict(stage: str, data: Mapping[str, Any], source: str) -> Run:
    """Rebuild a run config saved with ``dataclasses.asdict`` (checkpoints), keys renamed since then migrated."""
    if isinstance(data.get("agent"), Mapping):
        data = {**data, "agent": saved_agent_config(data["agent"])}
    return apply_overrides(RUNS[stage](), data, source)


def parameter_counts(name: str) -> dict[str, int]:
    """{stage: parameters it trains} at preset ``name``: every weight for the tokenizer, phase 1 and phase 2
    (the world model is fine-tuned with the heads), the policy and value heads for phase 3. Built on the meta
    device: no memory, even for ``paper``."""
    from .agent.model import Agent
    from .dynamics.model import DynamicsModel
    from .tokenizer.model import Tokenizer

    runs = {stage: preset(stage, name) for stage in STAGES}
    tokenizer = runs["tokenizer"].tokenizer
    dynamics = replace(runs["phase1"].dynamics, latent_tokens=tokenizer.latent_tokens, latent_dim=tokenizer.latent_dim)
    actions = REFERENCE_ACTIONS[name]
    fields_ = action_fields(actions, f"preset {name}")
    space = ActionSpace.from_manifest(actions, f"preset {name}")
    phase3_agent = replace(runs["phase2"].agent, **{key: getattr(runs["phase3"].agent, key) for key in IMAGINATION})
    with torch.device("meta"):
        models = {"tokenizer": Tokenizer(tokenizer), "phase1": DynamicsModel(dynamics, fields_),
                  "phase2": Agent(dynamics, fields_, space, runs["phase2"].agent, ["reward"]),
                  "phase3": Agent(dynamics, fields_, space, phase3_agent, ["reward"])}
    counts = {stage: sum(p.numel() for p in model.parameters()) for stage, model in models.items()}
    counts["phase3"] = sum(p.numel() for head in (models["phase3"].policy, models["phase3"].value)
                           for p in head.parameters())
    return counts

