"""``tokenize``: latents of every frame into the store — verified, resumable, published atomically."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr
from typer.testing import CliRunner

from cli.data import app as data_app
from dreamer_data.errors import StoreError
from dreamer_data.store.fields import FieldSpec
from dreamer_data.store.location import StoreLocation
from dreamer_data.store.manifest import load_manifest, new_manifest
from dreamer_data.store.staging import EpisodeStager
from dreamer_data.store.verify import verify_store
from dreamer_data.store.writer import StoreWriter
from dreamer_data.tokenize import PROGRESS_FILE, tokenize_store
from dreamer_model.configs import TokenizerConfig, TransformerConfig
from dreamer_model.tokenizer import Tokenizer
from dreamer_model.tokenizer.frame_encoder import TokenizerFrameEncoder

MINI = TransformerConfig(dim=32, depth=2, heads=2, kv_heads=1, head_dim=16, registers=1, time_every=2)
MINI_TOKENIZER = TokenizerConfig(height=16, width=16, patch=8, latent_tokens=4, latent_dim=8, context=3,
                                 encoder=MINI, decoder=MINI)


def bouncing_square(length: int, size: int, seed: int) -> np.ndarray:
    """Frames (length, size, size, 3) uint8: a coloured square bouncing over a two-tone background."""
    rng = np.random.default_rng(seed)
    frames = np.zeros((length, size, size, 3), dtype=np.uint8)
    frames[..., 1] = 40
    frames[:, size // 2:, :, 2] = 90
    side = max(2, size // 4)
    pos, vel = rng.integers(0, size - side, 2), rng.choice([-1, 1], 2) * max(1, size // 16)
    colour = rng.integers(120, 256, 3)
    for t in range(length):
        frames[t, pos[0]:pos[0] + side, pos[1]:pos[1] + side] = colour
        for axis in range(2):
            if not 0 <= pos[axis] + vel[axis] <= size - side:
                vel[axis] = -vel[axis]
            pos[axis] += vel[axis]
    return frames


def make_frame_store(root: Path, episodes: int = 3, length: int = 10, size: int = 16, seed: int = 0) -> str:
    """A real store (StoreWriter + staging, as ingest writes it) holding bouncing-square episodes."""
    spec = FieldSpec("frames", "uint8", (size, size, 3), chunk_rows=8)
    template = new_manifest(source={"kind": "test", "settings": {}},
                            observation={"height": size, "width": size, "channels": 3, "fps": 10},
                            actions={}, fields={"frames": spec}, rewards_present=False)
    writer = StoreWriter(StoreLocation(str(root)), template)
    for e in range(episodes):
        stager = EpisodeStager(root.parent / f"{root.name}-staging", f"ep{e}", {"frames": spec}, file=f"ep{e}")
        stager.append({"frames": bouncing_square(length + e, size, seed + e)})
        writer.commit(stager.finish(source_file=f"ep{e}", source_index=e))
    writer.flush()
    return str(root)


def mini_encoder(seed: int = 0, cfg: TokenizerConfig = MINI_TOKENIZER) -> TokenizerFrameEncoder:
    torch.manual_seed(seed)
    return TokenizerFrameEncoder(Tokenizer(cfg), f"sha256:test-{seed}", {"checkpoint": f"mini-{seed}"})


class FailingEncoder(TokenizerFrameEncoder):
    """A real encoder that dies (like a killed process) when it reaches episode ``fail_at``."""

    def __init__(self, inner: TokenizerFrameEncoder, fail_at: int):
        self.__dict__.update(inner.__dict__)
        self.episodes_seen, self.fail_at = 0, fail_at

    def reset(self) -> None:
        if self.episodes_seen == self.fail_at:
            raise KeyboardInterrupt
        self.episodes_seen += 1
        super().reset()


def test_latents_match_the_model_and_verify_covers_them(tmp_path):
    store = make_frame_store(tmp_path / "store")
    encoder = mini_encoder()
    report = tokenize_store(store, encoder, batch_frames=4)  # batches cut episodes: the cache carries context
    assert (report.episodes, report.frames) == (3, 10 + 11 + 12)
    manifest = load_manifest(store)
    assert manifest["fields"]["latents"]["shape"] == [4, 8] and manifest["fields"]["latents"]["dtype"] == "float16"
    assert manifest["latents"]["checkpoint_hash"] == "sha256:test-0" and manifest["latents"]["shape"] == [4, 8]
    assert all("latents" in episode["checksums"] for episode in manifest["episodes"])
    assert not StoreLocation(store).exists(PROGRESS_FILE)
    assert verify_store(store) == []

    group = zarr.open_group(store, mode="r")
    latents = group["data/latents"][:]
    frames = group["data/frames"][:]
    with torch.no_grad():
        for episode in manifest["episodes"]:
            clip = torch.from_numpy(frames[episode["start"]:episode["end"]])[None]
            expected = encoder.model.encode(clip)[0].numpy()  # the whole episode in one causal pass
            np.testing.assert_allclose(latents[episode["start"]:episode["end"]], expected, atol=2e-3)

    zarr.open_group(store, mode="r+")["data/latents"][5] = 0  # corrupt one row: verify must notice
    problems = verify_store(store)
    assert len(problems) == 1 and "data/latents of episode ep0" in problems[0]


def test_encoder_chunks_a_batch_without_changing_latents():
    """A batch is encoded in chunks (the cache carries context across them): same latents as one pass."""
    encoder = mini_encoder()
    encoder.chunk_frames = 2  # shorter than the tokenizer's context of 3
    frames = bouncing_square(11, 16, 5)
    encoder.reset()
    chunked = np.concatenate([encoder.encode(frames[:7]), encoder.encode(frames[7:])])
    with torch.no_grad():
        expected = encoder.model.encode(torch.from_numpy(frames)[None])[0].numpy()
    np.testing.assert_allclose(chunked, expected, atol=2e-5)


def test_interrupted_tokenize_resumes_and_publishes_only_when_complete(tmp_path):
    store = make_frame_store(tmp_path / "store")
    clean = make_frame_store(tmp_path / "clean")
    tokenize_store(clean, mini_encoder(), batch_frames=5)
    with pytest.raises(KeyboardInterrupt):
        tokenize_store(store, FailingEncoder(mini_encoder(), fail_at=2), batch_frames=5)
    manifest = load_manifest(store)
    assert "latents" not in manifest["fields"] and manifest["latents"] is None  # nothing half-done is listed
    assert verify_store(store) == []
    report = tokenize_store(store, mini_encoder(), batch_frames=5)
    assert report.resumed_from == 2 and report.episodes == 1
    assert verify_store(store) == []
    assert np.array_equal(zarr.open_group(store, mode="r")["data/latents"][:],
                          zarr.open_group(clean, mode="r")["data/latents"][:])
    assert load_manifest(store)["episodes"] == load_manifest(clean)["episodes"]


def test_another_checkpoint_resumes_nothing_and_needs_overwrite(tmp_path):
    store = make_frame_store(tmp_path / "store")
    with pytest.raises(KeyboardInterrupt):
        tokenize_store(store, FailingEncoder(mini_encoder(seed=1), fail_at=1))
    report = tokenize_store(store, mini_encoder(seed=0))  # a different checkpoint starts over
    assert report.resumed_from == 0 and report.episodes == 3
    assert tokenize_store(store, mini_encoder(seed=0)).already_done
    with pytest.raises(StoreError, match="already holds latents of checkpoint sha256:test-0.*--overwrite"):
        tokenize_store(store, mini_encoder(seed=1))
    before = zarr.open_group(store, mode="r")["data/latents"][:]
    tokenize_store(store, mini_encoder(seed=1), overwrite=True)
    manifest = load_manifest(store)
    assert manifest["latents"]["checkpoint_hash"] == "sha256:test-1"
    path = manifest["latents"]["path"]  # written beside the old latents, which stay for open readers
    assert path == manifest["fields"]["latents"]["path"] == "data/latents-v2-test1"
    assert not np.array_equal(zarr.open_group(store, mode="r")[path][:], before)
    assert np.array_equal(zarr.open_group(store, mode="r")["data/latents"][:], before)
    assert verify_store(store) == []


def test_refuses_a_tokenizer_that_does_not_fit_the_store(tmp_path):
    store = make_frame_store(tmp_path / "store", episodes=2, size=16)
    wrong_size = mini_encoder(cfg=replace(MINI_TOKENIZER, height=32, width=32))
    with pytest.raises(StoreError, match="frames are 16x16 but the tokenizer checkpoint was trained on 32x32"):
        tokenize_store(store, wrong_size)
    huge_patch = mini_encoder(cfg=replace(MINI_TOKENIZER, patch=32))
    with pytest.raises(StoreError, match="patch size 32 does not fit 16x16 frames"):
        tokenize_store(store, huge_patch)
    assert "latents" not in load_manifest(store)["fields"]


def test_cli_missing_checkpoint_is_one_line(tmp_path):
    store = make_frame_store(tmp_path / "store", episodes=2)
    result = CliRunner().invoke(data_app, ["tokenize", store, "--ckpt", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "no such checkpoint file or run directory" in result.output and "Traceback" not in result.output
