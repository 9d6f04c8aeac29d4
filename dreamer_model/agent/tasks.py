"""Tasks (``--task``): which reward the agent's heads learn and its policy maximises, read from store rows.

``reward`` is the store's ``rewards`` field (the standard Crafter reward, the MinAtar game score);
``achievement:NAME`` (Crafter) is 1 on the rows whose action unlocked NAME, from the stored achievement flags.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch

from dreamer_data.store.fields import REWARDS

from ..errors import ModelError

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
            if REWARDS not in fields:
                raise ModelError(f"{store}: task 'reward' needs a rewards field; the store has none")
            tasks.append(Task(name, REWARDS))
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
