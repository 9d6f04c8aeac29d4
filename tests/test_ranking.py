"""The quickstart's imagination check: a pair of policies counts only where the real game separates it, and
imagination agrees when it orders that pair the same way."""

from __future__ import annotations

import pytest

from dreamer_model.eval.ranking import imagination_ranking, ranking_line


def report(returns: list[float]) -> dict:
    """The per-episode part of an evaluation report, on shared environment seeds."""
    return {"per_episode": [{"env_seed": 100 + i, "return": r} for i, r in enumerate(returns)]}


REPORTS = {"random": report([0, 1, 0, 1, 0, 0]),  # BC far above random; Dreamer ≈ BC
           "bc": report([5, 6, 5, 7, 6, 5]),
           "dreamer": report([6, 5, 5, 7, 6, 6])}


def imagined(random: float, bc: float, dreamer: float) -> dict[str, float]:
    return {"imagined_return_random": random, "imagined_return_prior": bc, "imagined_return_policy": dreamer}


def test_agrees_when_imagination_orders_every_separated_pair_as_the_game():
    ranking = imagination_ranking(imagined(0.1, 0.4, 0.3), REPORTS, z=2.0)
    by_pair = {tuple(p["pair"]): p for p in ranking["pairs"]}
    assert by_pair["bc", "random"]["separated"] and by_pair["bc", "random"]["agrees"]
    assert by_pair["dreamer", "random"]["separated"] and by_pair["dreamer", "random"]["agrees"]
    # the game does not separate Dreamer from BC (+1/6 ± 0.31), so imagination's −0.1 is not held against it
    assert not by_pair["dreamer", "bc"]["separated"] and by_pair["dreamer", "bc"]["agrees"] is None
    assert by_pair["dreamer", "bc"]["imagined"] == pytest.approx(-0.1)
    assert ranking["agrees"] is True
    assert ranking_line(ranking).startswith("Imagination check: imagination orders the policies as the game does")


def test_disagrees_when_imagination_prefers_random_play():
    ranking = imagination_ranking(imagined(0.5, 0.2, 0.3), REPORTS, z=2.0)
    assert ranking["agrees"] is False
    assert "does NOT order" in ranking_line(ranking) and "✗" in ranking_line(ranking)


def test_nothing_to_check_when_the_game_separates_no_pair():
    flat = {row: report([1, 0, 1, 0]) for row in ("random", "bc", "dreamer")}
    ranking = imagination_ranking(imagined(0.0, 1.0, 2.0), flat, z=2.0)
    assert ranking["agrees"] is None and not any(p["separated"] for p in ranking["pairs"])
    assert "not checked" in ranking_line(ranking)


def test_reports_of_other_seeds_are_refused():
    other = dict(REPORTS, bc={"per_episode": [{"env_seed": 7, "return": 1.0}] * 6})
    with pytest.raises(ValueError, match="bc vs random"):
        imagination_ranking(imagined(0.1, 0.4, 0.3), other, z=2.0)
