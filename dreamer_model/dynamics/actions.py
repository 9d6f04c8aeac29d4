"""Action inputs of the dynamics model: which store fields, the shift to "the action that led here",
and one action token per time step.

A store's manifest describes its actions (``manifest["actions"]``: name → kind, size); row t of
``actions/<name>`` is the action taken *after* seeing frame t (docs/FORMAT.md). The world model
predicts frame t from the past and the action that led to it, a_{t−1}:

    action_in[t] = a[t − 1],   has_action_in[t] = has_action[t − 1] ∧ ¬is_first[t],   has_action_in[0] = 0

so the first frame of a window (and of an episode) gets the learned "no action" embedding, as do
frames whose previous action is unlabeled (``has_action`` = 0: most video in the paper has none).

The action token (one per step) sums one embedding per action field (paper §3.2: keyboard and mouse
embedded and summed):

* ``categorical`` (Crafter / MinAtar ``discrete``, Minecraft ``camera`` 121 classes): a lookup table;
* ``binary`` (Minecraft's 23 ``buttons``): a linear map of the 0/1 vector = the sum of one learned
  vector per pressed button;
* ``continuous`` (LeRobot): a linear map of the action standardised with the manifest's mean / std;

plus a learned "an action is present" vector; where no action is known the token is the learned
null embedding instead.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Mapping

import torch
from torch import nn

from dreamer_data.store.fields import HAS_ACTION, IS_FIRST, action_field

from ..errors import ModelError

KINDS = ("categorical", "binary", "continuous")
# A field that only restates another at higher precision; models read the twin (paper: 121 classes).
DERIVED = {"camera_deg": "camera"}


@dataclass(frozen=True)
class ActionSpec:
    """One component of a store manifest's ``actions`` entry (docs/FORMAT.md), as every model reads it."""

    name: str
    kind: str
    size: int
    stats: Mapping = field(default_factory=dict, compare=False)  # per-dimension min / max / mean / std

    @property
    def store_field(self) -> str:
        return action_field(self.name)


def read_action_spec(manifest_actions: Mapping | None, source: str = "store") -> list[ActionSpec]:
    """The action components of a manifest's ``actions`` entry, in its order, derived twins skipped, checked."""
    spec = dict(manifest_actions or {})
    components = []
    for name, entry in spec.items():
        if name in DERIVED and DERIVED[name] in spec:
            continue
        kind, size = entry.get("kind"), entry.get("size")
        if kind not in KINDS or not isinstance(size, int) or size < 1:
            raise ModelError(f"{source}: manifest action {name!r} has kind {kind!r} and size {size!r}; the "
                             f"models read kinds {', '.join(KINDS)} with a positive size")
        components.append(ActionSpec(name, kind, size, entry.get("stats") or {}))
    return components


@dataclass(frozen=True)
class ActionField:
    """One action array of a store: ``actions/<name>`` (N,) or (N, size)."""

    name: str
    kind: str
    size: int
    mean: tuple[float, ...] | None = None  # continuous only: standardisation
    std: tuple[float, ...] | None = None

    @property
    def store_field(self) -> str:
        return action_field(self.name)


def action_fields(manifest_actions: Mapping | None, source: str = "store") -> list[ActionField]:
    """The action fields the dynamics model reads, from a manifest's ``actions`` entry (sorted by name)."""
    fields = []
    for spec in sorted(read_action_spec(manifest_actions, source), key=lambda s: s.name):
        mean = std = None
        if spec.kind == "continuous" and spec.stats.get("mean") is not None and spec.stats.get("std") is not None:
            mean = tuple(float(v) for v in spec.stats["mean"])
            std = tuple(max(float(v), 1e-6) for v in spec.stats["std"])
        fields.append(ActionField(spec.name, spec.kind, spec.size, mean, std))
    return fields


def fields_to_dicts(fields: list[ActionField]) -> list[dict]:
    return [asdict(f) for f in fields]


def fields_from_dicts(items: list[dict]) -> list[ActionField]:
    return [ActionField(d["name"], d["kind"], int(d["size"]),
                        tuple(d["mean"]) if d.get("mean") is not None else None,
                        tuple(d["std"]) if d.get("std") is not None else None) for d in items]


def shift_actions(window: Mapping[str, torch.Tensor], fields: list[ActionField]
                  ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Rows of a window (B, T, …) → (action_in {name: (B, T, …)}, has_action_in (B, T) bool): the action
    that led to each frame (see the module docstring). Missing ``has_action`` means all rows have one."""
    some = next(iter(window.values()))
    b, t = some.shape[:2]
    device = some.device
    has = window[HAS_ACTION].to(device).bool() if HAS_ACTION in window else torch.ones(b, t, dtype=torch.bool,
                                                                                        device=device)
    is_first = window[IS_FIRST].to(device).bool() if IS_FIRST in window else torch.zeros(b, t, dtype=torch.bool,
                                                                                           device=device)
    has_in = torch.cat((torch.zeros(b, 1, dtype=torch.bool, device=device), has[:, :-1]), dim=1) & ~is_first
    action_in = {}
    for f in fields:
        rows = window[f.store_field]  # (B, T) or (B, T, size)
        action_in[f.name] = torch.cat((torch.zeros_like(rows[:, :1]), rows[:, :-1]), dim=1)
    return action_in, has_in


class ActionEmbedding(nn.Module):
    """{name: (B, T, …)} + has_action (B, T) → one action token (B, T, 1, D) per step."""

    def __init__(self, fields: list[ActionField], dim: int):
        super().__init__()
        self.fields = list(fields)
        self.embed = nn.ModuleDict()
        for f in self.fields:
            if f.kind == "categorical":
                self.embed[f.name] = nn.Embedding(f.size, dim)
                nn.init.normal_(self.embed[f.name].weight, std=0.02)
            else:
                self.embed[f.name] = nn.Linear(f.size, dim, bias=False)
            if f.kind == "continuous":
                mean = torch.tensor(f.mean if f.mean is not None else [0.0] * f.size)
                std = torch.tensor(f.std if f.std is not None else [1.0] * f.size)
                self.register_buffer(f"{f.name}_mean", mean, persistent=False)
                self.register_buffer(f"{f.name}_std", std, persistent=False)
        self.present = nn.Parameter(torch.randn(dim) * 0.02)  # "an action is known"
        self.null = nn.Parameter(torch.randn(dim) * 0.02)  # no action: unlabeled video, episode start

    def forward(self, action_in: Mapping[str, torch.Tensor], has_action_in: torch.Tensor) -> torch.Tensor:
        has = has_action_in.bool()  # (B, T)
        token = self.present.expand(*has.shape, -1)  # (B, T, D)
        for f in self.fields:
            if f.name not in action_in:
                raise ModelError(f"dynamics: action input {f.name!r} missing (model reads "
                                 f"{', '.join(x.name for x in self.fields)})")
            value = action_in[f.name]
            if f.kind == "categorical":
                index = torch.where(has, value.long(), 0)  # (B, T)
                if bool(((index < 0) | (index >= f.size)).any()):
                    bad = index[(index < 0) | (index >= f.size)][0].item()
                    raise ModelError(f"dynamics: action {f.name!r} holds class {bad}, outside [0, {f.size})")
                token = token + self.embed[f.name](index)
            else:
                vector = value.to(token.dtype).reshape(*has.shape, f.size)  # (B, T, size)
                if f.kind == "continuous":
                    vector = (vector - getattr(self, f"{f.name}_mean")) / getattr(self, f"{f.name}_std")
                vector = torch.where(has[..., None], vector, 0.0)
                token = token + self.embed[f.name](vector)
        token = torch.where(has[..., None], token, self.null.to(token.dtype))
        return token[:, :, None]  # (B, T, 1, D)
