"""Tiny dynamics models trained for a few hundred steps on the dot world (tests/dynamics_toy.py):
the predictions depend on the actions, and shortcut training keeps the d_min prediction sharp."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dreamer_model.configs import TransformerConfig
from dreamer_model.dynamics import DynamicsConfig, DynamicsModel, Sampler, ShortcutForcingLoss, action_fields, shift_actions
from dreamer_model.dynamics.shortcut import noise_latents
from dynamics_toy import CELLS, D_Z, MOVES, N_ACTIONS, S_Z, batch, codebook, nearest_cell

FIELDS = action_fields({"discrete": {"kind": "categorical", "size": N_ACTIONS}})


pytestmark = pytest.mark.usefixtures("one_thread")


def train(objective: str, steps: int, window: int, make_batch, bootstrap_fraction: float | None = 0.25,
          seed: int = 0) -> DynamicsModel:
    torch.manual_seed(seed)
    cfg = DynamicsConfig(latent_tokens=S_Z, latent_dim=D_Z, context=window, k_max=16, objective=objective,
                         transformer=TransformerConfig(dim=64, depth=3, heads=4, kv_heads=2, head_dim=16, registers=1,
                                                       time_every=2, time_window=window))
    model = DynamicsModel(cfg, FIELDS)
    loss_fn = ShortcutForcingLoss(cfg.k_max, objective, bootstrap_fraction=bootstrap_fraction)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(steps):
        rows = make_batch(step)
        action_in, has_action_in = shift_actions(rows, FIELDS)
        loss, _ = loss_fn(lambda z, tau, d: model(z, tau, d, action_in, has_action_in).x_pred,
                          rows["latents"].float(), torch.Generator().manual_seed(step))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def test_predictions_depend_on_the_actions():
    """From the same two context frames, the next frame generated (K = 4 steps, K/V cache) under 'stay',
    'left' and 'right' puts the dot where that action takes it."""
    codes, rng = codebook(), np.random.default_rng(0)
    model = train("shortcut", 400, 4, lambda step: batch(16, 4, rng, codes))
    rows = batch(64, 3, np.random.default_rng(99), codes)
    cells = {}
    for action in range(N_ACTIONS):
        actions = rows["actions/discrete"].clone()
        actions[:, 1] = action  # the action taken after frame 1 leads to frame 2
        action_in, has_action_in = shift_actions({**rows, "actions/discrete": actions}, FIELDS)
        predicted = Sampler(model, steps=4).generate(rows["latents"][:, :2].float(), action_in, has_action_in, 1,
                                                     torch.Generator().manual_seed(0))
        cells[action] = nearest_cell(predicted[:, 0], codes)
        expected = (rows["cells"][:, 1] + int(MOVES[action])) % CELLS
        assert (cells[action] == expected).float().mean() > 0.5, action  # chance 1/8; action-blind: > 0.5 for one action at most
    for a, b in ((0, 1), (0, 2), (1, 2)):
        assert (cells[a] != cells[b]).float().mean() > 0.5, (a, b)  # action-blind: 0


def test_shortcut_training_keeps_the_finest_prediction_sharp():
    """With eq. 4's uniform levels most frames are bootstrap frames whose targets come from the model
    itself; they must not wash out the d_min (flow) prediction: after a short run it still denoises."""
    codes = torch.from_numpy(codebook())
    g = torch.Generator().manual_seed(0)

    def independent_frames(step):
        cells = torch.randint(0, CELLS, (16, 2), generator=g)
        return {"latents": codes[cells], "actions/discrete": torch.zeros(16, 2, dtype=torch.long),
                "has_action": torch.zeros(16, 2, dtype=torch.uint8), "is_first": torch.zeros(16, 2, dtype=torch.bool)}

    model = train("shortcut", 400, 2, independent_frames, bootstrap_fraction=None)
    rows = independent_frames(0)
    cells = torch.randint(0, CELLS, (16, 2), generator=g)
    x = codes[cells]
    action_in, has_action_in = shift_actions(rows, FIELDS)
    tau = torch.full((16, 2), 0.9)
    with torch.no_grad():
        x_pred = model(noise_latents(x, torch.randn(x.shape, generator=g), tau), tau, torch.full((16, 2), 1 / 16),
                       action_in, has_action_in).x_pred
    assert (nearest_cell(x_pred, codes.numpy()) == cells).float().mean() > 0.9
