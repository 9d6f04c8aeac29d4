"""A tiny MinAtar breakout pipeline built once per session through the real CLI, for the agent tests.

collect (noisy-scripted) → ingest at 32x32 → tokenizer (micro config) → tokenize → phase1 → phase2 →
phase3, each stage built on first use (``stage(tmp_path_factory, "phase2")`` builds everything up to
it). Sizes are the smallest that exercise every code path; one intra-op thread per process keeps the
shared CPU from thrashing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

MICRO = {"dim": 64, "depth": 2, "heads": 2, "kv_heads": 1, "head_dim": 32, "registers": 2, "time_every": 2}
CONFIGS = {
    "tokenizer.yaml": {"tokenizer": {"height": 32, "width": 32, "patch": 8, "latent_tokens": 8, "latent_dim": 16,
                                     "context": 4, "encoder": MICRO, "decoder": MICRO},
                       "train": {"batch": 4, "eval_every": 1000, "checkpoint_every": 1000, "eval_windows": 4}},
    "phase1.yaml": {"dynamics": {"context": 8, "transformer": {**MICRO, "depth": 4}},
                    "train": {"batch": 4, "eval_every": 1000, "checkpoint_every": 1000, "eval_windows": 4}},
    "phase2.yaml": {"agent": {"head_hidden": 32, "mtp": 3},
                    "train": {"batch": 4, "lr": 1e-2, "warmup": 1, "eval_every": 1000, "checkpoint_every": 1000,
                              "eval_windows": 8, "log_every": 1}},
    "phase3.yaml": {"agent": {"horizon": 4, "context": 4},
                    "train": {"batch": 4, "eval_every": 1000, "checkpoint_every": 1000, "eval_windows": 4,
                              "log_every": 1},
                    "value_warmup": 2},
}
STEPS = {"tokenizer": 12, "phase1": 6, "phase2": 40, "phase3": 5}
ORDER = ("collect", "ingest", "tokenizer", "tokenize", "phase1", "phase2", "phase3")
_BUILT: dict[str, Path] = {}


def cli(program: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``program ARGS`` as a user would (the venv's console script), one thread, plain output."""
    script = Path(sys.executable).parent / program
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run([str(script), *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)


def invoke(*args: str) -> tuple[int, list[str]]:
    """``dreamer-train ARGS`` in this process (typer's runner, no interpreter start-up): for error paths.
    Returns (exit code, non-empty stderr lines)."""
    from typer.testing import CliRunner

    from cli.train import app

    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, [line for line in result.stderr.splitlines() if line.strip()]


def checked(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"{result.args}\n{result.stdout}\n{result.stderr}"
    return result


def _build(root: Path, name: str) -> None:
    steps = {k: str(v) for k, v in STEPS.items()}
    if name == "collect":
        checked(cli("dreamer-data", "collect", "minatar", "--game", "breakout", "--policy", "noisy-scripted",
                    "--episodes", "5", "--max-steps", "60", "--seed", "3", "--out", root / "raw"))
    elif name == "ingest":
        checked(cli("dreamer-data", "ingest", "minatar", root / "raw", "--out", root / "store", "--resolution", "32x32",
                    "--workers", "0"))
        shutil.copytree(root / "store", root / "store_without_latents")  # the store as it is before tokenize
    elif name == "tokenizer":
        checked(cli("dreamer-train", "tokenizer", "--data", root / "store", "--out", root / "tokenizer", "--config",
                    root / "tokenizer.yaml", "--steps", steps["tokenizer"], "--device", "cpu", "--lpips-weight", "0"))
    elif name == "tokenize":
        checked(cli("dreamer-data", "tokenize", root / "store", "--ckpt", root / "tokenizer"))
    elif name == "phase1":
        checked(cli("dreamer-train", "phase1", "--data", root / "store", "--out", root / "phase1", "--config",
                    root / "phase1.yaml", "--steps", steps["phase1"], "--device", "cpu"))
    elif name == "phase2":
        checked(cli("dreamer-train", "phase2", "--data", root / "store", "--wm", root / "phase1", "--out",
                    root / "phase2", "--config", root / "phase2.yaml", "--steps", steps["phase2"], "--device", "cpu"))
    elif name == "phase3":
        checked(cli("dreamer-train", "phase3", "--data", root / "store", "--agent", root / "phase2", "--out",
                    root / "phase3", "--config", root / "phase3.yaml", "--steps", steps["phase3"], "--device", "cpu"))


def stage(tmp_path_factory, name: str) -> Path:
    """The pipeline folder with every stage up to ``name`` built (once per test session)."""
    if "root" not in _BUILT:
        root = tmp_path_factory.mktemp("agent_pipeline")
        for file, config in CONFIGS.items():
            (root / file).write_text(yaml.safe_dump(config))
        _BUILT["root"] = root
    root = _BUILT["root"]
    for step in ORDER[:ORDER.index(name) + 1]:
        if step not in _BUILT:
            _build(root, step)
            _BUILT[step] = root
    return root


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def phase2_variant(root: Path, out: Path, setting: str) -> Path:
    """A phase-2 agent trained 3 steps on ``stage(…, "phase2")``'s store and world model with one ``--set``."""
    from dreamer_model.train.phase2 import Phase2TrainOptions, train_phase2

    train_phase2(Phase2TrainOptions(data=str(root / "store"), wm=str(root / "phase1"), out=str(out),
                                    config=str(root / "phase2.yaml"), sets=[setting], steps=3, device="cpu"))
    return out


def phase3_trains_from(root: Path, agent: Path, out: Path) -> Path:
    """Two phase-3 steps from ``agent``, each logging a finite value loss."""
    import math

    from dreamer_model.train.phase3 import Phase3TrainOptions, train_phase3

    train_phase3(Phase3TrainOptions(data=str(root / "store"), agent=str(agent), out=str(out),
                                    config=str(root / "phase3.yaml"), steps=2, device="cpu"))
    rows = [r for r in metrics(out) if r["split"] == "train"]
    assert len(rows) == 2 and all(math.isfinite(r["value_loss"]) for r in rows)
    return out
