"""``dreamer-train rollout --out X.npz`` on a real MinAtar store: the panels as arrays anyone can score.

A short real pipeline (tokenizer → tokenize → phase 1, a few steps each: what is checked is what each
array must equal, not how good the model is): ``real`` is the store's frames at ``rows``, ``tokenizer``
the decode of the stored latents, ``imagined`` starts with the same decoded context; the report scores
the panels object by object against the stored grid.
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import torch
import zarr

from conftest import cli_command
from dreamer_data.store.manifest import load_manifest
from dreamer_data.tokenize import tokenize_store
from dreamer_model.checkpoint import load_store_tokenizer, load_world_model
from dreamer_model.rollout import rollout_video
from dreamer_model.tokenizer.frame_encoder import TokenizerFrameEncoder
from dreamer_model.train.phase1 import Phase1TrainOptions, train_phase1
from dreamer_model.train.tokenizer import TokenizerTrainOptions, train_tokenizer
from test_phase1_train import SMALL

TOKENIZER_SETS = ["tokenizer.height=20", "tokenizer.width=20", "tokenizer.patch=4", "tokenizer.latent_tokens=4",
                  "tokenizer.latent_dim=8", "tokenizer.context=1", "tokenizer.encoder.dim=32",
                  "tokenizer.encoder.depth=1", "tokenizer.decoder.dim=32", "tokenizer.decoder.depth=1",
                  "train.batch=8", "train.eval_windows=4"]


@pytest.fixture(scope="module")
def world(breakout_store, tmp_path_factory):
    root = tmp_path_factory.mktemp("rollout-arrays")
    store = root / "store"
    shutil.copytree(breakout_store, store)
    train_tokenizer(TokenizerTrainOptions(data=str(store), out=str(root / "tok"), steps=3, sets=TOKENIZER_SETS,
                                          lpips_weight=0.0, device="cpu"))
    tokenize_store(str(store), TokenizerFrameEncoder.from_checkpoint(str(root / "tok")))
    train_phase1(Phase1TrainOptions(data=str(store), out=str(root / "wm"), steps=2, sets=list(SMALL), device="cpu"))
    return root, str(store)


def test_npz_holds_real_tokenizer_and_imagined_panels_over_the_same_rows(world):
    root, store = world
    episode = load_manifest(store)["episodes"][2]
    model, _ = load_world_model(str(root / "wm"))
    tokenizer = load_store_tokenizer(store)
    context, frames, start = 3, 5, 4
    report = rollout_video(model, tokenizer, store, episode["id"], root / "out.npz", context, frames, start=start)
    with np.load(report.path, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    assert sorted(arrays) == ["context", "imagined", "real", "rows", "tokenizer"]
    t = context + frames
    assert int(arrays["context"]) == context
    np.testing.assert_array_equal(arrays["rows"], episode["start"] + start + np.arange(t))
    group = zarr.open_group(store, mode="r")
    rows = arrays["rows"]
    np.testing.assert_array_equal(arrays["real"], group["data/frames"][rows[0]:rows[-1] + 1])
    for name in ("real", "tokenizer", "imagined"):
        assert arrays[name].shape == (t, 20, 20, 3) and arrays[name].dtype == np.uint8, name
    with torch.no_grad():  # the decoder's own reading of the stored latents, rounded as the panels are
        latents = torch.from_numpy(group["data/latents"][rows[0]:rows[-1] + 1]).float()[None]
        decoded = (tokenizer.decode(latents)[0].clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()
    np.testing.assert_array_equal(arrays["tokenizer"], decoded)
    # imagination is decoded from the real context latents first: those frames are the tokenizer's (±1 level
    # where a longer sequence changes float rounding in the decoder)
    gap = np.abs(arrays["imagined"][:context].astype(int) - arrays["tokenizer"][:context].astype(int))
    assert gap.max() <= 1
    objects = report.objects
    assert set(objects["tokenizer"]) == {"paddle", "ball", "trail", "brick"}
    assert sorted(objects["imagined"]) == [1, 4]  # h ≤ frames
    assert objects["tokenizer"]["paddle"]["cells"] == t  # one paddle cell in every frame


def test_cli_writes_npz_and_refuses_other_suffixes(world, tmp_path):
    root, store = world
    episode = load_manifest(store)["episodes"][0]["id"]
    base = [*cli_command("dreamer-train"), "rollout", "--ckpt", str(root / "wm"), "--data", store, "--episode", episode,
            "--context", "2", "--frames", "4", "--device", "cpu"]
    done = subprocess.run([*base, "--out", str(tmp_path / "r.npz")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "r.npz").is_file() and "object recall" in done.stderr
    bad = subprocess.run([*base, "--out", str(tmp_path / "r.avi")], capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "r.avi: output must end in .mp4, .gif or .npz" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.glob("*.avi*"))
