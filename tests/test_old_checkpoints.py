"""Checkpoints written before the trainers were restructured still load, compute the same outputs, and
are what today's trainers write.

``tests/data/old_checkpoints/`` was written by ``tests/checkpoint_pipeline.py`` with the trainers of commit
ec4996e (see that module): each stage's final checkpoint, its logged per-step losses, and the outputs of
every loaded model on fixed inputs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from checkpoint_pipeline import KINDS, STAGES, model_outputs, run_pipeline, train_losses
from dreamer_model.agent.config import saved_agent_config
from dreamer_model.checkpoint import load_checkpoint, model_hash

OLD = Path(__file__).parent / "data" / "old_checkpoints"
# Not compared: paths recorded in a checkpoint (the store, the runs it started from) name the folder it was built
# in; ``latents`` is a copy of the store manifest's entry (the data side's record, with its creation time).
SKIPPED = {"store", "path", "wm", "phase2", "checkpoint", "latents", "model_hash"}
# Keys a run's ``train`` config gained since, at the value the old runs trained with.
ADDED_TRAIN = {"fsdp": False, "cpu_bf16": False, "start_share": 0.0}
# Keys a checkpoint's environment settings gained since, at the value the old runs' store was drawn with.
ADDED_ENV = {"draw_order": "minatar"}
# Keys a world model's ``dynamics`` config gained since, at the value the old runs trained with.
ADDED_DYNAMICS = {"context_fraction": 0.0, "history_fraction": 0.0}
# Keys an agent config gained since, at the value the old runs trained with.
ADDED_AGENT = {"policy_window": None}
# Tensors in a checkpoint the trainers write again are equal up to this. Adam's step is lr·m/(√v + ε): where a
# gradient is rounding noise (the q/k of a temporal layer that reads one or two frames), the step is a fraction
# of lr whose size and sign the CPU's kernels decide: 2e-5 after 3 steps between an AMD EPYC (AVX2) and the Intel
# Xeon that wrote the references. A changed trainer moves weights by ~lr (1e-3 here) a step, and the per-step
# losses are compared at 1e-5 besides.
WEIGHT_ATOL = 1e-4


pytestmark = pytest.mark.usefixtures("one_thread")


def test_old_checkpoints_load_and_compute_what_they_computed():
    expected = torch.load(OLD / "outputs.pt", weights_only=True)
    outputs = model_outputs(OLD)
    assert sorted(outputs) == sorted(expected)
    for name, value in expected.items():
        torch.testing.assert_close(outputs[name], value, rtol=1e-5, atol=1e-6, msg=name)
    # the tokenizer's weight hash is what a store's manifest records for its latents: the rule must not move
    tokenizer = load_checkpoint(OLD / "tokenizer.pt", "tokenizer")
    assert model_hash(tokenizer["model"], tokenizer["config"]["tokenizer"]) == tokenizer["model_hash"]


def assert_same_contents(new, old, where: str) -> None:
    """Equal structure and plain values, tensors equal up to float noise, recorded paths skipped."""
    if isinstance(old, torch.Tensor):
        assert isinstance(new, torch.Tensor) and new.dtype == old.dtype, where
        torch.testing.assert_close(new, old, rtol=1e-5, atol=WEIGHT_ATOL, msg=where)
    elif isinstance(old, dict):
        if where.endswith(".agent"):  # an agent config: keys renamed since (agent.config.RENAMED) carry their new name
            old = saved_agent_config(old)
            if "agent_tokens" in old:  # the config itself, not the description holding it
                old = {**ADDED_AGENT, **old}
        if where.endswith(".config.train"):
            old = {**ADDED_TRAIN, **old}
        if where.endswith(".env") and old.get("env") == "minatar":
            old = {**ADDED_ENV, **old}
        if where.endswith(".dynamics") and "k_max" in old:
            old = {**ADDED_DYNAMICS, **old}
        assert isinstance(new, dict) and sorted(map(str, new)) == sorted(map(str, old)), where
        for key, value in old.items():
            if key not in SKIPPED:
                assert_same_contents(new[key], value, f"{where}.{key}")
    elif isinstance(old, (list, tuple)):
        assert type(new) is type(old) and len(new) == len(old), where
        for i, (a, b) in enumerate(zip(new, old)):
            assert_same_contents(a, b, f"{where}[{i}]")
    else:
        assert new == old, where


def test_trainers_still_write_the_old_checkpoints_and_losses(tmp_path):
    """The same pipeline (data, configs, seeds) through today's trainers: the same per-step losses and the same
    checkpoint contents (weights, optimizer state, loss normalisers, config, everything but folder paths)."""
    runs = run_pipeline(tmp_path)
    old_losses = json.loads((OLD / "losses.json").read_text())
    for stage in STAGES:
        new_losses = train_losses(runs[stage])
        assert [sorted(r) for r in new_losses] == [sorted(r) for r in old_losses[stage]], stage
        for new, old in zip(new_losses, old_losses[stage]):
            assert new == pytest.approx(old, rel=1e-5, abs=1e-7), (stage, new, old)
        new_state = load_checkpoint(runs[stage], KINDS[stage])
        old_state = load_checkpoint(OLD / f"{stage}.pt", KINDS[stage])
        assert_same_contents(new_state, old_state, stage)
