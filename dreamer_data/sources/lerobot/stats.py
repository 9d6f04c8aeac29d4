"""Exact per-dimension statistics of continuous actions, so a model can normalise them.

Exact means over every row, not sampled: the quantiles sort each dimension in full (the rows are
held as float32, A × 4 bytes per row), and sums run in float64.
"""

from __future__ import annotations

import numpy as np

QUANTILES = {"q01": 0.01, "q99": 0.99}


def action_statistics(blocks: list[np.ndarray], width: int) -> dict:
    """min / max / mean / std (population, ddof = 0) / q01 / q99 per dimension over all rows of ``blocks``.

    Quantiles use numpy's default linear interpolation between order statistics.
    """
    rows = np.concatenate(blocks) if blocks else np.zeros((0, width), np.float32)
    stats: dict = {"rows": int(len(rows))}
    if len(rows) == 0:
        return {**stats, **{key: None for key in ("min", "max", "mean", "std", *QUANTILES)}}
    summaries = {key: [] for key in ("min", "max", "mean", "std", *QUANTILES)}
    for d in range(width):  # one float64 column at a time bounds the extra memory
        column = rows[:, d].astype(np.float64)
        summaries["min"].append(float(column.min()))
        summaries["max"].append(float(column.max()))
        summaries["mean"].append(float(column.mean()))
        summaries["std"].append(float(column.std()))
        for key, q in QUANTILES.items():
            summaries[key].append(float(np.quantile(column, q)))
    return {**stats, **summaries}
