"""``dreamer-train tokenizer``: bit-exact resume, run artefacts, CLI errors, DDP, Ctrl-C, then tokenize."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torchvision
import yaml
from typer.testing import CliRunner

from cli.data import app as data_app
from cli.train import app as train_app
from dreamer_data.store.manifest import load_manifest
from dreamer_data.store.verify import verify_store
from dreamer_model.checkpoint import list_checkpoints, load_checkpoint
from dreamer_model.train.logging import read_metrics
from dreamer_model.train.tokenizer import TokenizerTrainOptions, train_tokenizer
from test_tokenize_store import make_frame_store

MINI_RUN = {
    "tokenizer": {"height": 16, "width": 16, "patch": 8, "latent_tokens": 4, "latent_dim": 8, "context": 2,
                  "encoder": {"dim": 32, "depth": 2, "heads": 2, "kv_heads": 1, "head_dim": 16, "registers": 1,
                              "time_every": 2},
                  "decoder": {"dim": 32, "depth": 2, "heads": 2, "kv_heads": 1, "head_dim": 16, "registers": 1,
                              "time_every": 2}},
    "train": {"batch": 2, "warmup": 2, "log_every": 1, "eval_every": 2, "checkpoint_every": 2, "eval_windows": 3,
              "threads": 1},
}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    return make_frame_store(tmp_path_factory.mktemp("data") / "store", episodes=4, length=12)


@pytest.fixture
def mini_config(tmp_path) -> str:
    path = tmp_path / "mini.yaml"
    path.write_text(yaml.safe_dump(MINI_RUN))
    return str(path)


def options(store, out, config, **changes) -> TokenizerTrainOptions:
    return TokenizerTrainOptions(data=store, out=str(out), config=config, lpips_weight=0.0, device="cpu",
                                 seed=3, **changes)


def test_resume_is_bit_exact(store, mini_config, tmp_path):
    train_tokenizer(options(store, tmp_path / "straight", mini_config, steps=4))
    train_tokenizer(options(store, tmp_path / "resumed", mini_config, steps=2))
    train_tokenizer(options(store, tmp_path / "resumed", mini_config, steps=4, resume=True))
    a = load_checkpoint(tmp_path / "straight", "tokenizer")
    b = load_checkpoint(tmp_path / "resumed", "tokenizer")
    assert a["step"] == b["step"] == 4
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    for key, state in a["optimizer"]["state"].items():
        for name, value in state.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(b["optimizer"]["state"][key][name]))
    assert a["loss_norm"] == b["loss_norm"] or all(
        torch.equal(a["loss_norm"][k][n], b["loss_norm"][k][n]) for k in a["loss_norm"] for n in a["loss_norm"][k])
    assert a["model_hash"] == b["model_hash"]
    straight = [m for m in read_metrics(tmp_path / "straight") if m["split"] == "train"]
    resumed = [m for m in read_metrics(tmp_path / "resumed") if m["split"] == "train"]
    assert [m["loss"] for m in straight] == [m["loss"] for m in resumed]  # same data, same masks, same losses


def test_run_artefacts(store, mini_config, tmp_path):
    out = tmp_path / "run"
    result = train_tokenizer(options(store, out, mini_config, steps=4))
    assert result["step"] == 4 and result["psnr"] > 0
    metrics = read_metrics(out)
    train_lines = [m for m in metrics if m["split"] == "train"]
    heldout = [m for m in metrics if m["split"] == "heldout"]
    assert [m["step"] for m in train_lines] == [1, 2, 3, 4] and [m["step"] for m in heldout] == [2, 4]
    assert {"loss", "psnr", "mse", "lr", "frames_per_s", "grad_norm"} <= set(train_lines[0])
    assert {"psnr", "psnr_masked"} <= set(heldout[0])
    assert [p.name for p in list_checkpoints(out)] == ["step_00000002.pt", "step_00000004.pt"]
    from PIL import Image

    grid = Image.open(out / "samples" / "step_00000004.png")
    assert grid.size[1] == 4 * (16 * 2 + 2)  # four rows: original, masked in, masked out, unmasked
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(out / "tb"))
    assert yaml.safe_load((out / "config.yaml").read_text())["tokenizer"]["latent_tokens"] == 4
    state = load_checkpoint(out, "tokenizer")
    assert state["data"]["heldout"] and set(state["data"]["heldout"]) <= {"ep0", "ep1", "ep2", "ep3"}


def test_cli_train_then_tokenize(store, mini_config, tmp_path):
    out = tmp_path / "run"
    runner = CliRunner()
    result = runner.invoke(train_app, ["tokenizer", "--data", store, "--out", str(out), "--config", mini_config,
                                       "--steps", "2", "--lpips-weight", "0", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "tokenizer at step 2" in result.output
    again = runner.invoke(train_app, ["tokenizer", "--data", store, "--out", str(out), "--config", mini_config,
                                      "--steps", "2", "--lpips-weight", "0", "--device", "cpu"])
    assert again.exit_code == 2 and "pass --resume" in again.output

    tokenized = runner.invoke(data_app, ["tokenize", store, "--ckpt", str(out), "--device", "cpu"])
    assert tokenized.exit_code == 0, tokenized.output
    manifest = load_manifest(store)
    state = load_checkpoint(out, "tokenizer")
    assert manifest["latents"]["checkpoint_hash"] == state["model_hash"]
    assert manifest["latents"]["tokenizer"]["step"] == 2
    assert verify_store(store) == []


@pytest.mark.parametrize("argv,message", [
    (["--data", "{tmp}/missing"], "not a dreamer store"),
    (["--set", "tokenizer.height=32", "--set", "tokenizer.width=32"], "frames are 16x16x3 but the tokenizer config "
                                                                        "expects 32x32x3"),
    (["--set", "tokenizer.nonsense=1"], "--set: unknown key 'tokenizer.nonsense'"),
    (["--set", "train.batch=two"], "--set: train.batch must be int, got 'two'"),
    (["--resume"], "--resume but the run has no checkpoint"),
    (["--preset", "huge"], "unknown preset 'huge'"),
])
def test_bad_input_is_one_clear_line(store, mini_config, tmp_path, argv, message):
    args = ["tokenizer", "--data", store, "--out", str(tmp_path / "run"), "--config", mini_config, "--steps", "1",
            "--lpips-weight", "0", "--device", "cpu"]
    args += [a.replace("{tmp}", str(tmp_path)) for a in argv]
    result = CliRunner().invoke(train_app, args)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()) and "Traceback" not in result.output


def test_bad_yaml_names_the_file_and_key(store, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("tokenizer:\n  encoder:\n    depthh: 3\n")
    result = CliRunner().invoke(train_app, ["tokenizer", "--data", store, "--out", str(tmp_path / "run"),
                                            "--config", str(bad), "--device", "cpu"])
    assert result.exit_code == 2
    assert f"{bad}: unknown key 'tokenizer.encoder.depthh'" in " ".join(result.output.split())


def test_missing_lpips_weights_name_the_cache_path_and_the_escape(store, mini_config, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    result = CliRunner().invoke(train_app, ["tokenizer", "--data", store, "--out", str(tmp_path / "run"),
                                            "--config", mini_config, "--steps", "1", "--device", "cpu"])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "empty-torch-home/hub/checkpoints/alexnet-owt-7be5be79.pth" in text.replace(" ", "")
    assert "--lpips-weight 0" in text


@pytest.fixture
def alexnet_torch_home(tmp_path, monkeypatch):
    """A TORCH_HOME whose hub cache holds an AlexNet state dict under the file name torchvision expects
    (random weights: what is tested is that the perceptual path runs and trains, not ImageNet features)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    path = tmp_path / "torch" / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    path.parent.mkdir(parents=True)
    torch.manual_seed(1)
    torch.save(torchvision.models.alexnet().state_dict(), path)
    return path


def test_lpips_on_trains_by_eq5_end_to_end(alexnet_torch_home, tmp_path):
    """The paper's default loss path through the trainer: L = L_MSE / RMS(L_MSE) + 0.2 · L_LPIPS / RMS(L_LPIPS)
    on 32x32 frames (AlexNet-LPIPS needs at least 31 pixels a side), the logged loss restated from the logged
    terms, and the perceptual term shown to steer the weights."""
    store = make_frame_store(tmp_path / "store32", episodes=4, length=12, size=32)
    run = {**MINI_RUN, "tokenizer": {**MINI_RUN["tokenizer"], "height": 32, "width": 32},
           "train": {**MINI_RUN["train"], "eval_every": 15, "checkpoint_every": 30}}
    config = tmp_path / "mini32.yaml"
    config.write_text(yaml.safe_dump(run))
    steps, decay, weight = 30, 0.99, 0.2  # tokenizer.rms_decay and the paper's λ, the config's defaults
    with_lpips = train_tokenizer(TokenizerTrainOptions(data=store, out=str(tmp_path / "lpips"), config=str(config),
                                                       device="cpu", seed=3, steps=steps))  # lpips_weight: default
    state = load_checkpoint(tmp_path / "lpips", "tokenizer")
    assert state["config"]["tokenizer"]["lpips_weight"] == weight and with_lpips["step"] == steps
    lines = [m for m in read_metrics(tmp_path / "lpips") if m["split"] == "train"]
    assert [m["step"] for m in lines] == list(range(1, steps + 1))
    assert all(m["lpips"] is not None and 0 < m["lpips"] < 1 for m in lines)  # logged, finite, positive

    # eq. 5 by hand: each term over the root of a bias-corrected EMA of its square (so step 1 is 1 + λ)
    square = {"mse": 0.0, "lpips": 0.0}
    for n, m in enumerate(lines, start=1):
        normalised = {}
        for term in square:
            square[term] = decay * square[term] + (1 - decay) * m[term] ** 2
            normalised[term] = m[term] / math.sqrt(square[term] / (1 - decay ** n))
        assert m["loss"] == pytest.approx(normalised["mse"] + weight * normalised["lpips"], rel=1e-5), n
    assert lines[0]["loss"] == pytest.approx(1 + weight, rel=1e-6)
    lpips_norm = state["loss_norm"]["lpips"]
    assert int(lpips_norm["updates"]) == steps
    assert float(lpips_norm["mean_square"]) == pytest.approx(square["lpips"], rel=1e-6)

    # it learns: both terms fall over the run, on the training windows and on the held-out episodes
    # (seeds 0-7 measured: +3.3 to +4.0 dB, LPIPS × 0.28-0.38, held-out +1.8 to +1.95 dB)
    first, last = lines[:5], lines[-5:]
    mean = lambda rows, key: sum(m[key] for m in rows) / len(rows)  # noqa: E731
    assert mean(last, "psnr") > mean(first, "psnr") + 2.0  # dB
    assert mean(last, "lpips") < 0.6 * mean(first, "lpips")
    heldout = [m["psnr"] for m in read_metrics(tmp_path / "lpips") if m["split"] == "heldout"]
    assert len(heldout) == 2 and heldout[1] > heldout[0] + 1.0

    # the perceptual term reaches the gradient: the same run without it (same init, windows and masks)
    # reconstructs step 1 identically, then takes different steps
    train_tokenizer(TokenizerTrainOptions(data=store, out=str(tmp_path / "plain"), config=str(config),
                                          lpips_weight=0.0, device="cpu", seed=3, steps=steps))
    plain = [m for m in read_metrics(tmp_path / "plain") if m["split"] == "train"]
    assert "lpips" not in plain[0] and plain[0]["loss"] == pytest.approx(1.0, rel=1e-6)
    assert plain[0]["mse"] == lines[0]["mse"] and plain[1]["mse"] != lines[1]["mse"]
    plain_state = load_checkpoint(tmp_path / "plain", "tokenizer")["model"]
    assert any(not torch.equal(plain_state[name], tensor) for name, tensor in state["model"].items())


def test_lpips_on_frames_too_small_for_its_backbone_is_one_clear_line(alexnet_torch_home, store, mini_config,
                                                                     tmp_path):
    result = CliRunner().invoke(train_app, ["tokenizer", "--data", store, "--out", str(tmp_path / "run"),
                                            "--config", mini_config, "--steps", "1", "--device", "cpu"])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "LPIPS (alex) needs frames of at least 31x31 pixels, got 16x16" in text and "--lpips-weight 0" in text
    assert "Traceback" not in result.output


def _train_command(store, out, config, steps):
    return ["tokenizer", "--data", store, "--out", str(out), "--config", config, "--steps", str(steps),
            "--lpips-weight", "0", "--device", "cpu"]


# Run by every rank under torchrun: train, then save this rank's weights before and after (a checkpoint
# holds rank 0's only).
DDP_RANK_DUMP = """
import sys
import torch
from dreamer_model.train.tokenizer import TokenizerTrainOptions, TokenizerTrainer
store, out, config = sys.argv[1:]
trainer = TokenizerTrainer(TokenizerTrainOptions(data=store, out=out, config=config, steps=2, lpips_weight=0.0,
                                                 device="cpu", seed=3))
try:
    initial = {name: tensor.clone() for name, tensor in trainer.model.state_dict().items()}
    trainer.fit()
    torch.save({"rank": trainer.dist.rank, "world_size": trainer.dist.world_size, "initial": initial,
                "final": trainer.model.state_dict()}, f"{out}/rank{trainer.dist.rank}.pt")
finally:
    trainer.close()
"""


def _torchrun(*argv) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "--no-python",
            sys.executable, *argv]


def test_ddp_two_processes(store, mini_config, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = _torchrun("-c", "from cli.train import main; main()", *_train_command(store, out, mini_config, 2))
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240, cwd=Path(__file__).parents[1])
    assert result.returncode == 0, result.stderr[-3000:]
    state = load_checkpoint(out, "tokenizer")
    assert state["step"] == 2 and state["world_size"] == 2
    assert [m["step"] for m in read_metrics(out) if m["split"] == "train"] == [1, 2]  # rank 0 logs alone


def test_ddp_ranks_end_with_identical_weights(store, mini_config, tmp_path):
    """Each rank trains on its own windows with its own patch masks; DDP averages the gradients, so both
    ranks must take the same steps and end with the same weights, bit for bit (and those in the checkpoint)."""
    out = tmp_path / "ddp"
    out.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(_torchrun("-c", DDP_RANK_DUMP, store, str(out), mini_config), env=env,
                            capture_output=True, text=True, timeout=240, cwd=Path(__file__).parents[1])
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert [(d["rank"], d["world_size"]) for d in ranks] == [(0, 2), (1, 2)]
    saved = load_checkpoint(out, "tokenizer")
    assert saved["step"] == 2
    names = sorted(ranks[0]["final"])
    assert names == sorted(ranks[1]["final"]) == sorted(saved["model"])
    for name in names:
        assert torch.equal(ranks[0]["initial"][name], ranks[1]["initial"][name]), name  # the same start
        assert torch.equal(ranks[0]["final"][name], ranks[1]["final"][name]), name
        assert torch.equal(ranks[0]["final"][name], saved["model"][name]), name
    # and they trained: every tensor (all are parameters) took its two steps. Without the gradient
    # all-reduce every one of them ends different on the two ranks (measured: 59 of 59).
    assert [n for n in names if torch.equal(ranks[0]["initial"][n], ranks[0]["final"][n])] == []


def test_ctrl_c_checkpoints_and_resume_continues(store, mini_config, tmp_path):
    out = tmp_path / "interrupted"
    process = subprocess.Popen([sys.executable, "-c", "from cli.train import main; main()",
                                *_train_command(store, out, mini_config, 100000)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               cwd=Path(__file__).parents[1], env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        for _ in range(600):  # wait (up to ~120 s) until a few steps are logged
            if len([m for m in read_metrics(out) if m["split"] == "train"]) >= 3:
                break
            if process.poll() is not None:
                break
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err[-2000:]
    assert "continue with --resume" in err
    state = load_checkpoint(out, "tokenizer")
    logged = max(m["step"] for m in read_metrics(out) if m["split"] == "train")
    assert state["step"] == logged >= 3  # saved at the step boundary where it stopped
    resumed = CliRunner().invoke(train_app, [*_train_command(store, out, mini_config, state["step"] + 1), "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert load_checkpoint(out, "tokenizer")["step"] == state["step"] + 1
