"""``agent.policy_window=k``: the agent tokens read only the last k frames of the world model's window, the same
way in phase 2's training pass (one forward, narrowed time mask), in evaluation (a cache keeping k frames) and
in phase 3's imagination (the policy's own pass and cache).

A history lets behaviour cloning on autocorrelated play predict the recorded action from the paddle's recent
motion instead of the game (ladder.md, run 5): this is the knob that takes that history away.
"""

import numpy as np
import torch
import zarr

from dreamer_model.checkpoint import load_agent, load_checkpoint, tokenizer_from_record
from dreamer_model.configs import TransformerConfig
from dreamer_model.dynamics import DynamicsConfig, DynamicsModel, Sampler, action_fields
from dreamer_model.eval.policies import AgentPolicy
from test_agent_pipeline import phase2_variant, phase3_trains_from, stage


def small_world() -> DynamicsModel:
    torch.manual_seed(0)
    net = TransformerConfig(dim=32, depth=4, heads=2, kv_heads=1, head_dim=16, registers=2, time_every=2,
                            time_window=6)
    cfg = DynamicsConfig(latent_tokens=4, latent_dim=8, context=6, agent_tokens=1, transformer=net)
    return DynamicsModel(cfg, action_fields({"discrete": {"kind": "categorical", "size": 3}})).eval()


def test_a_narrow_window_reads_the_same_frames_in_one_pass_and_through_a_cache():
    model = small_world()
    sampler = Sampler(model)
    b, t = 2, 6
    z = torch.randn(b, t, 4, 8)
    tau, d = torch.full((b, t), 0.9), torch.full((b, t), 0.25)
    actions = {"discrete": torch.randint(0, 3, (b, t))}
    has = torch.ones(b, t, dtype=torch.bool)
    with torch.no_grad():
        whole = model(z, tau, d, actions, has, window=2).agent  # (B, T, 1, D)
        cache = sampler.init_cache(2)
        stepwise = torch.cat([model(z[:, i:i + 1], tau[:, i:i + 1], d[:, i:i + 1],
                                    {"discrete": actions["discrete"][:, i:i + 1]}, has[:, i:i + 1],
                                    cache=cache, update_cache=True).agent for i in range(t)], dim=1)
        torch.testing.assert_close(whole, stepwise, rtol=1e-4, atol=1e-5)
        # each of the two temporal layers reads 2 frames, so frame 5 sees frames 3-5 ((k − 1)·2 + 1): changing
        # frames 0-2 leaves it, changing frame 3 does not
        far, near = z.clone(), z.clone()
        far[:, :3] += 1.0
        near[:, 3] += 1.0
        torch.testing.assert_close(model(far, tau, d, actions, has, window=2).agent[:, 5], whole[:, 5])
        assert not torch.allclose(model(near, tau, d, actions, has, window=2).agent[:, 5], whole[:, 5])
        # the full window does read frame 0 at frame 5
        assert not torch.allclose(model(far, tau, d, actions, has).agent[:, 5], model(z, tau, d, actions, has).agent[:, 5])


def test_policy_window_trains_acts_and_imagines(tmp_path_factory, tmp_path):
    root = stage(tmp_path_factory, "phase2")
    narrow = phase2_variant(root, tmp_path / "phase2_window1", "agent.policy_window=1")
    assert load_checkpoint(narrow, "agent")["agent"]["agent"]["policy_window"] == 1
    # acting keeps no earlier frame in the policy's world-model cache (the one-pass equivalence is tested above)
    agent, state = load_agent(narrow)
    policy = AgentPolicy(agent, tokenizer_from_record(state["tokenizer"], state["path"]), agent.tasks[0])
    policy.reset([None], [0])
    frames = zarr.open_group(str(root / "store"), mode="r")["data/frames"][:6]
    for t in range(len(frames)):
        policy.act(frames[t:t + 1], np.ones(1, bool))
    assert policy.wm_cache.steps == len(frames)
    assert all(k is not None and k.shape[2] == 0 for k in policy.wm_cache.keys)

    out = phase3_trains_from(root, narrow, tmp_path / "phase3_window1")
    assert load_checkpoint(out, "agent")["agent"]["agent"]["policy_window"] == 1
