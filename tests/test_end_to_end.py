"""The whole pipeline on a tiny MinAtar store through the real CLI, checking each stage's artefacts:

collect → ingest → tokenizer → tokenize → phase1 → phase2 → phase3 → eval.

Stages are built by ``test_agent_pipeline.stage`` (shared with the phase-2/3 tests, so a full test run
builds them once); every one must leave the files the next one reads, with consistent contents.
"""

import json

import av
import numpy as np
import torch
import zarr

from dreamer_model.checkpoint import list_checkpoints, load_checkpoint
from test_agent_pipeline import STEPS, cli, metrics, stage


def test_collect_to_eval_on_a_tiny_minatar_store(tmp_path_factory):
    root = stage(tmp_path_factory, "phase3")

    # collect: five episode files and the run's settings
    raw = json.loads((root / "raw" / "collect.json").read_text())
    assert raw["env"] == "minatar" and raw["game"] == "breakout" and raw["policy"] == "noisy-scripted"
    assert sorted(p.name for p in (root / "raw" / "episodes").glob("*.npz")) == [f"{i:06d}.npz" for i in range(5)]

    # ingest: 32x32 frames, the actions/rewards/terminals the agent learns from
    manifest = json.loads((root / "store" / "manifest.json").read_text())
    assert len(manifest["episodes"]) == 5
    frames = manifest["totals"]["frames"]
    group = zarr.open_group(str(root / "store"), mode="r")
    assert group["data/frames"].shape == (frames, 32, 32, 3)
    assert group["data/actions/discrete"].shape == (frames,) and int(group["data/actions/discrete"][:].max()) < 6
    assert group["data/is_terminal"][:].sum() <= 5

    # tokenizer + tokenize: a checkpoint whose hash the store's latents record, one latent per frame
    tokenizer = load_checkpoint(root / "tokenizer", "tokenizer")
    assert tokenizer["step"] == STEPS["tokenizer"]
    assert manifest["latents"]["checkpoint_hash"] == tokenizer["model_hash"]
    latents = group["data/latents"][:]
    assert latents.shape == (frames, 8, 16) and np.isfinite(latents).all() and np.abs(latents).max() <= 1.0

    # phase 1: a world model trained on exactly these latents
    world = load_checkpoint(root / "phase1", "dynamics")
    assert world["step"] == STEPS["phase1"] and world["latents"]["checkpoint_hash"] == tokenizer["model_hash"]

    # phase 2: agent tokens + heads on that world model, carrying the tokenizer for deployment
    bc = load_checkpoint(root / "phase2", "agent")
    assert bc["phase"] == 2 and bc["wm"] == world["path"] and bc["tokenizer"]["model_hash"] == tokenizer["model_hash"]
    assert all(torch.isfinite(v).all() for v in bc["model"].values() if v.is_floating_point())

    # phase 3: PMPO / TD(λ) logged every step, the prior is the phase-2 policy
    rl = load_checkpoint(root / "phase3", "agent")
    assert rl["phase"] == 3 and rl["phase2"] == bc["path"]
    steps = [r["step"] for r in metrics(root / "phase3") if r["split"] == "train"]
    assert steps == list(range(1, STEPS["phase3"] + 1))
    assert len(list_checkpoints(root / "phase3")) >= 1

    # eval: the phase-3 agent in the real game, with its report, chart and video
    out = root / "eval"
    result = cli("dreamer-train", "eval", "minatar", "--ckpt", root / "phase3", "--episodes", "4", "--max-steps", "40",
                 "--record", "1", "--out", out)
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["phase"] == 3 and report["episodes"] == 4 and report["env"]["game"] == "breakout"
    returns = [e["return"] for e in report["per_episode"]]
    assert abs(report["return_mean"] - np.mean(returns)) < 1e-9
    assert f"return {report['return_mean']:.3f}" in result.stdout
    assert (out / "returns.png").stat().st_size > 1000
    with av.open(str(out / "episode_0000.mp4")) as container:
        assert len(list(container.decode(video=0))) == report["per_episode"][0]["length"] + 1
