"""benchmarks/bench_anchor.py: the anchor (lucidrains' dreamer4) stays out of the project's environment, the
benchmark refuses to run without it in one line, and its rounds are paired and interleaved."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from benchmarks.bench_anchor import paired_rounds

REPO = Path(__file__).resolve().parents[1]


def test_refuses_in_one_line_without_the_anchor():
    assert importlib.util.find_spec("dreamer4") is None, "dreamer4 must never be a dependency of this project"
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_anchor.py"), "--rounds", "1"],
                            capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "dreamer4 0.20.2 is not importable" in lines[0]
    assert "python3 -m venv /work/anchor-venv" in lines[0] and "dreamer4==0.20.2" in lines[0]
    assert result.stdout == ""


def test_rounds_alternate_the_order_and_pair_the_ratios():
    calls = []
    ours = lambda: calls.append("ours")  # noqa: E731
    theirs = lambda: calls.append("theirs")  # noqa: E731
    paired = paired_rounds(ours, theirs, rounds=4, warmup=1)
    assert calls == ["ours", "theirs",  # warm-up
                     "ours", "theirs", "theirs", "ours", "ours", "theirs", "theirs", "ours"]
    assert len(paired.ours) == len(paired.theirs) == len(paired.ours_cpu) == len(paired.theirs_cpu) == 4
    paired.ours, paired.theirs = [1.0, 2.0, 9.0, 3.0], [2.0, 2.0, 3.0, 1.0]  # ratios 0.5, 1, 3, 3
    assert paired.wall_ratio == 2.0  # the median of the per-round ratios, not the ratio of the medians
