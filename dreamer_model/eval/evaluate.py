"""``dreamer-train eval {crafter,minatar}``: a trained agent (``--ckpt``) or a behaviour policy
(``--policy random|noisy-scripted``) in the real environment, on seeded episodes shared by all.

The environment settings (MinAtar game, sticky-action probability, difficulty ramping, frame size)
come from the agent checkpoint, i.e. from the store it was trained on; ``--game``, ``--max-steps``
and ``--sticky-prob`` override them (a behaviour policy takes them from ``--data STORE`` or flags), so
every row of a comparison can be run with exactly the same settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from dreamer_data.collect.minatar_render import DEFAULT_DRAW_ORDER, DEFAULT_PALETTE, LEGACY_DRAW_ORDER
from dreamer_data.collect.policies import POLICIES

from ..checkpoint import load_agent, tokenizer_from_record
from ..errors import ModelError
from ..stores import env_settings, read_manifest
from .envs import ENVS, EnvSettings
from .policies import AgentPolicy, BehaviourPolicy
from .report import summary_lines, write_outputs
from .runner import evaluate


@dataclass
class EvalOptions:
    env: str
    ckpt: str | None = None
    policy: str | None = None  # behaviour policy instead of a checkpoint
    data: str | None = None  # store whose environment settings a behaviour policy uses
    episodes: int = 100
    seed: int = 0
    game: str | None = None
    max_steps: int | None = None
    sticky_prob: float | None = None
    epsilon: float = 0.1
    task: str | None = None
    greedy: bool = False
    record: int = 3
    batch: int = 32
    out: str | None = None
    device: str = "cpu"


def _settings(base: dict, options: EvalOptions, source: str) -> EnvSettings:
    # A checkpoint or store that names a palette but no draw order was drawn before draw orders existed.
    draw_order = base.get("draw_order", LEGACY_DRAW_ORDER if "palette" in base else DEFAULT_DRAW_ORDER)
    if base.get("env") != options.env:
        raise ModelError(f"{source}: recorded in {base.get('env')!r}, cannot be evaluated in {options.env!r}")
    settings = EnvSettings(env=options.env, game=base.get("game"), sticky_prob=base.get("sticky_prob", 0.1),
                           ramping=base.get("ramping", True), max_steps=int(base.get("max_steps", 1000)),
                           size=tuple(base.get("size", (64, 64))), palette=base.get("palette", DEFAULT_PALETTE),
                           draw_order=draw_order)
    if options.game is not None:
        settings.game = options.game
    if options.max_steps is not None:
        settings.max_steps = options.max_steps
    if options.sticky_prob is not None:
        settings.sticky_prob = options.sticky_prob
    return settings.checked()


def prepare(options: EvalOptions):
    """(env settings, policy, extra report fields, default output folder) from the options."""
    if options.env not in ENVS:
        raise ModelError(f"unknown environment {options.env!r}; choose from {', '.join(ENVS)}")
    if (options.ckpt is None) == (options.policy is None):
        raise ModelError("give exactly one of --ckpt RUN (a trained agent) or --policy NAME (a behaviour policy)")
    if options.episodes < 1 or options.batch < 1 or options.record < 0:
        raise ModelError("--episodes and --batch must be >= 1, --record >= 0")
    if options.ckpt is not None:
        agent, state = load_agent(options.ckpt)
        settings = _settings(state["env"], options, state["path"])
        tokenizer = tokenizer_from_record(state["tokenizer"], state["path"])
        if tuple(settings.size) != (tokenizer.cfg.height, tokenizer.cfg.width):
            raise ModelError(f"{state['path']}: the tokenizer reads {tokenizer.cfg.height}x{tokenizer.cfg.width} "
                             f"frames, the environment settings say {settings.size}")
        task = options.task or agent.tasks[0]
        name = f"phase{state['phase']}"
        policy = AgentPolicy(agent, tokenizer, task, greedy=options.greedy, seed=options.seed,
                             device=options.device, name=name)
        extra = {"checkpoint": state["path"], "checkpoint_step": state["step"], "phase": state["phase"],
                 "task": task, "greedy": options.greedy}
        out = Path(options.out) if options.out else Path(state["path"]).parents[1] / f"eval_{options.env}_seed{options.seed}"
        return settings, policy, extra, out
    if options.policy not in POLICIES:
        raise ModelError(f"unknown behaviour policy {options.policy!r}; choose from {', '.join(POLICIES)}")
    if options.data is not None:
        manifest = read_manifest(options.data)
        base = env_settings(manifest, options.data)
    else:
        base = {"env": options.env, "game": options.game, "sticky_prob": 0.1, "ramping": True,
                "max_steps": options.max_steps or 1000, "size": (64, 64)}
    settings = _settings(base, options, options.data or "--policy")
    policy = BehaviourPolicy(options.policy, options.epsilon)
    extra = {"behaviour_policy": options.policy, **({"epsilon": options.epsilon}
                                                    if options.policy == "noisy-scripted" else {})}
    out = Path(options.out) if options.out else Path(f"eval_{options.env}_{options.policy}_seed{options.seed}")
    return settings, policy, extra, out


class Evaluation:
    """An evaluation checked and loaded (bad input fails here, before anything runs), ready to play."""

    def __init__(self, options: EvalOptions):
        self.options = options
        self.settings, self.policy, self.extra, self.out = prepare(options)

    def run(self, progress: Callable[[int, int], None] | None = None) -> tuple[dict, Path, list[str]]:
        """Play the episodes, write report.json / chart / videos; returns (report, folder, summary lines)."""
        o = self.options
        torch.manual_seed(o.seed)
        run = evaluate(self.settings, self.policy, o.episodes, seed=o.seed, batch=o.batch, record=o.record,
                       progress=progress)
        report = write_outputs(run, self.out, self.extra)
        return report, self.out, summary_lines(report)


def run_eval(options: EvalOptions, progress: Callable[[int, int], None] | None = None) -> tuple[dict, Path, list[str]]:
    return Evaluation(options).run(progress)
