"""Does imagination order the policies as the real game does? Phase 3 can only improve a policy where the
world model's imagined returns rank policies in the game's order (issue 20), so the quickstart checks it.

The three policies every quickstart plays in the real game are also scored in imagination by phase 3's
held-out evaluation (same contexts, same noise): uniform random, the phase-2 BC prior and the phase-3
policy. A pair counts only where the game separates it (paired difference over the same seeds beyond
``z`` standard errors); imagination agrees on it when its difference has the same sign.
"""

from __future__ import annotations

from typing import Mapping

from .report import paired_difference

# Each row's imagined return, as phase 3's held-out evaluation names it (agent/imagination.py).
IMAGINED = {"random": "imagined_return_random", "bc": "imagined_return_prior", "dreamer": "imagined_return_policy"}
PAIRS = (("bc", "random"), ("dreamer", "random"), ("dreamer", "bc"))


def imagination_ranking(imagined: Mapping[str, float], reports: Mapping[str, dict], z: float) -> dict:
    """Per pair (a, b): the game's paired difference a − b, imagination's difference, whether the game separates
    them and, if so, whether imagination orders them the same way. ``agrees``: every separated pair agrees
    (None when the game separates none)."""
    returns = {row: float(imagined[key]) for row, key in IMAGINED.items()}
    pairs = []
    for a, b in PAIRS:
        real = paired_difference(reports[a], reports[b], f"{a} vs {b}")
        imagined_difference = returns[a] - returns[b]
        separated = abs(real["mean"]) > z * real["stderr"]
        pairs.append({"pair": [a, b], "real": real, "imagined": imagined_difference, "separated": separated,
                      "agrees": ((real["mean"] > 0) == (imagined_difference > 0)) if separated else None})
    judged = [pair["agrees"] for pair in pairs if pair["separated"]]
    return {"imagined_returns": returns, "pairs": pairs, "agrees": all(judged) if judged else None}


def ranking_line(ranking: dict) -> str:
    """One line for the summary: the verdict, then each pair as the game and imagination see it."""
    verdict = {True: "imagination orders the policies as the game does",
               False: "imagination does NOT order the policies as the game does (phase 3 optimises the wrong thing)",
               None: "the game separates none of the policies, so imagination's order is not checked"}[ranking["agrees"]]
    parts = []
    for pair in ranking["pairs"]:
        a, b = pair["pair"]
        real = pair["real"]
        mark = "" if not pair["separated"] else (" ✓" if pair["agrees"] else " ✗")
        parts.append(f"{a} − {b}: game {real['mean']:+.2f} ± {real['stderr']:.2f}, imagined {pair['imagined']:+.3f}{mark}")
    return f"Imagination check: {verdict} ({'; '.join(parts)})."
