"""dreamer-train rollout: an open-loop rollout decoded with the store's tokenizer into a GIF / mp4 of
real | tokenizer | world model, and the checks on which tokenizer may decode the latents."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from dreamer_model.configs import TokenizerConfig, TokenizerRun, TransformerConfig, to_dict
from dreamer_model.errors import ModelError
from dreamer_model.rollout import load_store_tokenizer, rollout_video
from dreamer_model.tokenizer import Tokenizer
from dreamer_model.train.checkpoint import model_hash, save_checkpoint
from dreamer_model.train.phase1 import Phase1TrainOptions, load_world_model, train_phase1
from dynamics_toy import D_Z, S_Z, write_toy_store
from test_phase1_train import SMALL

TOKENIZER = TokenizerRun("tiny", TokenizerConfig(
    height=8, width=8, patch=4, latent_tokens=S_Z, latent_dim=D_Z, context=2,
    encoder=TransformerConfig(dim=16, depth=1, heads=2, kv_heads=1, head_dim=8, registers=1, time_window=2),
    decoder=TransformerConfig(dim=16, depth=1, heads=2, kv_heads=1, head_dim=8, registers=1, time_window=2)))


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def save_tokenizer(run_dir: Path, seed: int = 0) -> str:
    torch.manual_seed(seed)
    model = Tokenizer(TOKENIZER.tokenizer)
    config = to_dict(TOKENIZER)
    state = {"kind": "tokenizer", "step": 0, "seed": seed, "config": config, "model": model.state_dict(),
             "model_hash": model_hash(model.state_dict(), config["tokenizer"])}
    save_checkpoint(run_dir, 0, state)
    return state["model_hash"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("rollout")
    store = write_toy_store(root / "store", episodes=4, length=30)
    digest = save_tokenizer(root / "tok")
    manifest_path = Path(store) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["latents"].update(checkpoint_hash=digest, tokenizer={"checkpoint": str(root / "tok")})
    manifest_path.write_text(json.dumps(manifest))
    train_phase1(Phase1TrainOptions(data=store, out=str(root / "wm"), steps=2, sets=list(SMALL), device="cpu"))
    return root, store


def test_rollout_gif_shows_real_tokenizer_and_prediction_side_by_side(setup):
    root, store = setup
    model, _ = load_world_model(root / "wm")
    report = rollout_video(model, load_store_tokenizer(store), store, "ep001", root / "out.gif", context=3, horizon=5,
                           start=2)
    assert report.context == 3 and report.horizon == 5
    assert len(report.psnr) == len(report.psnr_tokenizer) == len(report.latent_mse) == 5
    gif = Image.open(root / "out.gif")
    assert gif.n_frames == 8  # context + predicted frames, one row of three panels each
    assert gif.size[0] > 3 * 8 * 4 and gif.size[1] > 8 * 4
    report = rollout_video(model, load_store_tokenizer(store), store, "ep001", root / "out.mp4", context=3, horizon=5,
                           actions="both")
    with av.open(str(root / "out.mp4")) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(frames) == 8 and frames[0].shape[0] % 2 == 0 and frames[0].shape[1] % 2 == 0
    assert frames[0].shape[1] > 4 * 8 * 4  # real | tokenizer | recorded | random
    assert np.isfinite(report.latent_mse).all()


def test_rollout_refuses_a_tokenizer_that_did_not_make_the_latents(setup):
    root, store = setup
    save_tokenizer(root / "other", seed=1)
    with pytest.raises(ModelError, match="are not the ones that produced"):
        load_store_tokenizer(store, str(root / "other"))
    model, _ = load_world_model(root / "wm")
    with pytest.raises(ModelError, match="no 30-frame window|cannot read"):
        rollout_video(model, load_store_tokenizer(store), store, "ep001", root / "x.gif", context=10, horizon=20, start=1)
    with pytest.raises(ModelError, match="cannot read"):
        rollout_video(model, load_store_tokenizer(store), store, "nope", root / "x.gif", context=2, horizon=2)
    with pytest.raises(ModelError, match=r"must end in \.mp4, \.gif or \.npz"):
        rollout_video(model, load_store_tokenizer(store), store, "ep001", root / "x.avi", context=2, horizon=2)
    with pytest.raises(ModelError, match="recorded, random or both"):
        rollout_video(model, load_store_tokenizer(store), store, "ep001", root / "x.gif", context=2, horizon=2, actions="left")
    with pytest.raises(ModelError, match="not a dynamics checkpoint"):
        load_world_model(root / "tok")
