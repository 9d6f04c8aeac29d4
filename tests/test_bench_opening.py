"""bench_opening's tally: agreement per step of the episode, later steps pooled, and how many episodes got there."""

from __future__ import annotations

import math

from benchmarks.bench_opening import StepAgreement


def test_agreement_per_step_pools_the_later_steps():
    tally = StepAgreement(last=2)
    for step, agent, scripted in [(0, 1, 1), (0, 3, 1), (1, 0, 0), (1, 0, 0), (2, 1, 3), (5, 3, 3), (9, 0, 0)]:
        tally.add(step, agent, scripted)
    rows = tally.rows(episodes=2)
    assert [r[0] for r in rows] == ["0", "1", "2+"]
    assert [r[1] for r in rows] == [0.5, 1.0, 2 / 3]
    assert [r[2] for r in rows] == [2, 2, 3]
    assert rows[0][3] == 1.0 and rows[1][3] == 1.0 and math.isnan(rows[2][3])
