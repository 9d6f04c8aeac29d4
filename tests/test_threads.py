"""train.threads = -1: the thread chooser picks the faster count, leaves it when the machine gets busy, comes back
when it is idle again, and keeps probing a small share of the run. Step times come from a model of a 2-core
machine measured on this project's (benchmarks/results/precision.md: two threads 1.4x faster idle, ~3x slower
with the second core taken); the real trainer's use of it is tested in test_phase1_train.py."""

from __future__ import annotations

import pytest

from dreamer_model.configs import TrainConfig, validate_train
from dreamer_model.errors import ModelError
from dreamer_model.train.threads import PROBE_SHARE, ThreadChooser, candidate_counts

ONE_THREAD_STEP = 0.10


def step_seconds(threads: int, busy: bool) -> float:
    if threads == 1:
        return ONE_THREAD_STEP * (1.05 if busy else 1.0)
    return ONE_THREAD_STEP / 1.4 * (3.0 if busy else 1.0)


class Machine:
    """Runs steps through a chooser; records the counts it set and the time each step took."""

    def __init__(self, cores: int = 2):
        self.set_calls: list[int] = []
        self.chooser = ThreadChooser(cores=cores, set_threads=self.set_calls.append)
        self.ran: list[tuple[int, float]] = []

    def run(self, steps: int, busy: bool) -> list[int]:
        counts = []
        for _ in range(steps):
            self.chooser.before_step()
            seconds = step_seconds(self.chooser.threads, busy)
            self.chooser.after_step(seconds)
            self.ran.append((self.chooser.threads, seconds))
            counts.append(self.chooser.threads)
        return counts


def test_candidates_are_powers_of_two_up_to_the_cores():
    assert candidate_counts(1) == [1]
    assert candidate_counts(2) == [1, 2]
    assert candidate_counts(6) == [1, 2, 4, 6]
    assert candidate_counts(8) == [1, 2, 4, 8]


def test_idle_then_busy_then_idle():
    machine = Machine()
    idle = machine.run(400, busy=False)
    assert idle[:4] == [1, 1, 1, 1] and idle[4:8] == [2, 2, 2, 2]  # the first probe: one untimed + 3 timed each
    assert sum(n == 2 for n in idle) / len(idle) > 0.9
    busy = machine.run(400, busy=True)
    assert busy[-300:].count(1) / 300 > 0.9  # it left two threads once they slowed down
    first_one = busy.index(1)
    assert first_one <= 8 + 8  # within the recent-steps window and one probe
    again = machine.run(2000, busy=False)
    assert again[-300:].count(2) / 300 > 0.9  # a scheduled probe found the idle machine
    assert machine.set_calls[0] == 1 and all(a != b for a, b in zip(machine.set_calls, machine.set_calls[1:]))


def test_probing_costs_a_small_share_of_a_steady_run():
    machine = Machine()
    machine.run(3000, busy=False)
    spent = sum(seconds for _, seconds in machine.ran)
    best = len(machine.ran) * step_seconds(2, busy=False)
    assert spent / best - 1 < 2 * PROBE_SHARE + 0.01  # the first probe plus the scheduled ones


def test_one_core_never_probes():
    machine = Machine(cores=1)
    assert machine.run(500, busy=False) == [1] * 500 and machine.set_calls == [1]


def test_a_slow_candidate_is_abandoned_early():
    calls = []
    chooser = ThreadChooser(cores=4, set_threads=calls.append)
    seen = []
    for _ in range(12):
        chooser.before_step()
        seen.append(chooser.threads)
        chooser.after_step({1: 0.1, 2: 0.08, 4: 1.0}[chooser.threads])
    assert seen[:8] == [1, 1, 1, 1, 2, 2, 2, 2] and seen[8:10] == [4, 4]  # 4 threads: untimed + one timed step
    assert seen[10:] == [2, 2] and chooser.chosen == 2


def test_threads_below_minus_one_is_a_config_error():
    validate_train(TrainConfig(threads=-1), "test")
    with pytest.raises(ModelError, match="train.threads must be -1"):
        validate_train(TrainConfig(threads=-2), "test")
