"""Policy / reward / value heads with multi-token prediction; action spaces from manifests; MTP targets."""

import pytest
import torch

from dreamer_data.actions.minecraft import action_spec as minecraft_action_spec
from dreamer_model.agent.actions import ActionSpace
from dreamer_model.agent.heads import BinsHead, ContinueHead, PolicyHead, TaskEmbedding
from dreamer_model.agent.slow_target import EMATarget
from dreamer_model.agent.targets import incoming, shift_ahead
from dreamer_model.errors import ModelError


pytestmark = pytest.mark.usefixtures("one_thread")

MINATAR = {"discrete": {"kind": "categorical", "size": 6, "names": ["noop", "left", "up", "right", "down", "fire"],
                        "dtype": "int64", "null_class": 0}}
CONTINUOUS = {"continuous": {"kind": "continuous", "size": 3, "dtype": "float32",
                             "stats": {"min": [-1.0, 0.0, -5.0], "max": [1.0, 2.0, 5.0]}}}


def test_minecraft_space_is_23_bernoullis_and_a_121_way_camera():
    space = ActionSpace.from_manifest(minecraft_action_spec(), "manifest.json")
    assert [(c.name, c.kind, c.size) for c in space.components] == [("buttons", "binary", 23),
                                                                    ("camera", "categorical", 121)]
    head = PolicyHead(space, dim=32, hidden=64, layers=2, mtp=8)
    dist = head(torch.randn(2, 5, 32))
    action = dist.sample()
    assert action["buttons"].shape == (2, 5, 9, 23) and action["camera"].shape == (2, 5, 9)
    assert set(action["buttons"].unique().tolist()) <= {0, 1} and int(action["camera"].max()) < 121
    assert dist.log_prob(action).shape == (2, 5, 9)
    torch.testing.assert_close(dist.kl(dist), torch.zeros(2, 5, 9))
    first = head(torch.randn(2, 5, 32), first_only=True)
    assert first.sample()["camera"].shape == (2, 5)


def test_categorical_policy_log_probs_sum_to_one_and_unimix_bounds_them():
    space = ActionSpace.from_manifest(MINATAR, "m")
    head = PolicyHead(space, dim=16, hidden=32, layers=1, mtp=0, unimix=0.01)
    with torch.no_grad():
        head.mlp.out.bias.copy_(torch.tensor([100.0, 0, 0, 0, 0, 0]))
    with torch.no_grad():
        dist = head(torch.zeros(4, 16), first_only=True)
    all_actions = [dist.log_prob({"discrete": torch.full((4,), a)}) for a in range(6)]
    torch.testing.assert_close(torch.stack(all_actions).exp().sum(0), torch.ones(4))
    assert min(float(lp.min()) for lp in all_actions) >= torch.log(torch.tensor(0.01 / 6)) - 1e-5
    assert (dist.mode()["discrete"] == 0).all()
    generator = torch.Generator().manual_seed(3)
    again = torch.Generator().manual_seed(3)
    assert torch.equal(dist.sample(generator)["discrete"], dist.sample(again)["discrete"])


def test_continuous_policy_is_bounded_by_the_manifest_statistics():
    space = ActionSpace.from_manifest(CONTINUOUS, "m")
    head = PolicyHead(space, dim=16, hidden=32, layers=1, mtp=2)
    with torch.no_grad():
        head.mlp.out.bias.normal_(0, 10)
    dist = head(torch.randn(64, 16))
    action = dist.sample()["continuous"]  # (64, 3, 3)
    low, high = torch.tensor([-1.0, 0.0, -5.0]), torch.tensor([1.0, 2.0, 5.0])
    assert ((action >= low) & (action <= high)).all()
    assert torch.isfinite(dist.log_prob({"continuous": action})).all()
    assert torch.isfinite(dist.entropy()).all()


def test_unsupported_action_kind_is_a_clear_error():
    with pytest.raises(ModelError, match="kind 'tokens'"):
        ActionSpace.from_manifest({"x": {"kind": "tokens", "size": 3}}, "store/manifest.json")
    with pytest.raises(ModelError, match="no actions"):
        ActionSpace.from_manifest({}, "store/manifest.json")


def test_bins_and_continue_heads_start_neutral_and_have_mtp_outputs():
    reward = BinsHead(dim=16, hidden=32, layers=2, mtp=8, bins=255)
    logits = reward(torch.randn(3, 7, 16))
    assert logits.shape == (3, 7, 9, 255)
    assert torch.equal(logits, torch.zeros_like(logits))  # zero-initialised output: predicts 0
    cont = ContinueHead(16, 32, 2, mtp=8)(torch.randn(3, 7, 16))
    assert cont.shape == (3, 7, 9) and (torch.sigmoid(cont) > 0.95).all()
    tasks = TaskEmbedding(n_tasks=3, n_agent=2, dim=16)
    tokens = tasks(torch.tensor([0, 2]), steps=5)
    assert tokens.shape == (2, 5, 2, 16) and torch.equal(tokens[1, 3], tasks.table[2])


def test_shift_ahead_builds_the_multi_token_targets():
    x = torch.tensor([[10, 11, 12, 13]])
    valid = torch.tensor([[True, True, False, True]])
    out, mask = shift_ahead(x, valid, mtp=2)
    assert out.tolist() == [[[10, 11, 12], [11, 12, 13], [12, 13, 0], [13, 0, 0]]]
    assert mask.tolist() == [[[True, True, False], [True, False, True], [False, True, False], [True, False, False]]]


def test_incoming_reward_and_continuation_follow_the_row_convention():
    # an episode of 3 actions whose last action terminates it; row 3 is the final observation
    reward = torch.tensor([[0.0, 1.0, 0.0, 0.0]])
    terminal = torch.tensor([[0, 0, 1, 0]])
    has_action = torch.tensor([[1, 1, 1, 0]])
    first = torch.tensor([[1, 0, 0, 0]])
    r_in, c_in, valid = incoming(reward, terminal, has_action, first)
    assert r_in.tolist() == [[0.0, 0.0, 1.0, 0.0]]
    assert c_in.tolist() == [[1.0, 1.0, 1.0, 0.0]]  # arriving at the final observation ends the episode
    assert valid.tolist() == [[True, True, True, True]]
    # a window that starts mid-episode cannot know what led into its first row
    _, _, valid = incoming(reward, terminal, has_action, torch.zeros(1, 4))
    assert valid.tolist() == [[False, True, True, True]]


def test_ema_target_moves_slowly_towards_the_online_weights():
    online = torch.nn.Linear(2, 1)
    slow = EMATarget(online, decay=0.9)
    with torch.no_grad():
        before = slow.module.weight.clone()
        online.weight.add_(1.0)
    slow.update(online)
    torch.testing.assert_close(slow.module.weight, before + 0.1)
    assert not any(p.requires_grad for p in slow.parameters())
