"""The smallest whole pipeline (real MinAtar breakout → tokenizer → tokenize → phase 1 → phase 2 → phase 3),
three steps per stage, one thread: deterministic, so two runs of the same code write the same checkpoints.

``tests/data/old_checkpoints/`` holds its checkpoints and per-step losses as the trainers of commit ec4996e
wrote them (``python tests/checkpoint_pipeline.py tests/data/old_checkpoints``), and ``test_old_checkpoints``
reruns it with today's trainers and checks that they still load and that the trainers still write them.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import torch
import yaml

STAGES = ("tokenizer", "phase1", "phase2", "phase3")
KINDS = {"tokenizer": "tokenizer", "phase1": "dynamics", "phase2": "agent", "phase3": "agent"}
STEPS = 3
NANO = {"dim": 16, "depth": 2, "heads": 2, "kv_heads": 1, "head_dim": 8, "registers": 1, "time_every": 2,
        "mlp_hidden": 16}
BOOKS = {"log_every": 1, "eval_every": STEPS, "checkpoint_every": STEPS, "eval_windows": 2, "threads": 1}
CONFIGS = {
    "tokenizer": {"tokenizer": {"height": 20, "width": 20, "patch": 4, "latent_tokens": 4, "latent_dim": 4,
                                "context": 2, "lpips_weight": 0.0, "encoder": NANO, "decoder": NANO},
                  "train": {"batch": 2, "warmup": 2, **BOOKS}},
    "phase1": {"dynamics": {"context": 4, "k_max": 8, "transformer": NANO},
               "train": {"batch": 2, "warmup": 2, **BOOKS}},
    "phase2": {"agent": {"head_hidden": 8, "mtp": 1, "bins": 16},
               "train": {"batch": 2, "warmup": 2, **BOOKS}},
    "phase3": {"agent": {"horizon": 2, "context": 3},
               "train": {"batch": 2, "warmup": 2, **BOOKS}, "value_warmup": 1},
}


def build_store(root: Path) -> Path:
    """5 noisy-scripted breakout episodes of at most 30 steps at 20x20 (deterministic: seed 0)."""
    from dreamer_data.collect.collector import CollectConfig, collect
    from dreamer_data.ingest import IngestPlan, ingest
    from dreamer_data.sources import ReadOptions, source_class

    collect(CollectConfig("minatar", "noisy-scripted", seed=0, game="breakout", max_steps=30), root / "raw", episodes=5)
    # MinAtar's draw order (highest channel wins): the references were drawn before the ``objects`` order existed
    options = ReadOptions(resolution=(20, 20), draw_order="minatar")
    report = ingest(source_class("minatar")(str(root / "raw"), options), str(root / "store"), IngestPlan(workers=0))
    assert not report.failed
    return root / "store"


def run_pipeline(root: Path) -> dict[str, Path]:
    """Train every stage for ``STEPS`` steps in ``root``; the run directory of each stage."""
    from dreamer_data.tokenize import tokenize_store
    from dreamer_model.tokenizer.frame_encoder import TokenizerFrameEncoder
    from dreamer_model.train.phase1 import Phase1TrainOptions, train_phase1
    from dreamer_model.train.phase2 import Phase2TrainOptions, train_phase2
    from dreamer_model.train.phase3 import Phase3TrainOptions, train_phase3
    from dreamer_model.train.tokenizer import TokenizerTrainOptions, train_tokenizer

    torch.set_num_threads(1)
    store = str(build_store(root))
    configs = {}
    for stage, config in CONFIGS.items():
        configs[stage] = str(root / f"{stage}.yaml")
        Path(configs[stage]).write_text(yaml.safe_dump(config))
    runs = {stage: root / stage for stage in STAGES}
    common = {"steps": STEPS, "seed": 0, "device": "cpu"}
    train_tokenizer(TokenizerTrainOptions(data=store, out=str(runs["tokenizer"]), config=configs["tokenizer"],
                                          **common))
    tokenize_store(store, TokenizerFrameEncoder.from_checkpoint(str(runs["tokenizer"]), device="cpu"))
    train_phase1(Phase1TrainOptions(data=store, out=str(runs["phase1"]), config=configs["phase1"], **common))
    train_phase2(Phase2TrainOptions(data=store, wm=str(runs["phase1"]), out=str(runs["phase2"]), tasks=["reward"],
                                    config=configs["phase2"], **common))
    train_phase3(Phase3TrainOptions(data=store, agent=str(runs["phase2"]), out=str(runs["phase3"]),
                                    config=configs["phase3"], **common))
    return runs


def train_losses(run: Path) -> list[dict]:
    """The logged training metrics that are losses (names ending in loss or nll, or eq. 5's terms), per step."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    keep = lambda key: key.endswith(("loss", "nll")) or key in ("mse", "flow", "bootstrap", "x_mse")  # noqa: E731
    return [{k: v for k, v in row.items() if keep(k) or k == "step"} for row in rows if row["split"] == "train"]


def fixed_inputs(world) -> dict:
    """Inputs of one forward pass, the same every time: frames, noisy latents, (τ, d), actions."""
    g = torch.Generator().manual_seed(11)
    s_z, d_z = world.latent_shape
    actions = {f.name: torch.randint(f.size, (2, 4), generator=g) for f in world.action_fields}
    return {"frames": torch.randint(0, 256, (2, 2, 20, 20, 3), generator=g, dtype=torch.uint8),
            "z": torch.randn(2, 4, s_z, d_z, generator=g), "tau": torch.rand(2, 4, generator=g),
            "d": torch.full((2, 4), 0.25), "actions": actions, "has": torch.ones(2, 4, dtype=torch.bool)}


@torch.no_grad()
def model_outputs(folder: Path) -> dict[str, torch.Tensor]:
    """Every output the checkpoints in ``folder`` give on ``fixed_inputs``, loaded with the loaders."""
    from dreamer_model.checkpoint import load_agent, load_tokenizer, load_world_model, tokenizer_from_record

    torch.set_num_threads(1)
    out = {}
    tokenizer, _ = load_tokenizer(folder / "tokenizer.pt")
    world, _ = load_world_model(folder / "phase1.pt")
    x = fixed_inputs(world)
    out["tokenizer.recon"], out["tokenizer.z"] = tokenizer(x["frames"])
    out["phase1.x_pred"] = world(x["z"], x["tau"], x["d"], x["actions"], x["has"]).x_pred
    for stage in ("phase2", "phase3"):
        agent, state = load_agent(folder / f"{stage}.pt")
        task = torch.zeros(2, dtype=torch.long)
        result = agent.world(x["z"], x["tau"], x["d"], x["actions"], x["has"], agent=agent.agent_inputs(task, 4))
        h = agent.state(result.agent)
        out[f"{stage}.x_pred"], out[f"{stage}.h"] = result.x_pred, h
        out[f"{stage}.log_prob"] = agent.policy(h, first_only=True).log_prob(x["actions"])
        out[f"{stage}.reward"], out[f"{stage}.continue"] = agent.reward(h), agent.cont(h)
        out[f"{stage}.value"] = agent.value_of(h)
        out[f"{stage}.decoded"] = tokenizer_from_record(state["tokenizer"], state["path"]).decode(x["z"][:, :2].tanh())
    return out


def write_reference(folder: Path) -> None:
    """Run the pipeline in a scratch folder; keep each stage's final checkpoint and losses in ``folder``, and
    the outputs of the checkpoints on fixed inputs."""
    import tempfile

    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        runs = run_pipeline(Path(scratch))
        losses = {}
        for stage, run in runs.items():
            newest = sorted((run / "checkpoints").glob("step_*.pt"))[-1]
            shutil.copyfile(newest, folder / f"{stage}.pt")
            losses[stage] = train_losses(run)
    (folder / "losses.json").write_text(json.dumps(losses, indent=1) + "\n")
    torch.save(model_outputs(folder), folder / "outputs.pt")


if __name__ == "__main__":
    write_reference(Path(sys.argv[1]))
