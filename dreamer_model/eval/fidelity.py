"""One entry point for object fidelity, whatever ground truth the store holds.

MinAtar stores hold the lossless grid (scored cell by cell, ``objects.py``), Crafter stores the view's
tile ids and the inventory (scored tile by tile, ``tiles.py``). A trainer, the rollout report or a
benchmark asks ``object_scorer`` for a scorer, loads ``scorer.truth_fields`` beside the frames it
draws, and calls ``scorer.add(frames, truth)``; stores with neither get None (nothing to claim).
"""

from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np

from dreamer_data.store.reader import StoreReader

from .objects import GRID_FIELD, CellCounts
from .tiles import INVENTORY_FIELD, SEMANTIC_FIELD, TileCounts, TileReader

FIT_ROWS = 4096  # real Crafter frames the tile reader learns from: measured enough for 200+ examples per common class


class ObjectScorer(Protocol):
    truth_fields: tuple[str, ...]  # store fields the scorer reads the truth from

    def add(self, frames: np.ndarray, truth: dict[str, np.ndarray]) -> None:
        """Score drawn ``frames`` (N, H, W, 3), 0-255, against ``truth[field]`` (N, ...) of the same rows."""

    def rates(self) -> dict[str, dict[str, float]]: ...

    def flat(self, prefix: str = "") -> dict[str, float]: ...

    def fresh(self) -> "ObjectScorer":
        """An empty scorer reading the truth the same way (no refit): one per evaluation."""


class GridScorer:
    """MinAtar: ``CellCounts`` against ``obs_grid``."""

    truth_fields = (GRID_FIELD,)

    def __init__(self, cells: CellCounts):
        self.cells = cells

    def add(self, frames: np.ndarray, truth: dict[str, np.ndarray]) -> None:
        self.cells.add(frames, truth[GRID_FIELD])

    def rates(self) -> dict[str, dict[str, float]]:
        return self.cells.rates()

    def flat(self, prefix: str = "") -> dict[str, float]:
        return self.cells.flat(prefix)

    def fresh(self) -> "GridScorer":
        return GridScorer(CellCounts(self.cells.channels, self.cells.colours, self.cells.on_top))


class TileScorer:
    """Crafter: ``TileCounts`` against ``semantic`` and ``inventory``, read by a reader fitted on real frames."""

    truth_fields = (SEMANTIC_FIELD, INVENTORY_FIELD)

    def __init__(self, reader: TileReader):
        self.counts = TileCounts(reader)

    def add(self, frames: np.ndarray, truth: dict[str, np.ndarray]) -> None:
        self.counts.add(frames, truth[SEMANTIC_FIELD], truth[INVENTORY_FIELD])

    def rates(self) -> dict[str, dict[str, float]]:
        return self.counts.rates()

    def flat(self, prefix: str = "") -> dict[str, float]:
        return self.counts.flat(prefix)

    def fresh(self) -> "TileScorer":
        return TileScorer(self.counts.reader)


def truth_fields(manifest: dict) -> tuple[str, ...]:
    """The store fields ``object_scorer`` would read the truth from (empty: the store holds none)."""
    observation, fields = manifest.get("observation", {}), manifest.get("fields", {})
    if CellCounts.for_observation(observation) is not None:
        return GridScorer.truth_fields
    if observation.get("semantic_classes") and all(name in fields for name in TileScorer.truth_fields):
        return TileScorer.truth_fields
    return ()


def object_scorer(store: str | StoreReader, fit_episodes: Sequence[str] | None = None) -> ObjectScorer | None:
    """A fresh scorer for ``store``'s ground truth, or None when it holds none.

    Crafter's tile reader is fitted on real frames of ``fit_episodes`` (ids; default all): pass the
    training episodes so held-out episodes are scored by a reader that never saw them. Fitting reads
    up to ``FIT_ROWS`` rows spread evenly over those episodes; the same store and episodes always give
    the same reader."""
    reader = store if isinstance(store, StoreReader) else StoreReader(store)
    kind = truth_fields(reader.manifest)
    if kind == GridScorer.truth_fields:
        return GridScorer(CellCounts.for_observation(reader.manifest["observation"]))
    if kind == TileScorer.truth_fields:
        classes = list(reader.manifest["observation"]["semantic_classes"])
        return TileScorer(_fit_tiles(reader, classes, fit_episodes))
    return None


def _fit_tiles(reader: StoreReader, classes: list[str], fit_episodes: Sequence[str] | None) -> TileReader:
    wanted = set(fit_episodes) if fit_episodes is not None else None
    episodes = [e for e in reader.episodes if wanted is None or e["id"] in wanted]
    rows = np.concatenate([np.arange(e["start"], e["end"]) for e in episodes]) if episodes else np.zeros(0, int)
    if len(rows) > FIT_ROWS:
        rows = rows[np.linspace(0, len(rows) - 1, FIT_ROWS).round().astype(int)]
    if not len(rows):
        raise ValueError(f"{reader.location.root}: no episodes to fit the tile reader on")
    arrays = {name: reader.array(name).get_orthogonal_selection((rows,))
              for name in ("frames", SEMANTIC_FIELD, INVENTORY_FIELD)}
    return TileReader.fit(arrays["frames"], arrays[SEMANTIC_FIELD], arrays[INVENTORY_FIELD], classes)
