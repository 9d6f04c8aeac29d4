"""A toy world where actions matter, for the dynamics tests: a dot on a ring of 8 cells.

Action 0 keeps the dot in place, 1 moves it one cell left, 2 one cell right. A frame's latent is a
fixed random code of the dot's cell (S_z × D_z in (−1, 1), like the tokenizer's tanh bottleneck),
so a world model that ignores actions cannot predict the next frame. Rows follow the store
convention: row t holds frame t and the action taken after it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dreamer_data.store.fields import FieldSpec
from dreamer_data.store.location import StoreLocation
from dreamer_data.store.manifest import new_manifest
from dreamer_data.store.writer import StoreWriter

CELLS, S_Z, D_Z, N_ACTIONS = 8, 4, 8, 3
MOVES = np.array([0, -1, 1])


def codebook() -> np.ndarray:
    """(CELLS, S_z, D_z) latent code of each cell: a periodic bump centred on the cell, phase-shifted per
    token, in (−1, 1) like the tokenizer's tanh bottleneck (a moving dot moves its bump)."""
    cell, token, dim = np.meshgrid(np.arange(CELLS), np.arange(S_Z), np.arange(D_Z), indexing="ij")
    return (0.9 * np.cos(2 * np.pi * (dim - cell) / D_Z + token * np.pi / S_Z)).astype(np.float32)


def episode(length: int, rng: np.random.Generator, codes: np.ndarray) -> dict[str, np.ndarray]:
    actions = rng.integers(0, N_ACTIONS, length)
    cells = np.empty(length, dtype=np.int64)
    cells[0] = rng.integers(0, CELLS)
    for t in range(1, length):
        cells[t] = (cells[t - 1] + MOVES[actions[t - 1]]) % CELLS
    return {"latents": codes[cells], "actions/discrete": actions.astype(np.int64), "cells": cells,
            "has_action": np.ones(length, dtype=np.uint8)}


def batch(b: int, t: int, rng: np.random.Generator, codes: np.ndarray) -> dict[str, torch.Tensor]:
    """A batch of windows as a WindowDataset would deliver them (is_first: windows start mid-episode)."""
    eps = [episode(t, rng, codes) for _ in range(b)]
    out = {key: torch.from_numpy(np.stack([e[key] for e in eps])) for key in eps[0]}
    out["is_first"] = torch.zeros(b, t, dtype=torch.bool)
    return out


def nearest_cell(latents: torch.Tensor, codes: np.ndarray) -> torch.Tensor:
    """(…, S_z, D_z) → the cell whose code is nearest (…)."""
    code = torch.from_numpy(codes)  # (C, S, D)
    distance = ((latents[..., None, :, :] - code) ** 2).mean(dim=(-2, -1))  # (…, C)
    return distance.argmin(dim=-1)


class _Episode:
    def __init__(self, episode_id: str, rows: dict[str, np.ndarray]):
        self.rows, self.length = rows, len(next(iter(rows.values())))
        self.info = {"id": episode_id, "source_file": f"toy/{episode_id}", "checksums": {}, "notes": {}}

    def chunks(self, name: str):
        yield self.rows[name]

    def remove(self) -> None:
        pass


def write_toy_store(path: Path, episodes: int = 6, length: int = 40, seed: int = 0, latents: bool = True) -> str:
    """A store of dot episodes with latents (as ``dreamer-data tokenize`` leaves one) and discrete actions."""
    specs = [FieldSpec("frames", "uint8", (8, 8, 3), 64), FieldSpec("actions/discrete", "int64", (), 64),
             FieldSpec("has_action", "uint8", (), 64)]
    if latents:
        specs.append(FieldSpec("latents", "float16", (S_Z, D_Z), 64))
    fields = {spec.name: spec for spec in specs}
    manifest = new_manifest(source={"kind": "toy-dot"}, observation={"height": 8, "width": 8, "channels": 3},
                            actions={"discrete": {"kind": "categorical", "size": N_ACTIONS, "names": ["stay", "left", "right"]}},
                            fields=fields, rewards_present=False,
                            extra={"latents": {"field": "latents", "shape": [S_Z, D_Z], "dtype": "float16",
                                               "checkpoint_hash": "sha256:toy"} if latents else None})
    writer = StoreWriter(StoreLocation(str(path)), manifest)
    rng, codes = np.random.default_rng(seed), codebook()
    for i in range(episodes):
        rows = episode(length, rng, codes)
        frames = np.zeros((length, 8, 8, 3), dtype=np.uint8)
        frames[np.arange(length), 4, rows["cells"]] = 255
        data = {"frames": frames, "actions/discrete": rows["actions/discrete"], "has_action": rows["has_action"]}
        if latents:
            data["latents"] = rows["latents"].astype(np.float16)
        writer.commit(_Episode(f"ep{i:03d}", data))
    writer.flush()
    return str(path)
