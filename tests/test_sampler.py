"""K-step generation: cached == uncached (also past the trained context, where the window slides),
cost per frame independent of the context length, the denoise / commit cache protocol, and the
sampling arithmetic (eq. 2 in x-prediction form)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from dreamer_model.configs import TransformerConfig
from dreamer_model.dynamics import DynamicsConfig, DynamicsModel, DynamicsOutput, Sampler, action_fields
from dreamer_model.errors import ModelError

torch.manual_seed(0)


pytestmark = pytest.mark.usefixtures("one_thread")
SPEC = action_fields({"discrete": {"kind": "categorical", "size": 3}})
TINY = TransformerConfig(dim=32, depth=4, heads=4, kv_heads=2, head_dim=8, registers=2, time_every=2, time_window=6)
CFG = DynamicsConfig(latent_tokens=4, latent_dim=8, context=6, k_max=8, transformer=TINY)


def rollout_inputs(total: int, b: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    latents = torch.randn(b, total, 4, 8, generator=g)
    actions = {"discrete": torch.randint(0, 3, (b, total), generator=g)}
    has = torch.ones(b, total, dtype=torch.bool)
    has[:, 0] = False
    return latents, actions, has


@pytest.mark.parametrize("soft_cap", [50.0, None])
@pytest.mark.parametrize("objective,steps", [("shortcut", 4), ("shortcut", 1), ("flow", 3)])
def test_cached_and_uncached_generation_give_the_same_frames(soft_cap, objective, steps):
    cfg = replace(CFG, objective=objective, transformer=replace(TINY, soft_cap=soft_cap))
    model = DynamicsModel(cfg, SPEC).eval()
    sampler = Sampler(model, steps=steps)
    latents, actions, has = rollout_inputs(3 + 9)  # 12 frames > the 6-frame window: it slides
    cached = sampler.generate(latents[:, :3], actions, has, 9, torch.Generator().manual_seed(1))
    uncached = sampler.generate(latents[:, :3], actions, has, 9, torch.Generator().manual_seed(1), use_cache=False)
    assert cached.shape == (2, 9, 4, 8)
    torch.testing.assert_close(cached, uncached, rtol=1e-4, atol=1e-5)
    other_seed = sampler.generate(latents[:, :3], actions, has, 9, torch.Generator().manual_seed(2))
    assert (other_seed - cached).abs().max() > 1e-3  # the comparison is not vacuous


def frame_flops(model: DynamicsModel, context: int, use_cache: bool) -> int:
    """Counted FLOPs of generating one frame after ``context`` frames (explicit-attention path)."""
    sampler = Sampler(model)
    latents, actions, has = rollout_inputs(context + 1, b=1)
    noise = torch.randn(1, context, 4, 8)
    new_noise = torch.randn(1, 1, 4, 8)
    with torch.no_grad():
        if use_cache:
            cache = sampler.init_cache()
            sampler.commit(cache, latents[:, :context], {"discrete": actions["discrete"][:, :context]},
                           has[:, :context], noise)
            with FlopCounterMode(display=False) as counter:
                sampler.denoise(cache, {"discrete": actions["discrete"][:, context:]}, has[:, context:], new_noise)
                sampler.commit(cache, latents[:, context:], {"discrete": actions["discrete"][:, context:]},
                               has[:, context:], new_noise)
        else:
            with FlopCounterMode(display=False) as counter:
                sampler._denoise_uncached(latents[:, :context], actions, has, noise, new_noise)
    return counter.get_total_flops()


def test_cost_per_frame_does_not_grow_with_context():
    windowed = DynamicsModel(CFG, SPEC).eval()  # trained context 6: beyond it the window slides
    assert frame_flops(windowed, 12, True) == frame_flops(windowed, 36, True)
    assert frame_flops(windowed, 36, False) > 2.5 * frame_flops(windowed, 12, False)
    unbounded = DynamicsModel(replace(CFG, transformer=replace(TINY, time_window=None)), SPEC).eval()
    # within the context only the temporal attention over cached keys grows: a few percent here
    assert frame_flops(unbounded, 36, True) < 1.15 * frame_flops(unbounded, 4, True)
    assert frame_flops(unbounded, 36, False) > 5 * frame_flops(unbounded, 4, False)


def test_denoise_reads_the_cache_and_commit_appends_one_step():
    model = DynamicsModel(CFG, SPEC).eval()
    sampler = Sampler(model)
    latents, actions, has = rollout_inputs(4)
    cache = sampler.init_cache()
    with torch.no_grad():
        sampler.commit(cache, latents[:, :3], {"discrete": actions["discrete"][:, :3]}, has[:, :3],
                       torch.randn(2, 3, 4, 8))
        assert cache.steps == 3
        keys = [k.clone() for k in cache.keys]
        act, has_new = {"discrete": actions["discrete"][:, 3:]}, has[:, 3:]
        frame = sampler.denoise(cache, act, has_new, torch.randn(2, 1, 4, 8))
        assert cache.steps == 3 and all(torch.equal(a, b) for a, b in zip(keys, cache.keys))  # untouched
        sampler.commit(cache, frame, act, has_new, torch.randn(2, 1, 4, 8))
    assert cache.steps == 4 and cache.keys[0].shape[2] == 4


class Oracle(DynamicsModel):
    """A dynamics model that always predicts the same clean latents: isolates the sampler's arithmetic."""

    def __init__(self, cfg, target):
        super().__init__(cfg, SPEC)
        self.target, self.calls = target, []

    def forward(self, z_noisy, tau, d, action_in, has_action_in, agent=None, cache=None, update_cache=False):
        self.calls.append((z_noisy.clone(), tau.clone(), d.clone(), update_cache))
        if cache is not None and update_cache:
            cache.advance(z_noisy.shape[1])
        return DynamicsOutput(self.target.expand(z_noisy.shape[0], z_noisy.shape[1], -1, -1), None)


@pytest.mark.parametrize("objective,label", [("shortcut", 1 / 4), ("flow", 1 / 8)])
def test_k_steps_follow_the_straight_path_to_the_prediction(objective, label):
    target = torch.randn(1, 1, 4, 8)
    oracle = Oracle(replace(CFG, objective=objective), target)
    sampler = Sampler(oracle, steps=4, tau_ctx=0.9)
    cache = sampler.init_cache()
    noise = torch.randn(1, 1, 4, 8)
    frame = sampler.denoise(cache, {"discrete": torch.zeros(1, 1, dtype=torch.long)}, torch.ones(1, 1, dtype=torch.bool),
                            noise)
    assert torch.equal(frame, target)
    assert [c[1].item() for c in oracle.calls] == [0.0, 0.25, 0.5, 0.75]  # τ = 0, 1/K, …
    assert all(c[2].item() == label and not c[3] for c in oracle.calls)  # d = 1/K (flow: d_min); no commit
    for z, tau, _, _ in oracle.calls:  # with a perfect prediction each step lands on z_τ = (1 − τ)ε + τ·x
        torch.testing.assert_close(z, (1 - tau) * noise + tau * target)
    context_noise = torch.randn(1, 1, 4, 8)
    sampler.commit(cache, frame, {"discrete": torch.zeros(1, 1, dtype=torch.long)}, torch.ones(1, 1, dtype=torch.bool),
                   context_noise)
    z, tau, d, update = oracle.calls[-1]
    assert update and tau.item() == pytest.approx(0.9) and d.item() == 1 / 8  # τ_ctx, labelled d_min
    torch.testing.assert_close(z, 0.1 * context_noise + 0.9 * target)


def test_sampler_rejects_step_counts_the_model_was_not_trained_for():
    model = DynamicsModel(CFG, SPEC)
    with pytest.raises(ModelError, match="power of two"):
        Sampler(model, steps=3)
    with pytest.raises(ModelError, match="power of two"):
        Sampler(model, steps=16)  # > k_max = 8
    assert Sampler(DynamicsModel(replace(CFG, objective="flow"), SPEC), steps=3).label == 1 / 8
