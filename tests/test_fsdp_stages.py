"""Every stage under ``torchrun`` on 2 CPU ranks (gloo) with ``--set train.fsdp=true``, through the CLI: the model,
its gradients and its optimizer state sharded over the ranks (FSDP2), and yet the per-step losses and gradient norms
of the one-process run at the same global batch, checkpoints in the one-process format that the stage's loader
reads (and a one-process run resumes), and a resumed FSDP run that continues bit for bit.

The one-process runs are ``checkpoint_pipeline``'s (real breakout, three steps per stage, global batch 2), as in
``test_ddp_stages``; each stage is trained again by two sharded ranks from the same store and upstream runs, with a
checkpoint after every step so that the resumed runs can start from an earlier one.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from checkpoint_pipeline import KINDS, STAGES, run_pipeline, train_losses
from dreamer_model.checkpoint import list_checkpoints, load_agent, load_checkpoint, load_tokenizer, load_world_model
from dreamer_model.train.tokenizer import TokenizerTrainOptions, train_tokenizer
from test_ddp_stages import losses_only, torchrun

LOADERS = {"tokenizer": load_tokenizer, "phase1": load_world_model, "phase2": load_agent, "phase3": load_agent}
# Not compared with the one-process checkpoint: where it lies, the hash of its (rounded) weights, the process count
# and the config (compared apart: the FSDP runs differ in train.fsdp and train.checkpoint_every only).
SKIPPED = {"path", "model_hash", "world_size", "config"}
TIMING = ("frames_per_s", "seconds", "imagine_seconds")


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> dict[str, Path]:
    """The one-process pipeline: its store, configs and one run per stage."""
    root = tmp_path_factory.mktemp("fsdp")
    return {"root": root, **run_pipeline(root)}


def launch(single: dict, stage: str, out: Path, *argv: str):
    """``stage`` on two ranks with FSDP (the CLI under torchrun), from the pipeline's store and upstream runs."""
    root = single["root"]
    upstream = {"phase2": ["--wm", single["phase1"]], "phase3": ["--agent", single["phase2"]]}.get(stage, [])
    result = torchrun(stage, "--data", root / "store", "--out", out, "--config", root / f"{stage}.yaml", "--seed", "0",
                      "--device", "cpu", "--set", "train.fsdp=true", "--set", "train.checkpoint_every=1",
                      *map(str, upstream), *argv)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "cpu × 2 (FSDP)" in result.stderr  # sharded, not DDP
    return result


@pytest.fixture(scope="module")
def sharded(single):
    """Each stage's three-step FSDP run, launched on first use."""
    runs: dict[str, Path] = {}

    def run(stage: str) -> Path:
        if stage not in runs:
            runs[stage] = single["root"] / f"fsdp_{stage}"
            launch(single, stage, runs[stage], "--steps", "3")
        return runs[stage]

    return run


def logged(rows: list[dict]) -> list[dict]:
    """Losses and gradient norms (a norm that missed a sharded parameter group would show here)."""
    norms = [{k: v for k, v in row.items() if k.endswith("grad_norm")} for row in rows]
    return [{**losses, **norm} for losses, norm in zip(losses_only(rows), norms)]


def metrics(run: Path) -> list[dict]:
    """Every logged row but its timings."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows]


def assert_same_contents(new, old, where: str, skipped: set[str], exact: bool = False) -> None:
    """Equal structure (keys, optimizer parameter indices, plain values); tensors equal, or unless ``exact`` equal up
    to the rounding of the ranks' sums that Adam's first steps amplify (the tolerance of ``test_ddp_stages``)."""
    if isinstance(old, torch.Tensor):
        assert isinstance(new, torch.Tensor) and new.dtype == old.dtype and new.shape == old.shape, where
        if exact:
            assert torch.equal(new, old), where
        else:
            torch.testing.assert_close(new, old, rtol=1e-3, atol=1e-4, msg=where)
    elif isinstance(old, dict):
        assert isinstance(new, dict) and sorted(map(str, new)) == sorted(map(str, old)), where
        for key, value in old.items():
            if key not in skipped:
                assert_same_contents(new[key], value, f"{where}.{key}", skipped, exact)
    elif isinstance(old, (list, tuple)):
        assert type(new) is type(old) and len(new) == len(old), where
        for i, (a, b) in enumerate(zip(new, old)):
            assert_same_contents(a, b, f"{where}[{i}]", skipped, exact)
    else:
        assert new == old, where


@pytest.mark.parametrize("stage", STAGES)
def test_sharded_ranks_train_as_one_process_and_write_its_checkpoints(single, sharded, stage):
    out = sharded(stage)
    one, two = (logged([row for row in metrics(run) if row["split"] == "train"]) for run in (single[stage], out))
    assert [sorted(row) for row in two] == [sorted(row) for row in one] and len(one) == 3
    for a, b in zip(two, one):
        assert a == pytest.approx(b, rel=1e-4, abs=1e-6), (stage, a, b)
    # the checkpoint: the one-process file's contents (optimizer states keyed by parameter index, every buffer)
    state, reference = load_checkpoint(out, KINDS[stage]), load_checkpoint(single[stage], KINDS[stage])
    assert state["step"] == reference["step"] == 3
    assert_same_contents(state, reference, stage, SKIPPED)
    config = {**state["config"], "train": {**state["config"]["train"], "fsdp": False, "checkpoint_every": 3}}
    assert state["config"]["train"]["fsdp"] is True and config == reference["config"]
    # … which the stage's loader reads in this one process
    model, _ = LOADERS[stage](out)
    expected, _ = LOADERS[stage](single[stage])
    weights = model.state_dict()
    assert list(weights) == list(expected.state_dict())
    for name, tensor in expected.state_dict().items():
        torch.testing.assert_close(weights[name], tensor, rtol=1e-3, atol=1e-4, msg=name)


@pytest.mark.parametrize("stage, start", [("phase2", 2), ("phase3", 1)])
def test_a_resumed_sharded_run_continues_as_the_uninterrupted_one(single, sharded, stage, start):
    """Phase 2 from step 2 (an optimizer over every weight, the value head's without state); phase 3 from step 1,
    where its policy optimizer has not stepped yet (value warm-up) and holds no state."""
    whole = sharded(stage)
    out = single["root"] / f"resumed_{stage}"
    shutil.copytree(whole, out)
    for path in list_checkpoints(out)[start:]:
        path.unlink()
    rows = [line for line in (out / "metrics.jsonl").read_text().splitlines() if json.loads(line)["step"] <= start]
    (out / "metrics.jsonl").write_text("\n".join(rows) + "\n")
    if stage == "phase3":
        assert load_checkpoint(out, KINDS[stage])["policy_optimizer"]["state"] == {}
    launch(single, stage, out, "--resume", "--steps", "3")
    assert metrics(out) == metrics(whole)
    state, expected = load_checkpoint(out, KINDS[stage]), load_checkpoint(whole, KINDS[stage])
    assert state["step"] == 3
    assert_same_contents(state, expected, stage, {"path"}, exact=True)  # model_hash too


def test_one_process_trains_unsharded_and_resumes_a_sharded_checkpoint(single, sharded, tmp_path):
    """``train.fsdp`` in one process is a no-op with a note: a fresh run is the one-process run, and the FSDP run's
    step-2 checkpoint resumed here ends where the one-process run ends."""
    root, events = single["root"], {}
    options = {"data": str(root / "store"), "config": str(root / "tokenizer.yaml"), "steps": 3, "seed": 0,
               "device": "cpu"}
    train_tokenizer(TokenizerTrainOptions(out=str(tmp_path / "fresh"), sets=["train.fsdp=true"], **options),
                    lambda event, info: events.setdefault(event, info))
    assert events["start"]["fsdp"] is False and any("nothing to shard" in note for note in events["start"]["notes"])
    assert train_losses(tmp_path / "fresh") == train_losses(single["tokenizer"])
    resumed = tmp_path / "resumed"
    shutil.copytree(sharded("tokenizer"), resumed)
    list_checkpoints(resumed)[-1].unlink()
    train_tokenizer(TokenizerTrainOptions(out=str(resumed), resume=True, **options))
    state, reference = load_checkpoint(resumed, "tokenizer"), load_checkpoint(single["tokenizer"], "tokenizer")
    assert state["step"] == 3
    assert_same_contents(state, reference, "tokenizer", SKIPPED)
