"""The dynamics model: block-causality over latents, actions and (τ, d); action inputs and the shift;
hidden agent tokens; token packing; bad inputs."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from dreamer_model.configs import TransformerConfig
from dreamer_model.dynamics import DynamicsConfig, DynamicsModel, action_fields, shift_actions
from dreamer_model.dynamics.actions import ActionEmbedding
from dreamer_model.errors import ModelError

torch.manual_seed(0)


pytestmark = pytest.mark.usefixtures("one_thread")
TINY = TransformerConfig(dim=32, depth=4, heads=4, kv_heads=2, head_dim=8, registers=2, time_every=2, time_window=8)
CFG = DynamicsConfig(latent_tokens=4, latent_dim=6, context=8, k_max=8, transformer=TINY)
DISCRETE = {"discrete": {"kind": "categorical", "size": 5}}
MINECRAFT = {"buttons": {"kind": "binary", "size": 23}, "camera": {"kind": "categorical", "size": 121},
             "camera_deg": {"kind": "continuous", "size": 2}}


def inputs(b=2, t=6, fields=DISCRETE, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(b, t, 4, 6, generator=g)
    tau = torch.randint(0, 8, (b, t), generator=g) / 8
    d = torch.full((b, t), 1 / 8)
    actions = {"discrete": torch.randint(0, 5, (b, t), generator=g)}
    return z, tau, d, actions, torch.ones(b, t, dtype=torch.bool)


def model(cfg=CFG, spec=DISCRETE) -> DynamicsModel:
    return DynamicsModel(cfg, action_fields(spec)).eval()


def test_layout_and_read_rules():
    m = model(replace(CFG, agent_tokens=2))
    assert repr(m.layout) == "TokenLayout(action×1 | shortcut×1 | register×2 | latent×4 | agent×2)"
    mask = m.layout.space_mask()
    agent = m.layout.slices["agent"]
    assert not mask[:agent.start, agent].any()  # nothing reads the agent tokens
    assert mask[agent].all()  # agent tokens read everything


@pytest.mark.parametrize("action_to_latents", [False, True])
@pytest.mark.parametrize("what", ["latent", "action", "tau", "d", "has_action"])
def test_future_inputs_never_change_past_predictions(what, action_to_latents):
    m = model(replace(CFG, action_to_latents=action_to_latents))
    z, tau, d, actions, has = inputs()
    with torch.no_grad():
        before = m(z, tau, d, actions, has).x_pred
        for t in (1, 3, 5):
            z2, tau2, d2, a2, has2 = z.clone(), tau.clone(), d.clone(), {"discrete": actions["discrete"].clone()}, has.clone()
            if what == "latent":
                z2[:, t:] += torch.randn_like(z2[:, t:])
            elif what == "action":
                a2["discrete"][:, t:] = (a2["discrete"][:, t:] + 1) % 5
            elif what == "tau":
                tau2[:, t:] = 1 - tau2[:, t:] - 1 / 8
            elif what == "d":
                d2[:, t:] = 0.5
            else:
                has2[:, t:] = False
            after = m(z2, tau2, d2, a2, has2).x_pred
            assert torch.equal(after[:, :t], before[:, :t]), (what, t)
            assert (after[:, t] - before[:, t]).abs().max() > 1e-4, (what, t)  # the input is read at all


def test_has_action_zero_ignores_the_action_value():
    m = model()
    z, tau, d, actions, has = inputs()
    has[:, 2] = False
    with torch.no_grad():
        a = m(z, tau, d, actions, has).x_pred
        other = {"discrete": actions["discrete"].clone()}
        other["discrete"][:, 2] = (other["discrete"][:, 2] + 2) % 5
        b = m(z, tau, d, other, has).x_pred
    assert torch.equal(a, b)


def test_shift_gives_each_frame_the_action_that_led_to_it():
    window = {"actions/discrete": torch.tensor([[3, 1, 4, 1, 2]]), "has_action": torch.tensor([[1, 1, 0, 1, 1]]),
              "is_first": torch.tensor([[False, False, False, True, False]])}
    action_in, has_in = shift_actions(window, action_fields(DISCRETE))
    assert action_in["discrete"].tolist() == [[0, 3, 1, 4, 1]]
    # frame 0: no previous action in the window; frame 3: previous row is unlabeled AND 3 starts an episode
    assert has_in.tolist() == [[False, True, True, False, True]]
    window["has_action"] = torch.tensor([[1, 0, 1, 1, 1]])
    assert shift_actions(window, action_fields(DISCRETE))[1].tolist() == [[False, True, False, False, True]]


def test_minecraft_actions_buttons_sum_and_camera_classes():
    fields = action_fields(MINECRAFT)
    assert [(f.name, f.kind, f.size) for f in fields] == [("buttons", "binary", 23), ("camera", "categorical", 121)]
    embed = ActionEmbedding(fields, 16)
    buttons = torch.zeros(1, 3, 23)
    buttons[0, 1, [3, 14]] = 1  # forward + jump
    camera = torch.tensor([[60, 60, 0]])
    has = torch.ones(1, 3, dtype=torch.bool)
    token = embed({"buttons": buttons, "camera": camera}, has)[0, :, 0]  # (3, D)
    w = embed.embed["buttons"].weight  # (D, 23): one learned vector per button
    torch.testing.assert_close(token[1] - token[0], w[:, 3] + w[:, 14])  # buttons add up
    cam = embed.embed["camera"].weight
    torch.testing.assert_close(token[2] - token[0], cam[0] - cam[60])
    nothing = embed({"buttons": buttons, "camera": camera}, torch.zeros(1, 3, dtype=torch.bool))[0, :, 0]
    assert torch.equal(nothing, embed.null.expand(3, -1))


def test_continuous_actions_are_standardised_with_manifest_stats():
    spec = {"continuous": {"kind": "continuous", "size": 2, "stats": {"mean": [1.0, -2.0], "std": [2.0, 0.5]}}}
    embed = ActionEmbedding(action_fields(spec), 8)
    has = torch.ones(1, 2, dtype=torch.bool)
    token = embed({"continuous": torch.tensor([[[1.0, -2.0], [3.0, -1.5]]])}, has)[0, :, 0]
    torch.testing.assert_close(token[0], embed.present)  # the mean maps to 0
    torch.testing.assert_close(token[1], embed.present + embed.embed["continuous"].weight @ torch.tensor([1.0, 1.0]))


def test_agent_tokens_leave_world_model_predictions_unchanged():
    m = model()
    with_agent = m.with_agent_tokens(3).eval()
    z, tau, d, actions, has = inputs()
    with torch.no_grad():
        plain = m(z, tau, d, actions, has)
        out = with_agent(z, tau, d, actions, has)
        other = with_agent(z, tau, d, actions, has, agent=torch.randn(2, 6, 3, 32) * 10)
        moved = with_agent(z + 1, tau, d, actions, has)
    assert plain.agent is None and out.agent.shape == (2, 6, 3, 32)
    torch.testing.assert_close(out.x_pred, plain.x_pred, rtol=0, atol=1e-5)
    assert torch.equal(other.x_pred, out.x_pred)
    assert (moved.agent - out.agent).abs().max() > 1e-3  # agent tokens read the world model


def test_pack_regroups_tokens_and_round_trips():
    m = model(replace(CFG, pack=2))
    z = torch.randn(2, 3, 4, 6)
    assert m.pack(z).shape == (2, 3, 2, 12)
    assert torch.equal(m.unpack(m.pack(z)), z)
    _, tau, d, actions, has = inputs(t=3)
    assert m(z, tau, d, actions, has).x_pred.shape == (2, 3, 4, 6)


def test_bad_inputs_raise_one_clear_error():
    m = model()
    z, tau, d, actions, has = inputs()
    with pytest.raises(ModelError, match="latents must be"):
        m(z[..., :5], tau, d, actions, has)
    with pytest.raises(ModelError, match="step sizes must be"):
        m(z, tau, torch.full_like(d, 0.3), actions, has)
    with pytest.raises(ModelError, match="outside"):
        m(z, tau, d, {"discrete": actions["discrete"] + 5}, has)
    with pytest.raises(ModelError, match="kind"):
        action_fields({"x": {"kind": "weird", "size": 3}})
