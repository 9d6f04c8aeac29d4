"""``dreamer-train quickstart`` through the real CLI on real MinAtar breakout, with a half-minute budget.

One pipeline is built per module: the first run is interrupted with Ctrl-C (SIGINT) during tokenizer
training, the same command then resumes it and runs to the end. The tests check what that left:
every artefact, summary.json against the evaluation reports it summarises, the chain of
checkpoints, the resumed tokenizer, and that reruns reuse finished stages.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr
from PIL import Image

from conftest import cli_command
from dreamer_model.checkpoint import list_checkpoints, load_checkpoint

MINUTES = "0.5"  # the plan's floor: 6 collected episodes of <= 100 steps, 4 evaluation episodes per policy
STAGES = ("collect", "ingest", "tokenizer", "tokenize", "phase1", "rollout", "phase2", "phase3",
          "eval_behaviour", "eval_random", "eval_bc", "eval_dreamer", "eval_bc_greedy", "eval_dreamer_greedy")
ENV = {**os.environ, "COLUMNS": "250", "NO_COLOR": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def quickstart(out: Path, *extra: str) -> list[str]:
    return [*cli_command("dreamer-train"), "quickstart", "--out", str(out), "--minutes", MINUTES, "--device", "cpu",
            "--seed", "1", *extra]


def run(out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(quickstart(out, *extra), capture_output=True, text=True, timeout=600, env=ENV)


def state(root: Path) -> dict:
    return json.loads((root / "quickstart.json").read_text())


def train_steps(run_dir: Path) -> list[int]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r["step"] for r in map(json.loads, filter(None, lines)) if r["split"] == "train"]


def reused(output: str) -> set[str]:
    """Stages the live view marked as reused (↷) in its final frame."""
    labels = {"collect": "collect", "ingest": "ingest", "tokenizer": "tokenizer", "tokenize": "tokenize",
              "phase1": "phase 1", "rollout": "rollout GIF", "phase2": "phase 2", "phase3": "phase 3",
              "eval_behaviour": "eval behaviour", "eval_random": "eval random", "eval_bc": "eval BC",
              "eval_dreamer": "eval Dreamer", "eval_bc_greedy": "eval BC, greedy",
              "eval_dreamer_greedy": "eval Dreamer, greedy"}
    lines = [line for line in output.splitlines() if line.startswith("↷ ")]
    return {stage for stage, label in labels.items()
            if any(line[2:].startswith(label + " ") and "reused" in line for line in lines)}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(root, interrupted-run facts, resumed run) of one quickstart, Ctrl-C'd during tokenizer training."""
    root = tmp_path_factory.mktemp("quickstart") / "qs"
    logs = root.parent
    with open(logs / "first.out", "w") as out, open(logs / "first.err", "w") as err:
        process = subprocess.Popen(quickstart(root), stdout=out, stderr=err, env=ENV)
        metrics = root / "tokenizer" / "metrics.jsonl"
        deadline = time.monotonic() + 300
        while process.poll() is None and time.monotonic() < deadline:
            if metrics.exists() and metrics.read_text().strip():  # the tokenizer has logged a step
                process.send_signal(signal.SIGINT)
                break
            time.sleep(0.05)
        code = process.wait(timeout=300)
    interrupted = {"code": code, "stderr": (logs / "first.err").read_text(), "state": state(root),
                   "checkpoints": list_checkpoints(root / "tokenizer"), "steps": train_steps(root / "tokenizer")}
    resumed = run(root)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    return root, interrupted, resumed


def test_ctrl_c_leaves_finished_stages_and_a_tokenizer_checkpoint(built):
    root, interrupted, resumed = built
    assert interrupted["code"] == 130, interrupted["stderr"]
    assert "interrupted" in interrupted["stderr"] and "rerun" in interrupted["stderr"]
    stages = interrupted["state"]["stages"]
    assert stages["collect"]["done"] and stages["ingest"]["done"]
    assert not stages["tokenizer"]["done"] and "phase1" not in stages
    # the trainer turned Ctrl-C into a checkpoint at the step it had reached
    assert len(interrupted["checkpoints"]) == 1
    stopped_at = load_checkpoint(interrupted["checkpoints"][0], "tokenizer")["step"]
    assert stopped_at >= interrupted["steps"][-1] >= 5

    # the rerun reused the data, continued the tokenizer from that step and never repeated a step
    assert {"collect", "ingest"} <= reused(resumed.stderr)
    assert f"from step {stopped_at}" in resumed.stderr
    steps = train_steps(root / "tokenizer")
    assert steps == sorted(set(steps)) and steps[-1] > stopped_at
    tokenizer = load_checkpoint(root / "tokenizer", "tokenizer")
    assert tokenizer["step"] == steps[-1]
    # one budget over both runs: the resumed part was given what was left of it, not a fresh budget
    record = state(root)["stages"]["tokenizer"]
    first_budget = interrupted["state"]["stages"]["tokenizer"]["budget"]
    assert record["done"] and record["budget"] == first_budget and record["seconds"] > 0


def test_summary_matches_the_evaluation_reports_and_the_artefacts(built):
    root, _, resumed = built
    summary = json.loads((root / "summary.json").read_text())
    plan = summary["plan"]
    assert summary["env"] == "minatar breakout" and plan["episodes"] == 6 and plan["eval_episodes"] == 4

    # the store: every collected episode, 20x20 frames (2 pixels per grid cell), latents of the tokenizer that was trained
    manifest = json.loads((root / "store" / "manifest.json").read_text())
    assert len(manifest["episodes"]) == 6 and manifest["observation"]["height"] == 20
    tokenizer = load_checkpoint(summary["artefacts"]["tokenizer"], "tokenizer")
    assert manifest["latents"]["checkpoint_hash"] == tokenizer["model_hash"]
    latents = zarr.open_group(str(root / "store"), mode="r")["data/latents"]
    assert latents.shape == (manifest["totals"]["frames"], 16, 16)  # 16 tokens of 16 dims per frame

    # the chain of checkpoints: world model on those latents, BC on that world model, Dreamer from BC
    world = load_checkpoint(summary["artefacts"]["world_model"], "dynamics")
    bc = load_checkpoint(summary["artefacts"]["bc_agent"], "agent")
    dreamer = load_checkpoint(summary["artefacts"]["dreamer_agent"], "agent")
    assert world["latents"]["checkpoint_hash"] == tokenizer["model_hash"]
    assert bc["phase"] == 2 and bc["wm"] == world["path"]
    assert dreamer["phase"] == 3 and dreamer["phase2"] == bc["path"]
    for name, ckpt in (("tokenizer", tokenizer), ("phase1", world), ("phase2", bc), ("phase3", dreamer)):
        stage = summary["stages"][name]
        assert ckpt["step"] == stage["step"] >= 1 and stage["budget"] > 0
    assert all(torch.isfinite(v).all() for v in dreamer["model"].values() if v.is_floating_point())

    # six evaluations on the same seeds (the agents sampling and greedy); summary.json says what their reports say
    seeds, returns_of = [], {}
    rows = (("behaviour", "noisy-scripted", None), ("random", "random", None), ("bc", "phase2", bc),
            ("dreamer", "phase3", dreamer), ("bc_greedy", "phase2", bc), ("dreamer_greedy", "phase3", dreamer))
    for row, policy, ckpt in rows:
        entry = summary[row]
        report = json.loads(Path(entry["report"]).read_text())
        returns = returns_of[row] = [e["return"] for e in report["per_episode"]]
        assert entry["policy"] == report["policy"] == policy
        assert entry["episodes"] == len(returns) == 4
        assert math.isclose(entry["return_mean"], np.mean(returns))
        assert math.isclose(entry["return_stderr"], np.std(returns, ddof=1) / 2.0, abs_tol=1e-12)
        assert all(e["length"] <= plan["max_steps"] for e in report["per_episode"])
        if ckpt is not None:
            assert report["checkpoint"] == ckpt["path"]
            assert entry["greedy"] is report["greedy"] is row.endswith("_greedy")
        seeds.append([e["env_seed"] for e in report["per_episode"]])
        assert Image.open(entry["chart"]).size[0] > 100
        # the final table printed on stdout carries the same numbers
        assert f"{entry['return_mean']:.2f} ± {entry['return_stderr']:.2f}" in resumed.stdout
    assert all(s == seeds[0] for s in seeds)
    # Dreamer − BC, paired over those seeds, and the one-line verdict
    diff = np.subtract(returns_of["dreamer"], returns_of["bc"])
    paired = summary["dreamer_minus_bc"]
    assert paired["episodes"] == 4 and math.isclose(paired["mean"], diff.mean(), abs_tol=1e-12)
    assert math.isclose(paired["stderr"], diff.std(ddof=1) / 2.0, abs_tol=1e-12)
    assert summary["dreamer_beat_bc"] == (paired["mean"] > 2 * paired["stderr"])
    verdict = "Dreamer beat BC" if summary["dreamer_beat_bc"] else "Dreamer did not beat BC"
    assert f"Dreamer − BC: {paired['mean']:+.2f} ± {paired['stderr']:.2f}" in resumed.stdout and verdict in resumed.stdout
    assert "crafter_score" not in summary["behaviour"]
    # the greedy pair and the comparison with the behaviour policy, paired the same way
    pairs = (("greedy_dreamer_minus_bc", "dreamer_greedy", "bc_greedy"),
             ("dreamer_minus_behaviour/dreamer", "dreamer", "behaviour"),
             ("dreamer_minus_behaviour/dreamer_greedy", "dreamer_greedy", "behaviour"))
    for key, a, b in pairs:
        entry = summary
        for part in key.split("/"):
            entry = entry[part]
        diff = np.subtract(returns_of[a], returns_of[b])
        assert math.isclose(entry["mean"], diff.mean(), abs_tol=1e-12)
        assert f"{entry['mean']:+.2f} ± {entry['stderr']:.2f}" in resumed.stdout
    # phase 3's imagined returns of the same three policies, checked against the game's order
    ranking = summary["imagination_ranking"]
    phase3 = summary["stages"]["phase3"]["result"]
    assert ranking["imagined_returns"] == {"random": phase3["imagined_return_random"],
                                           "bc": phase3["imagined_return_prior"],
                                           "dreamer": phase3["imagined_return_policy"]}
    dreamer_bc = next(pair for pair in ranking["pairs"] if pair["pair"] == ["dreamer", "bc"])
    assert math.isclose(dreamer_bc["real"]["mean"], paired["mean"], abs_tol=1e-12)
    assert "Imagination check: " in resumed.stdout

    # the pictures: reconstruction grid, rollout GIF (real | tokenizer | world model), comparison plot
    assert Image.open(summary["artefacts"]["reconstruction_grid"]).size[1] > 20
    rollout = summary["stages"]["rollout"]["result"]
    gif = Image.open(summary["artefacts"]["rollout_gif"])
    assert gif.n_frames == rollout["context"] + rollout["horizon"] and gif.size[0] > 3 * 20 * 4
    assert rollout["episode"] in [e["id"] for e in manifest["episodes"]]
    assert Image.open(summary["artefacts"]["comparison_plot"]).size[0] > 100
    for path in (summary["artefacts"]["store"], summary["artefacts"]["rollout_gif"],
                 summary["artefacts"]["comparison_plot"]):
        assert path in resumed.stdout


def test_a_rerun_reuses_every_finished_stage_and_rebuilds_only_a_missing_one(built):
    root, _, _ = built
    checkpoints = {p: p.stat().st_mtime for p in root.glob("*/checkpoints/*.pt")}
    again = run(root)
    assert again.returncode == 0, again.stderr
    assert reused(again.stderr) == set(STAGES)
    assert {p: p.stat().st_mtime for p in root.glob("*/checkpoints/*.pt")} == checkpoints

    # lose the Dreamer evaluation: only it runs again, and the same checkpoint on the same seeds scores the same
    report = root / "eval" / "dreamer" / "report.json"
    before = json.loads(report.read_text())
    report.unlink()
    third = run(root)
    assert third.returncode == 0, third.stderr
    assert reused(third.stderr) == set(STAGES) - {"eval_dreamer"}
    after = json.loads(report.read_text())
    assert [e["return"] for e in after["per_episode"]] == [e["return"] for e in before["per_episode"]]


def train_in_process(*args: str) -> tuple[int, list[str]]:
    """``dreamer-train ARGS`` in this process (typer's runner: no interpreter start-up) for error paths;
    returns (exit code, non-empty stderr lines)."""
    from typer.testing import CliRunner

    from cli.train import app

    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, [line for line in result.stderr.splitlines() if line.strip()]


def test_other_settings_or_bad_input_are_one_line_errors(built, tmp_path):
    root, _, _ = built
    code, lines = train_in_process("quickstart", "--out", root, "--minutes", "1", "--device", "cpu", "--seed", "1")
    assert code == 2 and len(lines) == 1 and "other settings" in lines[0] and "--minutes 0.5" in lines[0]
    for extra, message in ((("--minutes", "0"), "--minutes must be a positive number"),
                           (("--game", "pong"), "--game must be one of"),
                           (("--env", "crafter", "--game", "breakout"), "--game is for --env minatar only")):
        code, lines = train_in_process("quickstart", "--out", tmp_path / "new", *extra)
        assert code == 2 and len(lines) == 1 and message in lines[0]
        assert not (tmp_path / "new").exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    code, lines = train_in_process("quickstart", "--out", tmp_path / "full")
    assert code == 2 and len(lines) == 1 and "not empty" in lines[0]
    assert sorted(p.name for p in (tmp_path / "full").iterdir()) == ["notes.txt"]
