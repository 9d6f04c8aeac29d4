"""Small truths of the CLIs (issue 17 item 10): what they print matches the store and the commands that exist."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from importlib.metadata import version

import pytest
import torch
from typer.testing import CliRunner

import makers
from cli.train import app as train_app
from conftest import cli_command, read_manifest, run_cli
from dreamer_data.tokenize import tokenize_store
from dreamer_model.tokenizer import Tokenizer
from dreamer_model.tokenizer.frame_encoder import TokenizerFrameEncoder
from test_tokenize_store import MINI_TOKENIZER

GOOD = [f"ep-{index:02d}" for index in range(12)]
TOKENIZER_HASH = "sha256:" + "0123456789abcdef" * 4


@pytest.fixture(scope="module")
def tokenized(tmp_path_factory):
    """12 good VPT episodes and 2 broken ones ingested zarr-only at 16x16, then tokenized by a real (untrained)
    tokenizer whose description names a preset, a step and a checkpoint, as ``from_checkpoint`` writes it."""
    src = tmp_path_factory.mktemp("truth-src")
    for seed, name in enumerate(GOOD):
        makers.write_vpt_episode(src, name, 6, seed=seed)
    video, _ = makers.write_vpt_episode(src, "fa-truncated", 20)
    makers.truncate_file(video, 0.5)
    _, jsonl = makers.write_vpt_episode(src, "fb-bad-line", 6)
    lines = jsonl.read_text().splitlines()
    lines[2] = lines[2][: len(lines[2]) // 2]
    jsonl.write_text("\n".join(lines) + "\n")
    store = tmp_path_factory.mktemp("truth-store") / "store"
    result = run_cli("ingest", "vpt", src, "--out", store, "--resolution", "16x16", "--workers", "0")
    assert result.returncode == 1, result.stderr  # the two broken episodes
    torch.manual_seed(0)
    encoder = TokenizerFrameEncoder(Tokenizer(MINI_TOKENIZER), TOKENIZER_HASH,
                                    {"checkpoint": "/runs/tok/checkpoints/step-000007.pt", "preset": "tiny", "step": 7})
    tokenize_store(str(store), encoder)
    return store


def test_a_zarr_only_store_says_wds_null(vpt_store):
    manifest = read_manifest(vpt_store)
    assert "wds" in manifest and manifest["wds"] is None


def test_a_store_written_before_the_wds_key_still_reads(vpt_store, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(vpt_store, old)
    manifest = read_manifest(old)
    del manifest["wds"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    assert run_cli("verify", old).returncode == 0
    result = run_cli("inspect", old)
    assert result.returncode == 0, result.stderr
    assert any(line.split() == ["│", "wds", "shards", "│", "0", "│"] for line in result.stdout.splitlines())


def test_inspect_names_the_first_and_last_episodes_the_failures_and_the_latents(tokenized):
    manifest = read_manifest(tokenized)
    ids = [episode["id"] for episode in manifest["episodes"]]
    assert ids == GOOD
    result = run_cli("inspect", tokenized)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert all(name in out for name in ids[:5] + ids[-5:])
    assert all(name not in out for name in ids[5:-5]) and "… 2 more …" in out and "--episodes lists all" in out
    assert len(manifest["failed"]) == 2
    for failure in manifest["failed"]:  # every failed file with its reason, on one line
        assert f"{failure['file']}: {failure['reason']}" in out, failure
    latents = next(line for line in out.splitlines() if line.startswith("│ latents "))
    assert f"4x8 float16 per frame from tokenizer {TOKENIZER_HASH}" in latents
    assert "(preset tiny, step 7, /runs/tok/checkpoints/step-000007.pt)" in latents
    assert "{" not in latents  # not the raw JSON entry


def test_inspect_episodes_lists_every_id(tokenized):
    result = run_cli("inspect", tokenized, "--episodes")
    assert result.returncode == 0, result.stderr
    assert ", ".join(GOOD) in result.stdout and "more" not in result.stdout


@pytest.mark.parametrize("program", ["dreamer-data", "dreamer-train"])
def test_version(program):
    result = subprocess.run([*cli_command(program), "--version"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"dreamer {version('dreamer')}\n"


def test_help_lists_what_exists_and_calls_none_of_it_planned():
    """``dreamer-train --help`` lists every registered command with its help; no hand-kept list can fall out of
    date (the ``plan`` command that printed one is gone, issue 18)."""
    result = CliRunner().invoke(train_app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    registered = {command.name for command in train_app.registered_commands}
    assert {"tokenizer", "phase1", "phase2", "phase3", "rollout", "eval", "quickstart", "presets"} <= registered
    for name in registered:
        assert re.search(rf"│ {name} +\S", result.output), name
    assert "(planned)" not in result.output and "plan" not in registered
    assert CliRunner().invoke(train_app, ["plan"]).exit_code != 0


def test_long_messages_stay_one_line_when_piped(vpt_store, tmp_path):
    """Without a terminal (and no COLUMNS), rich would wrap at 80 columns; logs want one message per line."""
    store = tmp_path / ("a-store-folder-with-a-long-descriptive-name-" * 2) / "store"
    shutil.copytree(vpt_store, store)
    env = {key: value for key, value in os.environ.items() if key != "COLUMNS"}

    def run(*args):
        return subprocess.run([*cli_command(), *map(str, args)], capture_output=True, text=True, env=env,
                              timeout=120)

    ok = run("verify", store)
    assert ok.returncode == 0 and ok.stderr.splitlines()[-1] == f"{store}: ok", ok.stderr
    missing = run("inspect", store / "nowhere")
    assert missing.returncode == 2
    assert missing.stderr.splitlines() == [f"dreamer-data inspect: error: {store / 'nowhere'}: not a dreamer store "
                                           f"(no manifest.json)"]


def test_inspect_shows_ten_failures_and_counts_the_rest(vpt_store, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(vpt_store, store)
    manifest = read_manifest(store)
    manifest["failed"] = [{"id": f"bad-{i:02d}", "file": f"/raw/bad-{i:02d}.mp4", "reason": f"[code {i}] broken"}
                          for i in range(13)]
    (store / "manifest.json").write_text(json.dumps(manifest))
    short = run_cli("inspect", store).stdout
    assert [f"/raw/bad-{i:02d}.mp4: [code {i}] broken" in short for i in range(13)] == [True] * 10 + [False] * 3
    assert "… 3 more (--episodes lists all)" in short
    full = run_cli("inspect", store, "--episodes").stdout
    assert all(f"/raw/bad-{i:02d}.mp4: [code {i}] broken" in full for i in range(13)) and "more" not in full


def test_data_commands_run_without_importing_torch(vpt_src, tmp_path):
    """torch costs a data command 2-3 s of start-up (benchmarks/results/cli_startup.md), and only the loaders and
    ``tokenize`` compute with it: ingest, verify and inspect run to the end without it in the process."""
    program = ("import sys\nfrom cli.data import main\nsys.argv[0] = 'dreamer-data'\n"
               "try:\n    main()\nexcept SystemExit as end:\n    assert not end.code, end.code\n"
               "assert 'torch' not in sys.modules, 'torch was imported'")
    store = tmp_path / "store"
    for args in (("ingest", "vpt", vpt_src, "--out", store, "--resolution", "36x64", "--workers", "0"),
                 ("verify", store), ("inspect", store)):
        result = subprocess.run([sys.executable, "-c", program, *map(str, args)], capture_output=True, text=True)
        assert result.returncode == 0, (args[0], result.stderr[-2000:])
