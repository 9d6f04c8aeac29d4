"""Shortcut forcing (eqs. 1–4, 7–8), line by line against DESIGN.md's statement, with known functions
in place of the network where a line is about arithmetic rather than learning."""

from __future__ import annotations

import math

import pytest
import torch

from dreamer_model.dynamics.config import DynamicsConfig, validate_dynamics
from dreamer_model.dynamics.shortcut import (ShortcutForcingLoss, bootstrap_loss, bootstrap_velocity, context_frames,
                                             flow_loss, frame_mse, history_windows, implied_velocity, noise_latents,
                                             ramp_weight, sample_step_and_signal, step_sizes)
from dreamer_model.errors import ModelError

torch.manual_seed(0)


pytestmark = pytest.mark.usefixtures("one_thread")


def known_f(z: torch.Tensor, tau: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """A fixed nonlinear 'model' f(z, τ, d) that depends on all three inputs."""
    tau, d = tau[..., None, None], d[..., None, None]
    return torch.sin(z) * (1 + tau) - 0.5 * d + 0.25 * z * d


# ------------------------------------------------------------------------------------------------ eq. 1

def test_noising_convention_tau_one_is_data_tau_zero_is_noise():
    x, eps = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5)
    assert torch.equal(noise_latents(x, eps, torch.ones(2, 3)), x)
    assert torch.equal(noise_latents(x, eps, torch.zeros(2, 3)), eps)
    tau = torch.full((2, 3), 0.25)
    torch.testing.assert_close(noise_latents(x, eps, tau), 0.75 * eps + 0.25 * x)
    # the velocity implied by predicting the data is the path's velocity x − ε, at any τ < 1
    tau = torch.tensor([[0.0, 0.5, 0.875]]).expand(2, 3)
    torch.testing.assert_close(implied_velocity(x, noise_latents(x, eps, tau), tau), x - eps)


# ------------------------------------------------------------------------------------------------ eq. 8

def test_ramp_weight_values():
    tau = torch.tensor([0.0, 0.25, 0.5, 1.0])
    torch.testing.assert_close(ramp_weight(tau), torch.tensor([0.1, 0.325, 0.55, 1.0]))


# ------------------------------------------------------------------------------------------------ eq. 4

def test_step_sizes_are_powers_of_two_down_to_d_min():
    assert step_sizes(64).tolist() == [1, 1 / 2, 1 / 4, 1 / 8, 1 / 16, 1 / 32, 1 / 64]


@pytest.mark.parametrize("fraction", [None, 0.25])
def test_d_on_power_of_two_grid_and_tau_on_the_grid_of_d(fraction):
    d, tau = sample_step_and_signal((200, 100), 64, torch.Generator().manual_seed(3), bootstrap_fraction=fraction)
    levels = step_sizes(64).float()
    assert torch.isin(d, levels).all()
    share = torch.stack([(d == level).float().mean() for level in levels])
    if fraction is None:  # eq. 4: uniform over the 7 levels
        expected = torch.full((7,), 1 / 7)
    else:  # d_min with probability 0.75, the 6 coarser levels share the rest evenly
        expected = torch.tensor([0.25 / 6] * 6 + [0.75])
    torch.testing.assert_close(share, expected, atol=0.01, rtol=0.1)
    k = tau / d
    assert torch.equal(k, k.round())  # τ = k·d, exactly
    assert (tau >= 0).all() and (tau <= 1 - d).all()  # k ∈ {0, …, 1/d − 1}
    assert set(tau[d == 1].tolist()) == {0.0}
    assert set(tau[d == 0.25].tolist()) == {0.0, 0.25, 0.5, 0.75}
    assert len(set(tau[d == 1 / 64].tolist())) == 64
    for level in levels:  # τ uniform on the grid of its d
        counts = torch.bincount((tau[d == level] / level).long(), minlength=int(1 / level)).float()
        assert counts.min() > 0.5 * counts.mean()


def test_flow_objective_samples_only_d_min():
    d, tau = sample_step_and_signal((50, 40), 64, torch.Generator().manual_seed(0), objective="flow")
    assert (d == 1 / 64).all()
    assert len(set(tau.tolist() if tau.ndim == 0 else tau.flatten().tolist())) == 64


def test_sampling_is_a_function_of_the_generator_seed():
    a = sample_step_and_signal((4, 8), 64, torch.Generator().manual_seed(7), bootstrap_fraction=0.25)
    b = sample_step_and_signal((4, 8), 64, torch.Generator().manual_seed(7), bootstrap_fraction=0.25)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


# ------------------------------------------------------------------------------------------------ eq. 7, d = d_min

def test_flow_term_target_is_the_clean_data():
    x = torch.randn(2, 3, 4, 5)
    tau = torch.tensor([[0.0, 0.5, 63 / 64]] * 2)
    assert torch.equal(flow_loss(x, x, tau), torch.zeros(2, 3))
    delta = torch.full_like(x, 0.5)
    torch.testing.assert_close(flow_loss(x + delta, x, tau), ramp_weight(tau) * 0.25)
    # as τ → 1 the input already is the data: predicting the input gives zero loss
    eps = torch.randn_like(x)
    near_one = torch.full((2, 3), 1 - 1e-6)
    assert flow_loss(noise_latents(x, eps, near_one), x, near_one).max() < 1e-10


# ------------------------------------------------------------------------------------------------ eq. 3 / 7, d > d_min

def test_bootstrap_target_is_the_average_of_two_half_step_velocities_computed_by_hand():
    z = torch.randn(1, 2, 3, 4, dtype=torch.float64)
    tau = torch.tensor([[0.25, 0.5]], dtype=torch.float64)
    d = torch.tensor([[0.5, 1 / 64]], dtype=torch.float64)  # frame 0 bootstrapped, frame 1 at d_min
    got = bootstrap_velocity(known_f, z, tau, d, 1 / 64)
    # frame 0 by hand: τ = 1/4, d = 1/2, half step 1/4
    z0 = z[0, 0]

    def f(zz, t, dd):
        return known_f(zz[None, None], torch.tensor([[t]], dtype=torch.float64),
                       torch.tensor([[dd]], dtype=torch.float64))[0, 0]

    b1 = (f(z0, 0.25, 0.25) - z0) / (1 - 0.25)
    z_mid = z0 + b1 * 0.25
    b2 = (f(z_mid, 0.5, 0.25) - z_mid) / (1 - 0.5)
    torch.testing.assert_close(got[0, 0], (b1 + b2) / 2)


def test_bootstrap_passes_keep_d_min_frames_at_their_own_inputs():
    """A d_min frame is context for later frames: the teacher must see it exactly as the student does."""
    seen = []

    def recording_f(z, tau, d):
        seen.append((z.clone(), tau.clone(), d.clone()))
        return known_f(z, tau, d)

    z = torch.randn(1, 2, 3, 4)
    tau, d = torch.tensor([[0.5, 0.25]]), torch.tensor([[1 / 64, 0.25]])
    bootstrap_velocity(recording_f, z, tau, d, 1 / 64)
    assert len(seen) == 2
    for z_in, tau_in, d_in in seen:
        assert torch.equal(z_in[:, 0], z[:, 0]) and tau_in[0, 0] == 0.5 and d_in[0, 0] == 1 / 64
    assert seen[0][2][0, 1] == 0.125 and seen[1][2][0, 1] == 0.125  # d/2 in both half steps
    assert seen[0][1][0, 1] == 0.25 and seen[1][1][0, 1] == 0.375  # τ, then τ + d/2
    assert not torch.equal(seen[1][0][:, 1], z[:, 1])  # z′ moved


def test_perfect_denoiser_makes_the_bootstrap_target_the_true_velocity():
    x, eps = torch.randn(2, 4, 3, 5, dtype=torch.float64), torch.randn(2, 4, 3, 5, dtype=torch.float64)
    d, tau = sample_step_and_signal((2, 4), 64, torch.Generator().manual_seed(1))
    d, tau = d.double().clamp(min=1 / 32), tau.double()  # every frame bootstrapped
    tau = torch.minimum(tau, 1 - d)
    z = noise_latents(x, eps, tau)
    oracle = lambda zz, t, dd: x  # noqa: E731  f ≡ x
    v_target = bootstrap_velocity(oracle, z, tau, d, 1 / 64)
    torch.testing.assert_close(v_target, x - eps)
    assert bootstrap_loss(x, z, tau, v_target).abs().max() < 1e-20  # predicting x is self-consistent


def test_bootstrap_loss_in_velocity_space_with_ramp_and_one_minus_tau_squared():
    x_pred, z = torch.randn(2, 3, 4, 5, dtype=torch.float64), torch.randn(2, 3, 4, 5, dtype=torch.float64)
    v_target = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    tau = torch.tensor([[0.0, 0.5, 0.75]] * 2, dtype=torch.float64)
    expected = ramp_weight(tau) * (1 - tau) ** 2 * (((x_pred - z) / (1 - tau)[..., None, None] - v_target) ** 2).mean((-2, -1))
    torch.testing.assert_close(bootstrap_loss(x_pred, z, tau, v_target), expected)
    # equivalently an x-space distance to the target z_τ + (1 − τ)·v_target
    x_target = z + (1 - tau)[..., None, None] * v_target
    torch.testing.assert_close(bootstrap_loss(x_pred, z, tau, v_target),
                               ramp_weight(tau) * ((x_pred - x_target) ** 2).mean((-2, -1)))


# ------------------------------------------------------------------------------------------------ the module

class Scaled(torch.nn.Module):
    """known_f with one learnable scale, so gradients can be checked."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(1.3))

    def forward(self, z, tau, d):
        return self.scale * known_f(z, tau, d)


def test_loss_module_combines_the_terms_by_hand_and_stops_the_teacher_gradient():
    model = Scaled()
    x = torch.randn(3, 5, 2, 4)
    loss_fn = ShortcutForcingLoss(k_max=8).eval()  # eval: the normaliser stays at RMS = 1
    loss, metrics = loss_fn(model, x, torch.Generator().manual_seed(5))
    loss.backward()
    # redo every line by hand from the same random stream
    g = torch.Generator().manual_seed(5)
    d, tau = sample_step_and_signal((3, 5), 8, g)
    eps = torch.randn(x.shape, generator=g)
    z = noise_latents(x, eps, tau)
    flow_frames, boot_frames = d == 1 / 8, d > 1 / 8
    assert flow_frames.any() and boot_frames.any()
    with torch.no_grad():
        v_target = bootstrap_velocity(model, z, tau, d, 1 / 8)
    scale = torch.tensor(1.3, requires_grad=True)
    x_pred = scale * known_f(z, tau, d)
    flow = flow_loss(x_pred, x, tau)  # (B, T)
    boot = bootstrap_loss(x_pred, z, tau, v_target)  # (B, T)
    total = (flow * flow_frames + boot * boot_frames).mean()  # each frame its own term, one mean
    total.backward()
    torch.testing.assert_close(loss, total.detach())
    assert metrics["flow"] == pytest.approx(flow[flow_frames].mean().item(), rel=1e-5)
    assert metrics["bootstrap"] == pytest.approx(boot[boot_frames].mean().item(), rel=1e-5)
    torch.testing.assert_close(model.scale.grad, scale.grad)  # the target carried no gradient


def test_context_frames_are_fed_at_tau_ctx_and_carry_no_loss():
    """context_fraction p: a frame is, with probability p, fed as the sampler feeds context (τ_ctx, d_min) and
    left out of the loss, whose mean is over the other frames; every other line is eq. 4 / 7 as above."""
    calls = []

    def f(z, tau, d):
        calls.append((tau.clone(), d.clone()))
        return known_f(z, tau, d)

    x = torch.randn(4, 6, 2, 4)
    loss_fn = ShortcutForcingLoss(k_max=8, context_fraction=0.5, tau_ctx=0.9).eval()
    loss, metrics = loss_fn(f, x, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    d, tau = sample_step_and_signal((4, 6), 8, g)
    context = torch.rand((4, 6), generator=g) < 0.5
    assert context.any() and (~context).any()
    d, tau = context_frames(d, tau, context, 0.9, 1 / 8)
    assert (tau[context] == 0.9).all() and (d[context] == 1 / 8).all()
    eps = torch.randn(x.shape, generator=g)
    z = noise_latents(x, eps, tau)
    torch.testing.assert_close(calls[-1][0], tau)  # the student call sees the context levels
    torch.testing.assert_close(calls[-1][1], d)
    boot = d > 1 / 8
    v_target = bootstrap_velocity(f, z, tau, d, 1 / 8)
    x_pred = known_f(z, tau, d)
    per_frame = torch.where(boot, bootstrap_loss(x_pred, z, tau, v_target), flow_loss(x_pred, x, tau))
    torch.testing.assert_close(loss, per_frame[~context].mean())
    assert metrics["context_fraction"] == pytest.approx(context.float().mean().item())

    def wrong_on_context(z, tau, d):  # any prediction for a context frame: the loss must not see it
        return known_f(z, tau, d) + 100.0 * (tau == 0.9)[..., None, None]

    assert loss_fn(wrong_on_context, x, torch.Generator().manual_seed(3))[0].item() == pytest.approx(loss.item())
    # p = 0 is eq. 4 exactly: the same draws as before the option existed
    plain, _ = ShortcutForcingLoss(k_max=8).eval()(f, x, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    d, tau = sample_step_and_signal((4, 6), 8, g)
    z = noise_latents(x, torch.randn(x.shape, generator=g), tau)
    boot = d > 1 / 8
    x_pred = known_f(z, tau, d)
    by_hand = torch.where(boot, bootstrap_loss(x_pred, z, tau, bootstrap_velocity(f, z, tau, d, 1 / 8)),
                          flow_loss(x_pred, x, tau)).mean()
    torch.testing.assert_close(plain, by_hand)


def test_history_windows_feed_a_clean_history_and_generate_from_the_sampler_levels():
    """history_fraction p: with probability p a window is cut at c ~ U{1 … T − 1}; frames before c are fed as the
    sampler feeds context (τ_ctx, d_min) without loss, frames from c on are generated at d_min from the K-step
    sampler's levels with weight 1; the other windows are eq. 4 / 7 / 8 as above."""
    calls = []

    def f(z, tau, d):
        calls.append((tau.clone(), d.clone()))
        return known_f(z, tau, d)

    b, t = 400, 6
    x = torch.randn(b, t, 2, 4)
    loss_fn = ShortcutForcingLoss(k_max=8, tau_ctx=0.9, history_fraction=0.5, sample_steps=4).eval()
    loss, metrics = loss_fn(f, x, torch.Generator().manual_seed(5))
    tau, d = calls[-1]  # the student's call
    context = tau == 0.9  # eq. 4's τ lie on the grid of 1/8, never at 0.9
    cut = context.sum(dim=1)  # (B,) history length: c in the cut windows, 0 in eq. 4's
    cut_windows = cut > 0
    assert 0.4 < cut_windows.float().mean() < 0.6
    assert set(cut[cut_windows].tolist()) == {1, 2, 3, 4, 5}  # c ~ U{1 … T − 1}: never all frames, never none
    positions = torch.arange(t)[None, :]
    torch.testing.assert_close(context, cut_windows[:, None] & (positions < cut[:, None]))  # a prefix, nothing else
    assert (d[context] == 1 / 8).all()
    generated = cut_windows[:, None] & (positions >= cut[:, None])
    assert (d[generated] == 1 / 8).all() and set(tau[generated].tolist()) == {0.0, 0.25, 0.5, 0.75}
    assert (d[~cut_windows] > 1 / 8).any()  # eq. 4's windows keep their coarser steps
    assert metrics["context_fraction"] == pytest.approx(context.float().mean().item())

    # the loss by hand: the same draws in the same order, then eq. 7 with weight 1 on the generated frames
    g = torch.Generator().manual_seed(5)
    d4, tau4 = sample_step_and_signal((b, t), 8, g)
    history, gen, tau_gen = history_windows((b, t), 0.5, 4, g)
    torch.testing.assert_close(history, context)
    torch.testing.assert_close(gen, generated)
    d4, tau4 = context_frames(torch.where(gen, 1 / 8, d4), torch.where(gen, tau_gen, tau4), history, 0.9, 1 / 8)
    z = noise_latents(x, torch.randn(x.shape, generator=g), tau4)
    x_pred = known_f(z, tau4, d4)
    per_frame = torch.where(d4 > 1 / 8, bootstrap_loss(x_pred, z, tau4, bootstrap_velocity(f, z, tau4, d4, 1 / 8)),
                            flow_loss(x_pred, x, tau4))
    per_frame = torch.where(gen, frame_mse(x_pred, x), per_frame)
    torch.testing.assert_close(loss, per_frame[~history].mean())

    def wrong_on(frames):  # a prediction off by 10 on ``frames`` only
        return lambda z, tau, d: known_f(z, tau, d) + 10.0 * frames[..., None, None]

    assert loss_fn(wrong_on(context), x, torch.Generator().manual_seed(5))[0].item() == pytest.approx(loss.item())
    first = generated & (tau == 0)  # generated from pure noise: weight 1 (eq. 8 would give them 0.1)
    off = loss_fn(wrong_on(first), x, torch.Generator().manual_seed(5))[0]
    torch.testing.assert_close(off, torch.where(first, frame_mse(x_pred + 10.0, x), per_frame)[~history].mean())


def test_history_fraction_is_checked():
    validate_dynamics(DynamicsConfig(history_fraction=0.75), "run.yaml")
    for bad in (1.0, -0.1):
        with pytest.raises(ModelError, match=rf"^run.yaml: dynamics.history_fraction must be in \[0, 1\) .*got {bad}$"):
            validate_dynamics(DynamicsConfig(history_fraction=bad), "run.yaml")


def test_running_rms_normalises_the_loss_and_is_saved_for_resume():
    model = Scaled()
    loss_fn = ShortcutForcingLoss(k_max=4).train()
    x = torch.randn(4, 8, 2, 4)
    loss, metrics = loss_fn(model, x, torch.Generator().manual_seed(0))
    assert loss.item() == pytest.approx(1.0, rel=1e-5)  # first update: L / √(L²) = 1
    assert metrics["loss_rms"] == pytest.approx(metrics["loss_raw"], rel=1e-5)
    for step in range(1, 4):
        loss, metrics = loss_fn(model, x * (1 + step), torch.Generator().manual_seed(step))
    assert loss.item() == pytest.approx(metrics["loss_raw"] / loss_fn.rms.rms, rel=1e-5)
    state = loss_fn.state_dict()
    restored = ShortcutForcingLoss(k_max=4)
    restored.load_state_dict(state)
    assert restored.rms.rms == loss_fn.rms.rms and int(state["rms.updates"]) == 4
    loss_fn.eval()
    before = loss_fn.rms.rms
    loss_fn(model, x * 10, torch.Generator().manual_seed(9))
    assert loss_fn.rms.rms == before  # evaluation never moves the normaliser


def test_flow_baseline_has_no_bootstrap_term_and_calls_the_model_once():
    calls = []

    def f(z, tau, d):
        calls.append(d)
        return known_f(z, tau, d)

    loss, metrics = ShortcutForcingLoss(k_max=64, objective="flow").eval()(f, torch.randn(2, 3, 2, 4),
                                                                          torch.Generator().manual_seed(0))
    assert len(calls) == 1 and (calls[0] == 1 / 64).all()
    assert metrics["bootstrap_fraction"] == 0 and math.isfinite(loss.item())
