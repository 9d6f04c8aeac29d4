"""Which episodes and windows a trainer sees: a stable train/validation split by episode id, and
a seeded, resumable sampler that can weight episodes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Collection, Iterator, Mapping, Sequence, Union

import numpy as np
from torch.utils.data import Sampler

from ..errors import DreamerDataError
from .context import resolve_rank

if TYPE_CHECKING:
    from .window_dataset import WindowDataset

EpisodeSelection = Union[Collection[str], Callable[[str], bool], None]
SAMPLE_BLOCK = 1024  # samples drawn per seeded block; sample n depends only on (seed, n)


@dataclass(frozen=True)
class EpisodeSplit:
    """Train/validation membership from a hash of the episode id, never its position.

    Adding, removing or reordering episodes never moves an existing episode to the other side,
    and every run on every machine agrees. Use ``episodes=EpisodeSplit(0.05).train`` on a dataset.
    """

    val_fraction: float = 0.05
    salt: str = ""

    def __post_init__(self) -> None:
        if not 0.0 <= self.val_fraction <= 1.0:
            raise DreamerDataError(f"val_fraction must be in [0, 1], got {self.val_fraction}")

    def score(self, episode_id: str) -> float:
        digest = hashlib.sha256(f"{self.salt}\0{episode_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    def val(self, episode_id: str) -> bool:
        return self.score(episode_id) < self.val_fraction

    def train(self, episode_id: str) -> bool:
        return not self.val(episode_id)


def select_episodes(store: str, ids: Sequence[str], which: EpisodeSelection) -> np.ndarray:
    """Boolean mask over ``ids``: all, one id or those listed (each must exist), or those a predicate accepts."""
    if which is None:
        return np.ones(len(ids), dtype=bool)
    if callable(which):
        return np.array([bool(which(episode_id)) for episode_id in ids], dtype=bool)
    wanted = {which} if isinstance(which, str) else set(which)
    unknown = wanted.difference(ids)
    if unknown:
        raise DreamerDataError(f"{store}: no episode {sorted(unknown)[0]!r} in this store "
                               f"({len(unknown)} requested ids unknown)")
    return np.array([episode_id in wanted for episode_id in ids], dtype=bool)


class WindowSampler(Sampler[int]):
    """Window indices of a ``WindowDataset``, drawn with replacement, seeded and resumable.

    The n-th sample of the global stream depends only on (seed, n): a run resumed at step s
    passes ``start = s * batch_size`` (the per-rank batch) and gets the windows the original
    run would have seen. Rank r of w takes global samples r, r + w, r + 2w, … so ranks never
    draw the same sample slot. ``num_samples`` (per rank, counted from 0) bounds the stream;
    without it the sampler never ends. A window's probability is proportional to its
    episode's weight (default 1.0, which is uniform over windows); weight 0 leaves an episode
    out. A window that crosses episodes belongs to the episode it starts in.

    ``start_share`` of the draws instead take an episode's first window (the episode drawn in proportion
    to its weight). Uniform windows hold an episode's opening once per episode (one window in ~250 on
    a quickstart store), yet an agent acts there first, with an empty context, every episode it plays.
    """

    def __init__(self, dataset: "WindowDataset", *, seed: int = 0, episode_weights: Mapping[str, float] | None = None,
                 start: int = 0, num_samples: int | None = None, rank: int | None = None,
                 world_size: int | None = None, start_share: float = 0.0):
        index = dataset.index
        ids = dataset.episode_ids
        weights = np.ones(len(ids), dtype=np.float64)
        if episode_weights:
            position = {episode_id: i for i, episode_id in enumerate(ids)}
            for episode_id, weight in episode_weights.items():
                if episode_id not in position:
                    raise DreamerDataError(f"{dataset.store}: episode_weights names {episode_id!r}, "
                                           "which is not in this store")
                if not np.isfinite(weight) or weight < 0:
                    raise DreamerDataError(f"episode weight for {episode_id!r} must be finite and >= 0, "
                                           f"got {weight}")
                weights[position[episode_id]] = weight
        run_mass = weights[index.run_episode] * index.run_count
        if run_mass.sum() <= 0:
            raise DreamerDataError(f"{dataset.store}: every window has weight 0")
        self.cumulative = np.cumsum(run_mass)
        if not 0.0 <= start_share <= 1.0:
            raise DreamerDataError(f"start_share must be in [0, 1], got {start_share}")
        self.start_share = float(start_share)
        self.start_cumulative = np.cumsum(weights[index.run_episode] * (index.run_count > 0))
        self.run_first_index = index.run_first_index
        self.run_count = index.run_count
        if seed < 0:
            raise DreamerDataError(f"seed must be >= 0, got {seed}")
        self.seed = int(seed)
        self.start = int(start)
        self.num_samples = num_samples
        self.rank, self.world_size = resolve_rank(rank, world_size)

    def _block(self, block: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, block])
        u = rng.random(SAMPLE_BLOCK) * self.cumulative[-1]
        run = np.minimum(np.searchsorted(self.cumulative, u, side="right"), len(self.cumulative) - 1)
        offset = np.floor(rng.random(SAMPLE_BLOCK) * self.run_count[run]).astype(np.int64)
        if self.start_share > 0:  # drawn after the uniform draws, which stay what they were without a share
            at_start = rng.random(SAMPLE_BLOCK) < self.start_share
            u_start = rng.random(SAMPLE_BLOCK) * self.start_cumulative[-1]
            start_run = np.minimum(np.searchsorted(self.start_cumulative, u_start, side="right"), len(self.cumulative) - 1)
            run, offset = np.where(at_start, start_run, run), np.where(at_start, 0, offset)
        return self.run_first_index[run] + offset

    def __iter__(self) -> Iterator[int]:
        position, drawn_block, drawn = self.start, -1, np.empty(0, dtype=np.int64)
        while self.num_samples is None or position < self.num_samples:
            global_n = position * self.world_size + self.rank
            if global_n // SAMPLE_BLOCK != drawn_block:
                drawn_block = global_n // SAMPLE_BLOCK
                drawn = self._block(drawn_block)
            yield int(drawn[global_n % SAMPLE_BLOCK])
            position += 1

    def __len__(self) -> int:
        if self.num_samples is None:
            raise TypeError("an unbounded WindowSampler has no length; pass num_samples")
        return max(0, self.num_samples - self.start)
