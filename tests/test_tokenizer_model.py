"""The causal MAE tokenizer: shapes for every preset, causality, masking, bounded output, streaming."""

from dataclasses import replace

import pytest
import torch

from dreamer_model.configs import TokenizerConfig, TransformerConfig
from dreamer_model.presets import LADDER as PRESETS
from dreamer_model.presets import preset
from dreamer_model.errors import ModelError
from dreamer_model.nn import BlockCausalTransformer
from dreamer_model.tokenizer import Tokenizer

torch.manual_seed(0)
MINI = TransformerConfig(dim=32, depth=2, heads=4, kv_heads=2, head_dim=8, registers=2, time_every=2)


@pytest.fixture
def single_thread():
    """Learning tests run one torch thread: on a shared CPU, OpenMP threads spin-wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def mini_config(**changes) -> TokenizerConfig:
    base = TokenizerConfig(height=16, width=24, patch=8, latent_tokens=4, latent_dim=8, context=3,
                           encoder=MINI, decoder=MINI)
    return replace(base, **changes)


def frames(b=2, t=5, h=16, w=24, seed=0):
    return torch.randint(0, 256, (b, t, h, w, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", PRESETS)
def test_shapes_for_every_preset(name):
    cfg = preset("tokenizer", name).tokenizer
    with torch.device("meta"):  # no memory, no compute: shapes only, even for the paper-scale preset
        model = Tokenizer(cfg)
        video = torch.zeros(1, 2, cfg.height, cfg.width, 3, dtype=torch.uint8)
        z = model.encode(video, model.sample_drop(1, 2, device="meta"))
        recon = model.decode(z)
        tokens = torch.zeros(1, 2, model.encoder.layout.size, cfg.encoder.dim)
        assert model.encoder.run(tokens).shape == tokens.shape
    assert z.shape == (1, 2, cfg.latent_tokens, cfg.latent_dim)
    assert recon.shape == (1, 2, cfg.height, cfg.width, 3)
    layers = ["time" if (i + 1) % 4 == 0 else "space" for i in range(cfg.encoder.depth)]
    assert [layer.axis for layer in model.encoder.layers] == layers


def test_paper_preset_geometry():
    cfg = preset("tokenizer", "paper").tokenizer
    with torch.device("meta"):
        model = Tokenizer(cfg)
    assert (model.grid.padded_height, model.grid.padded_width, model.grid.num_patches) == (384, 640, 960)
    assert model.latent_shape == (512, 16)
    assert cfg.encoder.kv_heads < cfg.encoder.heads


def test_output_is_bounded_to_pixel_range_and_padding_is_cropped():
    model = Tokenizer(mini_config(height=20, width=28))  # not multiples of the patch: padded then cropped
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(50)  # extreme weights
        recon, z = model(frames(h=20, w=28))
    assert recon.shape == (2, 5, 20, 28, 3)
    assert float(recon.min()) >= 0.0 and float(recon.max()) <= 1.0
    assert float(z.abs().max()) <= 1.0


def test_encoder_and_decoder_are_causal_in_time():
    model = Tokenizer(mini_config()).eval()
    video = frames()
    with torch.no_grad():
        z = model.encode(video)
        changed = video.clone()
        changed[:, 2] = 255 - changed[:, 2]
        z_changed = model.encode(changed)
        assert torch.equal(z_changed[:, :2], z[:, :2]) and not torch.allclose(z_changed[:, 2], z[:, 2])
        recon = model.decode(z)
        z_other = z.clone()
        z_other[:, 3] = -z_other[:, 3]
        recon_other = model.decode(z_other)
        assert torch.equal(recon_other[:, :3], recon[:, :3]) and not torch.allclose(recon_other[:, 3], recon[:, 3])


def test_dropped_patches_are_invisible_to_the_encoder():
    model = Tokenizer(mini_config()).eval()
    video = frames(t=1)
    drop = torch.zeros(2, 1, model.grid.num_patches, dtype=torch.bool)
    drop[:, :, 1] = True  # patch 1 = rows 0..7, columns 8..15
    with torch.no_grad():
        z = model.encode(video, drop)
        scribbled = video.clone()
        scribbled[:, :, 0:8, 8:16] = 0
        assert torch.equal(model.encode(scribbled, drop), z)
        assert not torch.equal(model.encode(scribbled), model.encode(video))


def test_sample_drop_rates_stay_in_range():
    model = Tokenizer(mini_config(height=64, width=64))
    drop = model.sample_drop(200, 2, torch.Generator().manual_seed(0))
    fraction = drop.float().mean(-1)  # per frame
    assert drop.shape == (200, 2, 64)
    assert float(fraction.max()) < 0.99 and float(fraction.min()) < 0.05
    assert 0.35 < float(fraction.mean()) < 0.55  # E[U(0, 0.9)] = 0.45


def test_streaming_encode_with_cache_equals_full_sequence():
    model = Tokenizer(mini_config()).eval()  # context 3: each frame reads itself and two before
    video = frames(t=7)
    with torch.no_grad():
        full = model.encode(video)
        cache = model.encoder.init_cache()
        pieces = [model.encode(video[:, s:e], cache=cache, update_cache=True) for s, e in ((0, 2), (2, 3), (3, 7))]
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=1e-5)


def test_wrong_frame_shape_is_a_clear_error():
    model = Tokenizer(mini_config())
    with pytest.raises(ModelError, match=r"frames must be \(B, T, 16, 24, 3\)"):
        model.encode(frames(h=32, w=32))


def test_overfits_a_few_frames(single_thread):
    """The whole encoder → tanh bottleneck → decoder path learns: PSNR on 4 frames climbs fast."""
    torch.manual_seed(0)
    model = Tokenizer(mini_config())
    x = torch.zeros(1, 4, 16, 24, 3, dtype=torch.uint8)
    x[..., :8, :, 0] = 200  # simple structured frames: colour blocks that move over time
    for t in range(4):
        x[0, t, :, 4 * t:4 * t + 8, 2] = 255
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)  # 3e-3 stalls at ~12 dB for some seeds
    for step in range(300):
        recon, _ = model(x)
        loss = ((recon - x / 255.0) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert -10 * torch.log10(loss.detach()) > 22.0  # from ~7 dB at init; ~25.5 dB for seeds 0-3


def test_transformer_shapes_for_every_preset():
    for name in PRESETS:
        cfg = preset("tokenizer", name).tokenizer
        with torch.device("meta"):
            model = Tokenizer(cfg)
        assert isinstance(model.encoder, BlockCausalTransformer)
        assert model.encoder.layout.size == model.grid.num_patches + cfg.latent_tokens + cfg.encoder.registers
