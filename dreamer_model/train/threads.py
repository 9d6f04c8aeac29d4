"""``train.threads: -1``: choose torch's intra-op thread count by timing the run's own training steps, and choose
again when the machine changes.

Why: no fixed count is right for a small model on a small CPU. On the 2-core machines the project is measured on,
the quickstart's stages step 1.2-1.6x faster on two threads than on one while the machine is idle, and 2.8-12x
slower once another process holds the second core (libgomp's threads spin-wait for a descheduled partner;
benchmarks/results/precision.md). A laptop's load changes during a run, so the choice is timed, not guessed.

The probe is ordinary training: every probed step trains, so a probe costs only the difference between the counts
it tries. Each candidate (1, 2, 4, … up to the cores this process may use) runs one untimed step (a new OpenMP
team's first use) and ``TIMED`` timed ones; a candidate more than ``ABANDON`` times slower than the best so far
stops early. The fastest median wins. A new probe starts when steps at the chosen count get ``SLOWDOWN`` times
slower than the probe measured (another job took a core), and otherwise once the time since the last probe is
``1 / PROBE_SHARE`` times what that probe cost (the machine may have become idle), so probing stays a small share
of the run however slow a bad candidate is.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Callable, TypeVar

import torch

AUTO = -1  # the train.threads value that asks for this chooser
TIMED = 3  # timed steps per candidate and probe
ABANDON = 3.0  # a candidate this many times slower than the best so far is not timed further
SLOWDOWN = 1.5  # the chosen count's recent steps this many times slower than probed: probe again
PROBE_SHARE = 0.02  # probing (its extra cost over the chosen count) at most this share of the time between probes
RECENT = 8  # steps in the running median compared with the probe
T = TypeVar("T")


def usable_cores() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def candidate_counts(cores: int) -> list[int]:
    """1, 2, 4, … up to ``cores``, and ``cores`` itself."""
    counts, n = [], 1
    while n < cores:
        counts.append(n)
        n *= 2
    return counts + [cores]


class ThreadChooser:
    """Sets the thread count before each training step (``before_step``) from the step times it is told
    (``after_step``); ``timed`` does both around one step. ``threads`` is the count the last step ran with."""

    def __init__(self, cores: int | None = None, set_threads: Callable[[int], None] = torch.set_num_threads):
        self.candidates = candidate_counts(cores or usable_cores())
        self.set_threads = set_threads
        self.threads: int | None = None
        self.chosen: int | None = None if len(self.candidates) > 1 else self.candidates[0]
        self.baseline = 0.0  # the chosen count's median step seconds in the last probe
        self.recent: list[float] = []
        self.queue: list[tuple[int, bool]] = []  # (threads, timed) of the probe's remaining steps
        self.samples: dict[int, list[float]] = {}
        self.probe_seconds = 0.0  # wall time the current probe has taken
        self.steady_seconds = 0.0  # wall time at the chosen count since the last probe
        self.wait_seconds = 0.0  # steady time to spend before the next scheduled probe
        self.probes = 0
        if self.chosen is None:
            self._start_probe()
        else:  # one core: nothing to choose
            self.wait_seconds = float("inf")

    def _start_probe(self) -> None:
        order = self.candidates if self.probes % 2 == 0 else self.candidates[::-1]
        if self.chosen in order:  # start where we are: no switch for the probe's first steps
            order = [self.chosen] + [n for n in order if n != self.chosen]
        self.queue = [(n, timed) for n in order for timed in (False, *([True] * TIMED))]
        self.samples, self.probe_seconds, self.recent = {}, 0.0, []
        self.probes += 1

    def timed(self, step: Callable[[], T]) -> T:
        """Run one training step at the count chosen for it, and learn from how long it took."""
        self.before_step()
        began = time.perf_counter()
        result = step()
        self.after_step(time.perf_counter() - began)
        return result

    def before_step(self) -> None:
        threads = self.queue[0][0] if self.queue else self.chosen
        if threads != self.threads:
            self.set_threads(threads)
        self.threads = threads

    def after_step(self, seconds: float) -> None:
        if self.queue:
            self._probe_step(seconds)
        else:
            self._steady_step(seconds)

    def _probe_step(self, seconds: float) -> None:
        threads, timed = self.queue.pop(0)
        self.probe_seconds += seconds
        if timed:
            self.samples.setdefault(threads, []).append(seconds)
            best = min(statistics.median(s) for s in self.samples.values())
            if seconds > ABANDON * best:
                self.queue = [(n, t) for n, t in self.queue if n != threads]
        if not self.queue:
            self._choose()

    def _choose(self) -> None:
        medians = {n: statistics.median(s) for n, s in self.samples.items()}
        self.chosen = min(medians, key=medians.__getitem__)
        self.baseline = medians[self.chosen]
        steps = sum(1 + len(s) for s in self.samples.values())
        extra = max(self.probe_seconds - steps * self.baseline, self.baseline)
        self.wait_seconds = extra / PROBE_SHARE
        self.steady_seconds = 0.0

    def _steady_step(self, seconds: float) -> None:
        self.steady_seconds += seconds
        self.recent = (self.recent + [seconds])[-RECENT:]
        slowed = len(self.recent) == RECENT and statistics.median(self.recent) > SLOWDOWN * self.baseline
        if slowed or self.steady_seconds >= self.wait_seconds:
            self._start_probe()
