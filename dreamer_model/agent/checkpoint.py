"""What phases 2 and 3 take from a store and a phase-1 run, and what their checkpoints hold.

An agent checkpoint (kind ``agent``, ``phase`` 2 or 3) is self-contained for evaluation: the agent's
description and weights, the environment the data came from (``env``: kind, game, sticky actions,
time limit, frame size), and the tokenizer that made the store's latents (config + weights + hash),
because at evaluation the agent sees real frames through that same encoder.

Tasks (``--task``): ``reward`` is the store's ``rewards`` field (the standard Crafter reward, the
MinAtar game score); ``achievement:NAME`` (Crafter) is 1 on the rows whose action unlocked NAME, from
the stored achievement flags.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import torch

from dreamer_data.errors import DreamerDataError
from dreamer_data.store.manifest import load_manifest

from ..configs import tokenizer_run_from_dict
from ..errors import ModelError
from ..tokenizer import Tokenizer
from .model import Agent
from ..train.checkpoint import load_checkpoint

KIND = "agent"
REWARD_TASK = "reward"
ACHIEVEMENT_PREFIX = "achievement:"


@dataclass(frozen=True)
class Task:
    name: str
    field: str  # store field the reward comes from
    column: int | None = None  # achievements: which column

    def reward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(B, T) reward of each row's action under this task."""
        values = batch[self.field]
        if self.column is None:
            return values.float()
        return values[..., self.column].float().clamp(max=1.0)


def parse_tasks(names: list[str], manifest: Mapping, store: str) -> list[Task]:
    fields = manifest.get("fields", {})
    tasks = []
    for name in names or [REWARD_TASK]:
        if name == REWARD_TASK:
            if "rewards" not in fields:
                raise ModelError(f"{store}: task 'reward' needs a rewards field; the store has none")
            tasks.append(Task(name, "rewards"))
        elif name.startswith(ACHIEVEMENT_PREFIX):
            from dreamer_data.collect.crafter_env import ACHIEVEMENTS

            achievement = name[len(ACHIEVEMENT_PREFIX):]
            if "achievements" not in fields:
                raise ModelError(f"{store}: task {name!r} needs Crafter achievement flags; the store has none")
            if achievement not in ACHIEVEMENTS:
                raise ModelError(f"task {name!r}: unknown Crafter achievement (known: {', '.join(ACHIEVEMENTS)})")
            tasks.append(Task(name, "achievements", ACHIEVEMENTS.index(achievement)))
        else:
            raise ModelError(f"unknown task {name!r}: use 'reward' or 'achievement:NAME' (Crafter)")
    if len({t.name for t in tasks}) != len(tasks):
        raise ModelError(f"--task: each task once, got {names}")
    return tasks


def store_manifest(store: str) -> dict:
    try:
        return load_manifest(store)
    except DreamerDataError as error:
        raise ModelError(str(error)) from None


def require_latents(manifest: Mapping, store: str) -> dict:
    entry = manifest.get("latents")
    if "latents" not in manifest.get("fields", {}) or not entry:
        raise ModelError(f"{store}: store has no latents; run `dreamer-data tokenize {store} --ckpt TOKENIZER_RUN` "
                         f"first (phases 2 and 3 train on cached latents)")
    return entry


def env_settings(manifest: Mapping, store: str) -> dict:
    """The environment the store was recorded in (for evaluation), from its manifest."""
    source = manifest.get("source", {})
    kind = source.get("kind")
    observation = manifest.get("observation", {})
    size = [int(observation.get("height", 64)), int(observation.get("width", 64))]
    collect = (source.get("settings") or {}).get("collect") or {}
    if kind == "minatar":
        return {"env": "minatar", "game": observation.get("game") or collect.get("game"),
                "sticky_prob": float(collect.get("sticky_action_prob", 0.1)),
                "ramping": bool(collect.get("difficulty_ramping", True)),
                "max_steps": int(collect.get("max_steps") or 10000), "size": size,
                "palette": observation.get("palette", "cubehelix")}  # stores from before the palette key: cubehelix
    if kind == "crafter":
        return {"env": "crafter", "game": None, "sticky_prob": 0.0, "ramping": False,
                "max_steps": int(collect.get("max_steps") or 10000), "size": size}
    return {"env": kind, "game": None, "size": size}  # not playable here (e.g. VPT): eval refuses it


def tokenizer_record(latents: Mapping, store: str) -> dict:
    """The tokenizer that produced the store's latents: config, weights and hash (checked)."""
    path = ((latents.get("tokenizer") or {}).get("checkpoint"))
    if not path:
        raise ModelError(f"{store}: the manifest's latents entry names no tokenizer checkpoint")
    if not Path(path).exists():
        raise ModelError(f"{path}: tokenizer checkpoint that made {store}'s latents is missing (the agent "
                         f"needs it to see real frames at evaluation)")
    state = load_checkpoint(path, "tokenizer")
    if state.get("model_hash") != latents.get("checkpoint_hash"):
        raise ModelError(f"{path}: tokenizer weights (hash {state.get('model_hash')}) are not the ones that made "
                         f"{store}'s latents ({latents.get('checkpoint_hash')})")
    return {"config": state["config"], "model": state["model"], "model_hash": state["model_hash"], "path": path}


def build_tokenizer(record: Mapping) -> Tokenizer:
    run = tokenizer_run_from_dict(record["config"], "agent checkpoint")
    model = Tokenizer(run.tokenizer)
    model.load_state_dict(record["model"])
    return model.eval()


def load_agent_state(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """An agent checkpoint (phase 2 or 3) from a run directory or file, with a clear error otherwise."""
    return load_checkpoint(path, KIND, map_location)


def load_agent(path: str | Path, device: str | torch.device = "cpu") -> tuple[Agent, dict]:
    """A phase-2 or phase-3 agent (eval mode) and its checkpoint state."""
    state = load_agent_state(path)
    agent = Agent.from_description(state["agent"], state["path"])
    agent.load_state_dict(state["model"])
    return agent.to(device).eval(), state
