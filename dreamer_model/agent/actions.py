"""The action space a policy acts in, read from a store manifest's ``actions`` entry.

Components by kind (docs/FORMAT.md): ``categorical`` (one class of ``size``), ``binary`` (``size``
independent buttons), ``continuous`` (``size`` reals, bounded by the manifest's per-dimension
statistics min/max when present, else [−1, 1]). Minecraft stores ``camera_deg`` beside the 121-class
``camera``: the lossless degrees are a recording of the same thing, so the policy acts in the
discretised camera (paper: 23 Bernoulli buttons + a 121-way categorical) and skips them. The manifest entry is
read once, by ``dynamics.actions.read_action_spec``, for the world model's inputs and the policy's outputs alike.

A component ``name`` is read from the store field ``actions/name``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from dreamer_data.store.fields import action_field

from ..dynamics.actions import read_action_spec
from ..errors import ModelError


@dataclass(frozen=True)
class ActionComponent:
    name: str
    kind: str
    size: int
    low: tuple[float, ...] = ()
    high: tuple[float, ...] = ()

    @property
    def field(self) -> str:
        return action_field(self.name)

    @property
    def params(self) -> int:
        """Head outputs per prediction: logits per class / button, two Beta concentrations per dim."""
        return self.size * 2 if self.kind == "continuous" else self.size


@dataclass(frozen=True)
class ActionSpace:
    components: tuple[ActionComponent, ...]

    @classmethod
    def from_manifest(cls, actions: Mapping | None, source: str) -> "ActionSpace":
        if not actions:
            raise ModelError(f"{source}: the store has no actions (manifest 'actions' is empty); a policy needs them")
        parts = []
        for spec in read_action_spec(actions, source):
            low = high = ()
            if spec.kind == "continuous":
                low = tuple(float(v) for v in spec.stats.get("min", [-1.0] * spec.size))
                high = tuple(float(v) for v in spec.stats.get("max", [1.0] * spec.size))
                high = tuple(h if h > l else l + 1e-3 for l, h in zip(low, high))
            parts.append(ActionComponent(spec.name, spec.kind, spec.size, low, high))
        return cls(tuple(parts))

    def to_dict(self) -> list[dict]:
        return [{"name": c.name, "kind": c.kind, "size": c.size, "low": list(c.low), "high": list(c.high)}
                for c in self.components]

    @classmethod
    def from_dict(cls, data: list[dict]) -> "ActionSpace":
        return cls(tuple(ActionComponent(d["name"], d["kind"], int(d["size"]), tuple(d["low"]), tuple(d["high"]))
                         for d in data))

    @property
    def fields(self) -> list[str]:
        return [c.field for c in self.components]

    @property
    def is_single_categorical(self) -> bool:
        return len(self.components) == 1 and self.components[0].kind == "categorical"
