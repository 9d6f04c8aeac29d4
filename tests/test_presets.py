"""Every preset of every stage resolves, validates and builds, with the parameter counts the README's table
and ``dreamer-train presets --json`` state; phase 2 and 3 presets are real sizes, not labels."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cli.train import app as train_app
from dreamer_model.agent.actions import ActionSpace
from dreamer_model.agent.model import Agent
from dreamer_model.dynamics.actions import action_fields
from dreamer_model.dynamics.model import DynamicsModel
from dreamer_model.errors import ModelError
from dreamer_model.presets import LADDER, PRESETS, STAGES, STRUCTURE, resolve_run
from dreamer_model.tokenizer import Tokenizer

README = Path(__file__).parents[1] / "README.md"
ACTIONS = {"ladder": {"buttons": {"kind": "binary", "size": 23}, "camera": {"kind": "categorical", "size": 121}},
           "named": {"discrete": {"kind": "categorical", "size": 6}}}


def readme_table() -> dict[str, dict[str, int]]:
    """{preset: {stage: count}} from the README's table (the header row names the stages)."""
    lines = [line for line in README.read_text().splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header == ["preset", *STAGES]
    rows = {}
    for line in lines[1:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if cells[0] in PRESETS:
            rows[cells[0]] = {stage: int(cells[i + 1].replace(",", "")) for i, stage in enumerate(STAGES)}
    return rows


def built_counts(name: str) -> dict[str, int]:
    """Each stage's model built from its resolved preset (paper on the meta device): what it trains."""
    runs = {stage: resolve_run(stage, name) for stage in ("tokenizer", "phase1", "phase2")}
    runs["phase3"] = resolve_run("phase3", name, agent=runs["phase2"].agent)
    tokenizer = runs["tokenizer"].tokenizer
    dynamics = replace(runs["phase1"].dynamics, latent_tokens=tokenizer.latent_tokens,
                       latent_dim=tokenizer.latent_dim)  # the store's latents are the tokenizer's
    actions = ACTIONS["ladder" if name in LADDER else "named"]
    fields, space = action_fields(actions), ActionSpace.from_manifest(actions, "test")
    with torch.device("meta" if name == "paper" else "cpu"):
        models = {"tokenizer": Tokenizer(tokenizer), "phase1": DynamicsModel(dynamics, fields),
                  "phase2": Agent(dynamics, fields, space, runs["phase2"].agent, ["reward"]),
                  "phase3": Agent(dynamics, fields, space, runs["phase3"].agent, ["reward"])}
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    return {"tokenizer": count(models["tokenizer"]), "phase1": count(models["phase1"]),
            "phase2": count(models["phase2"]), "phase3": count(models["phase3"].policy) + count(models["phase3"].value)}


@pytest.fixture(scope="module")
def table() -> dict[str, dict[str, int]]:
    return readme_table()


@pytest.mark.parametrize("name", PRESETS)
def test_every_stage_of_every_preset_has_the_documented_size(name, table):
    assert built_counts(name) == table[name]


def test_the_cli_prints_the_table_and_the_json(table):
    result = CliRunner().invoke(train_app, ["presets", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == table
    result = CliRunner().invoke(train_app, ["presets"])
    assert result.exit_code == 0 and result.stdout.strip() in README.read_text()


def test_agent_presets_are_sizes_not_labels(table):
    """Phase 2 and 3 presets change the heads, the imagination and the optimisation, not only their name."""
    assert len({table[name]["phase2"] for name in LADDER}) == len({table[name]["phase3"] for name in LADDER}) == 4
    phase3 = {name: resolve_run("phase3", name, agent=resolve_run("phase2", name).agent) for name in LADDER}
    assert len({(run.agent.horizon, run.agent.context, run.train.lr, run.train.batch) for run in phase3.values()}) > 2


def test_phase3_keeps_the_phase2_networks_and_refuses_to_change_them():
    agent = resolve_run("phase2", "small").agent
    run = resolve_run("phase3", "paper", agent=agent)  # imagination of paper, heads of the small agent
    assert all(getattr(run.agent, key) == getattr(agent, key) for key in STRUCTURE)
    assert (run.agent.horizon, run.agent.context) == (32, 64)
    with pytest.raises(ModelError, match=re.escape("phase 3 cannot change the heads' shape (agent.head_hidden)")):
        resolve_run("phase3", "tiny", sets=["agent.head_hidden=64"], agent=agent)


def test_an_unknown_preset_is_one_clear_error():
    known = r"\(known: tiny, small, base, paper, micro, quickstart\)"
    with pytest.raises(ModelError, match=r"unknown preset 'huge' " + known):
        resolve_run("phase2", "huge")


def test_floats_written_without_a_dot_are_floats_in_set_and_yaml(tmp_path):
    """YAML 1.1 reads 2e-3 as a string: ``--set train.lr=2e-3`` and ``lr: 1e-4`` in a file are numbers all the same."""
    config = tmp_path / "phase1.yaml"
    config.write_text("train:\n  lr: 1e-4\n")
    assert resolve_run("phase1", "tiny", sets=["train.lr=2e-3"]).train.lr == 0.002
    assert resolve_run("phase1", "tiny", config_file=str(config)).train.lr == 0.0001
    for bad in ("fast", "nan", "1e999"):
        with pytest.raises(ModelError, match=re.escape(f"--set: train.lr must be float, got '{bad}'")):
            resolve_run("phase1", "tiny", sets=[f"train.lr={bad}"])


def test_start_share_is_a_share_and_the_quickstart_agent_uses_one():
    assert resolve_run("phase2", "quickstart").train.start_share == 0.25
    assert resolve_run("phase1", "quickstart").train.start_share == 0.0
    for stage in ("tokenizer", "phase1", "phase2"):
        with pytest.raises(ModelError, match=re.escape("--set: train.start_share must be in [0, 1], got 1.5")):
            resolve_run(stage, "tiny", sets=["train.start_share=1.5"])
