"""dreamer-train rollout: an open-loop rollout decoded with the store's tokenizer into a GIF / mp4 of
real | tokenizer | world model, and the checks on which tokenizer may decode the latents.

The videos are read back and cut into their panels (the layout restated from ``compose``: a 14-pixel
label strip, then 8x8 frames scaled 4x with nearest neighbours, 4 pixels apart); each panel is
compared with what it must show: the store's frames, the decoder's reading of the stored latents, and
(in the context frames) the same decode in the world model's column. The ``.npz`` arrays of the same
rollout are checked against the store in ``test_rollout_arrays.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import zarr
from PIL import Image

from dreamer_data.store.manifest import load_manifest
from dreamer_model.checkpoint import load_store_tokenizer, load_world_model, model_hash, save_checkpoint
from dreamer_model.configs import TokenizerConfig, TokenizerRun, TransformerConfig, to_dict
from dreamer_model.errors import ModelError
from dreamer_model.rollout import rollout_video
from dreamer_model.tokenizer import Tokenizer
from dreamer_model.train.phase1 import Phase1TrainOptions, train_phase1
from dynamics_toy import D_Z, S_Z, write_toy_store
from test_phase1_train import SMALL

TOKENIZER = TokenizerRun("tiny", TokenizerConfig(
    height=8, width=8, patch=4, latent_tokens=S_Z, latent_dim=D_Z, context=2,
    encoder=TransformerConfig(dim=16, depth=1, heads=2, kv_heads=1, head_dim=8, registers=1, time_window=2),
    decoder=TransformerConfig(dim=16, depth=1, heads=2, kv_heads=1, head_dim=8, registers=1, time_window=2)))


pytestmark = pytest.mark.usefixtures("one_thread")


LABEL, SCALE, GAP = 14, 4, 4  # compose(): label strip height, nearest-neighbour scale, gap between panels


def save_tokenizer(run_dir: Path, seed: int = 0) -> str:
    """A random tokenizer whose decoder draws the latents: a freshly initialised decoder reads its patch
    queries far more than the latents (decodes of two different dot cells differ by ≤ 3 levels), so a
    panel showing the wrong frame would pass for the right one. With zero patch queries every patch is a
    function of the latents alone, and 4x output weights spread it over the 0-255 range: decodes of any
    two cells then differ by ≥ 69 levels at some pixel (measured), while each frame holds few colours."""
    torch.manual_seed(seed)
    model = Tokenizer(TOKENIZER.tokenizer)
    with torch.no_grad():
        model.patch_queries.zero_()
        model.to_pixels.weight.mul_(4.0)
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


def expected_panels(store: str, tokenizer: Tokenizer, episode: str, start: int, length: int):
    """What the real and tokenizer panels must show: the store's frames at the window's rows, and the
    decoder's reading of the stored latents there (rounded to uint8 as any image is)."""
    first = next(e["start"] for e in load_manifest(store)["episodes"] if e["id"] == episode) + start
    group = zarr.open_group(store, mode="r")
    real = group["data/frames"][first:first + length]
    with torch.no_grad():
        latents = torch.from_numpy(group["data/latents"][first:first + length]).float()[None]
        decoded = (tokenizer.decode(latents)[0].clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()
    return real.astype(int), decoded.astype(int)


def panel_blocks(video: np.ndarray, columns: int, size: int = 8) -> list[np.ndarray]:
    """Frames (T, H', W', 3) of a composed video → each column's panel as blocks (T, 8, 4, 8, 4, 3): one 4x4
    block of screen pixels per frame pixel."""
    t, side = len(video), size * SCALE
    assert video.shape[2] >= columns * (side + GAP) - GAP and video.shape[1] >= LABEL + side
    return [video[:, LABEL:LABEL + side, c * (side + GAP):c * (side + GAP) + side].astype(int)
            .reshape(t, size, SCALE, size, SCALE, 3) for c in range(columns)]


def read_gif(path: Path) -> np.ndarray:
    gif = Image.open(path)
    frames = []
    for i in range(gif.n_frames):
        gif.seek(i)
        frames.append(np.asarray(gif.convert("RGB")))
    return np.stack(frames)


def test_gif_panels_are_the_stored_frames_their_decode_and_the_prediction(setup):
    root, store = setup
    model, _ = load_world_model(root / "wm")
    tokenizer = load_store_tokenizer(store)
    context, horizon, start = 3, 5, 2
    report = rollout_video(model, tokenizer, store, "ep001", root / "out.gif", context=context, horizon=horizon,
                           start=start)
    assert report.context == context and report.horizon == horizon
    assert len(report.psnr) == len(report.psnr_tokenizer) == len(report.latent_mse) == horizon
    frames = read_gif(report.path)
    assert frames.shape[0] == context + horizon  # one row of three panels per frame
    # GIF stores each frame through a palette of at most 256 colours; these frames use fewer (the label
    # text, two colours of the dot world and a few per decoded frame), so no colour was merged with
    # another and every panel comes back exactly
    assert max(len(np.unique(frame.reshape(-1, 3), axis=0)) for frame in frames) < 256
    blocks = panel_blocks(frames, 3)
    for b in blocks:  # nearest-neighbour scaling: each frame pixel is a uniform 4x4 block
        assert (b == b[:, :, :1, :, :1]).all()
    real, recon, imagined = (b[:, :, 0, :, 0] for b in blocks)
    stored, decoded = expected_panels(store, tokenizer, "ep001", start, context + horizon)
    np.testing.assert_array_equal(real, stored)
    np.testing.assert_array_equal(recon, decoded)
    # the world model's column starts from the real context latents: those frames are their decode (±1
    # level where the longer sequence changes float rounding in the decoder)
    assert np.abs(imagined[:context] - decoded[:context]).max() <= 1
    # and it goes on with the predicted frames: the same rollout (same seed) written as arrays
    arrays = rollout_video(model, tokenizer, store, "ep001", root / "out.npz", context=context, horizon=horizon,
                           start=start)
    with np.load(arrays.path) as npz:
        np.testing.assert_array_equal(imagined, npz["imagined"])
    assert report.psnr == arrays.psnr


def test_mp4_panels_match_the_stored_frames_and_their_decode_within_h264_loss(setup):
    root, store = setup
    model, _ = load_world_model(root / "wm")
    tokenizer = load_store_tokenizer(store)
    context, horizon = 3, 5
    report = rollout_video(model, tokenizer, store, "ep001", root / "out.mp4", context=context, horizon=horizon,
                           actions="both")
    with av.open(str(report.path)) as container:
        frames = np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])
    assert len(frames) == context + horizon and frames.shape[1] % 2 == 0 and frames.shape[2] % 2 == 0
    assert np.isfinite(report.latent_mse).all()
    # H.264 is lossy: compare the mean of each 4x4 block with the frame pixel it shows. The dot world is
    # black and white (no chroma): within 8 levels (≤ 1.5 measured) against 255 between dot and floor.
    # The decoded panels are saturated colours, and H.264 keeps full-resolution luma but quantises chroma
    # coarsely (up to ~40 levels of R, G or B measured), so they are compared in luma (BT.601 weights,
    # as the encoder's rgb → yuv): within 8 levels (≤ 6 measured), while the decodes of two different dot
    # cells differ by ≥ 31 levels of luma at some pixel.
    real, recon, recorded, random = (b.mean(axis=(2, 4)) for b in panel_blocks(frames, 4))
    stored, decoded = expected_panels(store, tokenizer, "ep001", 0, context + horizon)
    assert np.abs(real - stored).max() <= 8
    luma = lambda rgb: rgb @ np.array([0.299, 0.587, 0.114])  # noqa: E731
    assert np.abs(luma(recon) - luma(decoded)).max() <= 8
    for imagined in (recorded, random):  # both predictions start from the same real context
        assert np.abs(luma(imagined[:context]) - luma(decoded[:context])).max() <= 8


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
