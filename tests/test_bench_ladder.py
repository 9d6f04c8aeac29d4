"""The ladder's history rung learns from what it plays with: each row's last k frames of its own episode, newest
first, zeros before the episode's start; and every MLP rung trains on phase 2's training episodes only."""

from __future__ import annotations

import numpy as np

from benchmarks.bench_ladder import recent_rows, training_rows

EPISODES = [{"id": "episodes/000000", "start": 0, "end": 3}, {"id": "episodes/000001", "start": 3, "end": 7}]


def test_recent_rows_stack_each_episodes_own_past_newest_first():
    x = np.arange(1, 15, dtype=np.float32).reshape(7, 2)  # row t holds (2t + 1, 2t + 2)
    stacked = recent_rows(x, EPISODES, 3)
    assert stacked.shape == (7, 6)
    np.testing.assert_array_equal(stacked[0], [1, 2, 0, 0, 0, 0])  # an episode's first row: no past
    np.testing.assert_array_equal(stacked[2], [5, 6, 3, 4, 1, 2])
    np.testing.assert_array_equal(stacked[3], [7, 8, 0, 0, 0, 0])  # the next episode does not see the last one
    np.testing.assert_array_equal(stacked[6], [13, 14, 11, 12, 9, 10])


def test_training_rows_leave_out_phase_twos_heldout_episodes_and_rows_without_an_action():
    has_action = np.array([1, 1, 0, 1, 1, 1, 0], bool)
    rows = training_rows({"episodes": EPISODES}, has_action, ["episodes/000001"])
    np.testing.assert_array_equal(rows, [1, 1, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(training_rows({"episodes": EPISODES}, has_action, []), has_action)
