"""Token layout: read rules → masks (printed as a table), positions, packing."""

import pytest
import torch

from dreamer_model.nn.layout import TokenGroup, TokenLayout, time_mask


def dynamics_like_layout() -> TokenLayout:
    return TokenLayout([
        TokenGroup("action", 1), TokenGroup("shortcut", 1), TokenGroup("register", 2),
        TokenGroup("latent", 3), TokenGroup("agent", 1, hidden=True),
    ])


def test_agent_tokens_read_everything_and_nothing_reads_them():
    layout = dynamics_like_layout()
    assert layout.table().splitlines() == [
        "              action  shortcut  register    latent     agent",
        "action             x         x         x         x         .",
        "shortcut           x         x         x         x         .",
        "register           x         x         x         x         .",
        "latent             x         x         x         x         .",
        "agent              x         x         x         x         x",
    ]
    mask = layout.space_mask()
    agent = layout.slices["agent"]
    assert mask[agent].all()  # the agent row: reads every token
    assert mask[:, agent].sum() == 1  # the agent column: read by itself only


def test_restricted_reads_and_hidden_groups():
    layout = TokenLayout([TokenGroup("patch", 4, grid=(2, 2), reads=("patch",)), TokenGroup("latent", 2)])
    mask = layout.space_mask()
    assert not mask[layout.slices["patch"], layout.slices["latent"]].any()
    assert mask[layout.slices["latent"]].all()
    with pytest.raises(ValueError, match="hidden"):
        TokenLayout([TokenGroup("agent", 1, hidden=True), TokenGroup("latent", 2, reads=("agent",))])
    with pytest.raises(ValueError, match="unknown"):
        TokenLayout([TokenGroup("latent", 2, reads=("nope",))])


def test_time_mask_is_causal_and_windowed():
    steps = torch.arange(5)
    assert torch.equal(time_mask(steps, steps, None), torch.ones(5, 5, dtype=torch.bool).tril())
    windowed = time_mask(steps, steps, 2)
    assert windowed.sum(1).tolist() == [1, 2, 2, 2, 2]
    assert windowed[4].tolist() == [False, False, False, True, True]
    # a cached past: queries at steps 10, 11 over keys 7..11
    assert time_mask(torch.tensor([10, 11]), torch.arange(7, 12), 3).int().tolist() == [[0, 1, 1, 1, 0],
                                                                                       [0, 0, 1, 1, 1]]


def test_positions_and_packing():
    layout = TokenLayout([TokenGroup("patch", 6, grid=(2, 3)), TokenGroup("latent", 2), TokenGroup("register", 1)])
    assert layout.space_positions().tolist() == [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2],
                                                 [-1, 0], [-1, 1], [-1, 2]]
    parts = {"patch": torch.randn(2, 3, 6, 4), "latent": torch.randn(2, 3, 2, 4), "register": torch.randn(2, 3, 1, 4)}
    packed = layout.pack(parts)
    assert packed.shape == (2, 3, 9, 4)
    for name, tensor in layout.unpack(packed).items():
        assert torch.equal(tensor, parts[name])
    with pytest.raises(ValueError, match="missing"):
        layout.pack({"patch": parts["patch"]})
    with pytest.raises(ValueError, match="expects 2 tokens"):
        layout.pack({**parts, "latent": torch.randn(2, 3, 5, 4)})
