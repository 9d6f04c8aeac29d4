"""The action space a policy acts in, read from a store manifest's ``actions`` entry.

Components by kind (docs/FORMAT.md): ``categorical`` (one class of ``size``), ``binary`` (``size``
independent buttons), ``continuous`` (``size`` reals, bounded by the manifest's per-dimension
statistics min/max when present, else [−1, 1]). Minecraft stores ``camera_deg`` beside the 121-class
``camera``: the lossless degrees are a recording of the same thing, so the policy acts in the
discretised camera (paper: 23 Bernoulli buttons + a 121-way categorical) and skips them.

A component ``name`` is read from the store field ``actions/name``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch

from ..errors import ModelError

KINDS = ("categorical", "binary", "continuous")
REDUNDANT = {"camera_deg": "camera"}  # skipped when the component on the right exists


@dataclass(frozen=True)
class ActionComponent:
    name: str
    kind: str
    size: int
    low: tuple[float, ...] = ()
    high: tuple[float, ...] = ()

    @property
    def field(self) -> str:
        return f"actions/{self.name}"

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
        for name, spec in actions.items():
            if name in REDUNDANT and REDUNDANT[name] in actions:
                continue
            kind = spec.get("kind")
            if kind not in KINDS:
                raise ModelError(f"{source}: action {name!r} has kind {kind!r}; a policy supports {', '.join(KINDS)}")
            size = int(spec["size"])
            low = high = ()
            if kind == "continuous":
                stats = spec.get("stats") or {}
                low = tuple(float(v) for v in stats.get("min", [-1.0] * size))
                high = tuple(float(v) for v in stats.get("max", [1.0] * size))
                high = tuple(h if h > l else l + 1e-3 for l, h in zip(low, high))
            parts.append(ActionComponent(name, kind, size, low, high))
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

    def from_batch(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """{component: tensor} from a WindowDataset item / batch keyed by store field names."""
        return {c.name: batch[c.field] for c in self.components}

    @property
    def is_single_categorical(self) -> bool:
        return len(self.components) == 1 and self.components[0].kind == "categorical"
