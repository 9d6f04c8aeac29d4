"""Token layout: what one time step holds and which tokens may read which. Every mask comes from here.

A time step is a fixed sequence of token groups (S tokens in all), e.g. for the tokenizer's encoder
``patch ×64 | latent ×16 | register ×4`` and for the dynamics model
``action | shortcut | register ×4 | latent ×16 | agent``. Each group says which groups it reads:

* ``reads=None``: every group that is not hidden (and itself);
* ``reads=("patch", "register")``: only those (itself is always included);
* ``hidden=True``: no other group may read it. Agent tokens are hidden: they read everything while
  nothing reads them, so adding them never changes the world model's outputs.

Spatial layers use ``space_mask()`` (S, S) within one step. Temporal layers let each token slot read
the same slot at this and earlier steps (``time_mask``), optionally only the last ``window`` steps;
so the whole stack is block-causal in time and hidden groups stay unread across time too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import torch


@dataclass(frozen=True)
class TokenGroup:
    """``count`` tokens of one kind per time step."""

    name: str
    count: int
    reads: tuple[str, ...] | None = None  # groups read within a step; None = all visible groups
    hidden: bool = False  # read by no other group (agent tokens)
    grid: tuple[int, int] | None = None  # (rows, cols) of image patches, for 2-D RoPE positions


class TokenLayout:
    """An ordered list of token groups: sizes, slices, masks, RoPE positions, packing."""

    def __init__(self, groups: Sequence[TokenGroup]):
        self.groups = tuple(groups)
        names = [g.name for g in self.groups]
        if len(set(names)) != len(names):
            raise ValueError(f"token layout: duplicate group names in {names}")
        self.slices: dict[str, slice] = {}
        start = 0
        for group in self.groups:
            if group.count < 1:
                raise ValueError(f"token layout: group {group.name!r} has {group.count} tokens")
            if group.grid is not None and group.grid[0] * group.grid[1] != group.count:
                raise ValueError(f"token layout: group {group.name!r} grid {group.grid} != {group.count} tokens")
            for other in group.reads or ():
                if other not in names:
                    raise ValueError(f"token layout: group {group.name!r} reads unknown group {other!r}")
                if other != group.name and self.group(other).hidden:
                    raise ValueError(f"token layout: group {group.name!r} may not read hidden group {other!r}")
            self.slices[group.name] = slice(start, start + group.count)
            start += group.count
        self.size = start  # S

    def group(self, name: str) -> TokenGroup:
        for group in self.groups:
            if group.name == name:
                return group
        raise KeyError(f"token layout has no group {name!r} (has: {', '.join(self.names)})")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(g.name for g in self.groups)

    def __contains__(self, name: str) -> bool:
        return name in self.slices

    def reads(self, name: str) -> tuple[str, ...]:
        """The groups that group ``name`` may attend to within a time step (layout order)."""
        group = self.group(name)
        if group.reads is None:
            return tuple(g.name for g in self.groups if not g.hidden or g.name == name)
        allowed = set(group.reads) | {name}
        return tuple(g.name for g in self.groups if g.name in allowed)

    def space_mask(self) -> torch.Tensor:
        """(S, S) bool: [query, key] True where the query token may read the key token (same step)."""
        mask = torch.zeros(self.size, self.size, dtype=torch.bool, device="cpu")
        for group in self.groups:
            for other in self.reads(group.name):
                mask[self.slices[group.name], self.slices[other]] = True
        return mask

    def space_positions(self) -> torch.Tensor:
        """(S, 2) 2-D RoPE positions: patches at (row, col); other tokens at (-1, k) on a virtual row
        above the image, k counting them in layout order so each has its own position."""
        positions = torch.zeros(self.size, 2, dtype=torch.long, device="cpu")
        k = 0
        for group in self.groups:
            where = self.slices[group.name]
            if group.grid is not None:
                rows, cols = group.grid
                r, c = torch.meshgrid(torch.arange(rows, device="cpu"), torch.arange(cols, device="cpu"), indexing="ij")
                positions[where] = torch.stack((r.reshape(-1), c.reshape(-1)), dim=1)
            else:
                positions[where, 0] = -1
                positions[where, 1] = torch.arange(k, k + group.count, device="cpu")
                k += group.count
        return positions

    def pack(self, parts: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """{group: (B, T, count, D)} → (B, T, S, D) in layout order."""
        missing, extra = set(self.names) - set(parts), set(parts) - set(self.names)
        if missing or extra:
            raise ValueError(f"token layout: missing groups {sorted(missing)}, unknown groups {sorted(extra)}")
        for group in self.groups:
            if parts[group.name].shape[2] != group.count:
                raise ValueError(f"token layout: group {group.name!r} expects {group.count} tokens per step, "
                                 f"got shape {tuple(parts[group.name].shape)}")
        return torch.cat([parts[name] for name in self.names], dim=2)

    def unpack(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, T, S, D) → {group: (B, T, count, D)}."""
        return {name: x[:, :, where] for name, where in self.slices.items()}

    def table(self) -> str:
        """The read rules as a text table (rows: query group, columns: key group, x: may read)."""
        width = max(len(n) for n in self.names) + 2
        lines = [" " * width + "".join(f"{n:>{width}}" for n in self.names)]
        for group in self.groups:
            reads = set(self.reads(group.name))
            cells = "".join(f"{'x' if n in reads else '.':>{width}}" for n in self.names)
            lines.append(f"{group.name:<{width}}{cells}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return "TokenLayout(" + " | ".join(f"{g.name}×{g.count}" for g in self.groups) + ")"


def time_mask(query_steps: torch.Tensor, key_steps: torch.Tensor, window: int | None) -> torch.Tensor:
    """(Tq, Tk) bool for temporal layers: a step reads itself and earlier steps, at most ``window``
    steps in all (None: unbounded). Block-causality in time lives in this one line."""
    lag = query_steps[:, None] - key_steps[None, :]  # (Tq, Tk)
    mask = lag >= 0
    if window is not None:
        mask &= lag < window
    return mask
