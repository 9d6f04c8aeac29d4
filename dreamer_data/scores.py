"""Crafter's evaluation numbers (Hafner 2021, "Benchmarking the Spectrum of Agent Capabilities")."""

from __future__ import annotations

import numpy as np


def episode_unlocks(achievements: np.ndarray, episode_ends: np.ndarray) -> np.ndarray:
    """(N, K) per-row achievement increments + exclusive episode ends → (E, K) bool: unlocked in episode."""
    starts = np.concatenate([[0], episode_ends[:-1]]).astype(np.int64)
    return np.logical_or.reduceat(achievements.astype(bool), starts, axis=0)


def success_rates(unlocked: np.ndarray) -> np.ndarray:
    """(E, K) bool → (K,) success rate in percent: share of episodes that unlocked each achievement."""
    return 100.0 * unlocked.mean(axis=0)


def crafter_score(rates_percent: np.ndarray) -> float:
    """Geometric mean of success rates in percent: exp(mean(ln(1 + s_i))) - 1."""
    return float(np.exp(np.mean(np.log1p(rates_percent))) - 1.0)
