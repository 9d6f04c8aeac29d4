"""dreamer-train phase1 on a store with cached latents (the toy dot world): bit-exact resume, run
artefacts, checkpoint contents, and one-line errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import cli_command
from dreamer_model.errors import ModelError
from dreamer_model.checkpoint import list_checkpoints, load_checkpoint, load_world_model
from dreamer_model.train.logging import read_metrics
from dreamer_model.train.phase1 import Phase1TrainOptions, train_phase1
from dreamer_model.train.threads import candidate_counts, usable_cores
from dynamics_toy import write_toy_store

SMALL = ["dynamics.context=6", "dynamics.k_max=8", "train.batch=4", "train.log_every=1", "train.eval_every=2",
         "train.checkpoint_every=2", "train.eval_windows=4", "train.warmup=2", "dynamics.transformer.dim=32",
         "dynamics.transformer.heads=2", "dynamics.transformer.kv_heads=1", "dynamics.transformer.head_dim=16",
         "dynamics.transformer.depth=2", "dynamics.transformer.time_every=2", "dynamics.transformer.registers=1"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    return write_toy_store(tmp_path_factory.mktemp("toy") / "store", episodes=6, length=30)


def options(store: str, out: Path, steps: int, resume: bool = False, **kw) -> Phase1TrainOptions:
    return Phase1TrainOptions(data=store, out=str(out), steps=steps, sets=list(SMALL), resume=resume, seed=3,
                              device="cpu", **kw)


def test_resume_is_bit_exact(store, tmp_path):
    straight = train_phase1(options(store, tmp_path / "a", 4))
    train_phase1(options(store, tmp_path / "b", 2))
    resumed = train_phase1(options(store, tmp_path / "b", 4, resume=True))
    assert straight["step"] == resumed["step"] == 4
    a = load_checkpoint(tmp_path / "a", "dynamics")
    b = load_checkpoint(tmp_path / "b", "dynamics")
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    assert a["model_hash"] == b["model_hash"]
    for key in ("rms.mean_square", "rms.updates"):
        assert torch.equal(a["loss_norm"][key], b["loss_norm"][key])
    state_a, state_b = a["optimizer"]["state"], b["optimizer"]["state"]
    for index in state_a:
        for key in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(state_a[index][key], state_b[index][key])
    train_a = [r for r in read_metrics(tmp_path / "a") if r["split"] == "train"]
    train_b = [r for r in read_metrics(tmp_path / "b") if r["split"] == "train"]
    assert [r["loss"] for r in train_a] == [r["loss"] for r in train_b]  # same numbers at every step


def test_run_artefacts_and_checkpoint_contents(store, tmp_path):
    result = train_phase1(options(store, tmp_path / "run", 2, objective="flow"))
    run = tmp_path / "run"
    assert (run / "config.yaml").is_file() and any((run / "tb").iterdir())
    rows = read_metrics(run)
    heldout = [r for r in rows if r["split"] == "heldout"]
    assert [r["step"] for r in heldout] == [2]
    assert {"rollout_mse_1", "rollout_mse_3", "copy_mse_1", "flow", "x_mse"} <= set(heldout[0])
    assert all(r["bootstrap_fraction"] == 0 and r["context_fraction"] == 0 for r in rows if r["split"] == "train")
    state = load_checkpoint(run, "dynamics")
    assert state["step"] == 2 and state["config"]["dynamics"]["objective"] == "flow"
    assert state["config"]["dynamics"]["latent_tokens"] == 4 and state["config"]["dynamics"]["latent_dim"] == 8
    assert state["action_fields"] == [{"name": "discrete", "kind": "categorical", "size": 3, "mean": None, "std": None}]
    assert state["latents"]["checkpoint_hash"] == "sha256:toy"
    model, _ = load_world_model(run)
    assert not model.training and result["rollout_mse_1"] == heldout[0]["rollout_mse_1"]


def test_train_threads_is_applied(store, tmp_path):
    """train.threads sets torch's intra-op threads, as in the tokenizer trainer (was ignored by phase 1)."""
    torch.set_num_threads(2)
    try:
        train_phase1(Phase1TrainOptions(data=store, out=str(tmp_path / "run"), steps=1, sets=SMALL + ["train.threads=1"],
                                        seed=3, device="cpu"))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(1)


def test_train_threads_auto_times_the_runs_own_steps(store, tmp_path):
    """train.threads=-1: the first steps probe each candidate count (one untimed step and three timed), every
    logged step records the count it ran with, and the process is left at the last one."""
    cores = usable_cores()
    try:
        train_phase1(Phase1TrainOptions(data=store, out=str(tmp_path / "run"), steps=10, seed=3, device="cpu",
                                        sets=SMALL + ["train.threads=-1", "train.eval_every=100"]))
        counts = [int(r["threads"]) for r in read_metrics(tmp_path / "run") if r["split"] == "train"]
        assert len(counts) == 10 and counts[:4] == [1, 1, 1, 1]
        if cores > 1:
            assert counts[4] == 2 and set(counts) <= set(candidate_counts(cores))
        assert torch.get_num_threads() == counts[-1]
    finally:
        torch.set_num_threads(1)


def test_bad_input_is_one_clear_error(store, tmp_path):
    no_latents = write_toy_store(tmp_path / "plain", episodes=3, length=20, latents=False)
    with pytest.raises(ModelError, match="store has no latents; run `dreamer-data tokenize"):
        train_phase1(options(no_latents, tmp_path / "x", 2))
    with pytest.raises(ModelError, match="--resume but the run has no checkpoint"):
        train_phase1(options(store, tmp_path / "empty", 2, resume=True))
    train_phase1(options(store, tmp_path / "done", 2))
    with pytest.raises(ModelError, match="already holds checkpoints"):
        train_phase1(options(store, tmp_path / "done", 4))
    with pytest.raises(ModelError, match="objective"):
        train_phase1(options(store, tmp_path / "y", 2, objective="diffusion"))
    with pytest.raises(ModelError, match=r"dynamics.context_fraction must be in \[0, 1\)"):
        train_phase1(Phase1TrainOptions(data=store, out=str(tmp_path / "c"), steps=1, device="cpu",
                                        sets=SMALL + ["dynamics.context_fraction=1.0"]))
    with pytest.raises(ModelError, match="no temporal layer"):
        train_phase1(Phase1TrainOptions(data=store, out=str(tmp_path / "z"), steps=1, device="cpu",
                                        sets=SMALL + ["dynamics.transformer.time_every=4"]))


def test_cli_reports_a_store_without_latents_in_one_line(tmp_path):
    import subprocess

    no_latents = write_toy_store(tmp_path / "plain", episodes=3, length=20, latents=False)
    done = subprocess.run([*cli_command("dreamer-train"), "phase1", "--data", no_latents, "--out",
                           str(tmp_path / "run"), "--device", "cpu"], capture_output=True, text=True, timeout=300,
                          env={"COLUMNS": "300", "NO_COLOR": "1", "OMP_NUM_THREADS": "1", "PATH": ""})
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "store has no latents" in lines[0] and no_latents in lines[0], done.stderr
    assert not list_checkpoints(tmp_path / "run")
    assert json.loads((Path(no_latents) / "manifest.json").read_text())["latents"] is None


@pytest.mark.parametrize("key, value", [("context_fraction", 0.5), ("history_fraction", 0.9)])
def test_context_and_history_fractions_feed_context_frames_to_the_loss(store, tmp_path, key, value):
    """dynamics.context_fraction and dynamics.history_fraction reach phase 1's loss (shortcut.py) and are saved
    with the run."""
    train_phase1(Phase1TrainOptions(data=store, out=str(tmp_path / "run"), steps=2, seed=3, device="cpu",
                                    sets=SMALL + [f"dynamics.{key}={value}"]))
    rows = [r for r in read_metrics(tmp_path / "run") if r["split"] == "train"]
    assert rows and all(0 < r["context_fraction"] < 1 for r in rows)
    assert load_checkpoint(tmp_path / "run", "dynamics")["config"]["dynamics"][key] == value
