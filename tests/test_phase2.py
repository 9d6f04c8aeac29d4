"""Phase 2: agent tokens leave the world model unchanged; BC + reward heads learn through the real CLI."""

import math

import pytest
import torch

from dreamer_model.agent.actions import ActionSpace
from dreamer_model.agent.config import AgentConfig
from dreamer_model.agent.model import Agent
from dreamer_model.configs import TransformerConfig
from dreamer_model.dynamics import DynamicsConfig, DynamicsModel, Sampler
from dreamer_model.dynamics.actions import ActionField
from dreamer_model.train.checkpoint import load_checkpoint
from dreamer_model.train.phase2 import Phase2TrainOptions, train_phase2
from test_agent_pipeline import invoke, metrics, stage


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread for this module's small tensors (2 shared cores thrash with more); restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

SPACE = ActionSpace.from_manifest({"discrete": {"kind": "categorical", "size": 6}}, "test")
FIELDS = [ActionField("discrete", "categorical", 6)]


def small_agent(seed: int = 0) -> Agent:
    torch.manual_seed(seed)
    cfg = DynamicsConfig(latent_tokens=4, latent_dim=8, context=6, transformer=TransformerConfig(
        dim=32, depth=4, heads=2, kv_heads=1, head_dim=16, registers=2, time_every=2, time_window=6))
    return Agent(cfg, FIELDS, SPACE, AgentConfig(agent_tokens=2, head_hidden=16, mtp=2), ["reward", "other"])


def inputs(b: int = 2, t: int = 5, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(b, t, 4, 8, generator=g)
    tau = torch.rand(b, t, generator=g)
    d = torch.full((b, t), 1 / 4)
    action = {"discrete": torch.randint(6, (b, t), generator=g)}
    has = torch.ones(b, t, dtype=torch.bool)
    return z, tau, d, action, has


def test_world_model_predictions_are_numerically_unchanged_by_agent_tokens():
    agent = small_agent()
    z, tau, d, action, has = inputs()
    with torch.no_grad():
        task0 = agent.world(z, tau, d, action, has, agent=agent.agent_inputs(torch.tensor([0, 0]), 5))
        task1 = agent.world(z, tau, d, action, has, agent=agent.agent_inputs(torch.tensor([1, 1]), 5))
        wild = agent.world(z, tau, d, action, has, agent=100 * torch.randn(2, 5, 2, 32))
        # the same weights in a world model that has no agent tokens at all
        plain = DynamicsModel(agent.world.cfg.__class__(**{**agent.world.cfg.__dict__, "agent_tokens": 0}), FIELDS)
        missing, unexpected = plain.load_state_dict(agent.world.state_dict(), strict=False)
        assert unexpected == ["agent_queries"] and missing == []
        alone = plain(z, tau, d, action, has)
    assert torch.equal(task0.x_pred, task1.x_pred) and torch.equal(task0.x_pred, wild.x_pred)
    torch.testing.assert_close(task0.x_pred, alone.x_pred, rtol=1e-5, atol=1e-5)
    assert alone.agent is None and task0.agent.shape == (2, 5, 2, 32)
    # … while the agent tokens do read the world: their output depends on the task, the latents and the actions
    assert not torch.allclose(task0.agent, task1.agent)
    with torch.no_grad():
        other_z = agent.world(z + 1, tau, d, action, has, agent=agent.agent_inputs(torch.tensor([0, 0]), 5))
        other_a = agent.world(z, tau, d, {"discrete": (action["discrete"] + 1) % 6}, has,
                              agent=agent.agent_inputs(torch.tensor([0, 0]), 5))
    assert not torch.allclose(task0.agent, other_z.agent) and not torch.allclose(task0.agent, other_a.agent)


def test_generation_with_the_kv_cache_is_unchanged_by_agent_tokens():
    agent = small_agent()
    z, _, _, action, has = inputs(t=4)
    sampler = Sampler(agent.world)
    noise = torch.randn(2, 1, 4, 8, generator=torch.Generator().manual_seed(5))
    frames = []
    with torch.no_grad():
        for tokens in (agent.agent_inputs(torch.tensor([0, 1]), 3), None):
            cache = sampler.init_cache()
            sampler.commit(cache, z[:, :3], {"discrete": action["discrete"][:, :3]}, has[:, :3], torch.zeros_like(z[:, :3]),
                           agent=tokens)
            frames.append(sampler.denoise(cache, {"discrete": action["discrete"][:, 3:]}, has[:, 3:], noise))
    assert torch.equal(frames[0], frames[1])


def test_phase2_learns_bc_and_reward_heads_and_records_what_eval_needs(tmp_path_factory):
    root = stage(tmp_path_factory, "phase2")
    run = root / "phase2"
    rows = metrics(run)
    train = [r for r in rows if r["split"] == "train"]
    heldout = [r for r in rows if r["split"] == "heldout"][-1]
    assert [r["step"] for r in train] == list(range(1, 41))
    for key in ("bc_nll", "reward_nll", "continue_nll", "dyn_loss", "bc_accuracy", "policy_entropy", "loss"):
        assert all(math.isfinite(r[key]) for r in train), key
    # eq. 9 terms went down from chance: 6 actions (ln 6) and 255 reward bins (ln 255). 40 steps on the toy store
    # only reach the action frequencies: that BC reads the frames (held-out NLL below the frequencies' entropy)
    # and plays better than random is asserted on real breakout data in test_object_learning.py.
    assert heldout["bc_nll"] < math.log(6) - 0.05
    assert heldout["reward_nll"] < math.log(255) - 1.0
    state = load_checkpoint(run, "agent")
    assert state["phase"] == 2 and state["step"] == 40
    store_latents = __import__("json").loads((root / "store" / "manifest.json").read_text())["latents"]
    assert state["tokenizer"]["model_hash"] == store_latents["checkpoint_hash"]
    assert state["env"]["env"] == "minatar" and state["env"]["game"] == "breakout" and state["env"]["size"] == [32, 32]
    assert state["agent"]["tasks"] == ["reward"]
    # the world model was fine-tuned jointly (its dynamics loss on): its weights moved from phase 1's
    world = load_checkpoint(root / "phase1", "dynamics")["model"]
    moved = [name for name, value in world.items() if not torch.equal(value, state["model"][f"world.{name}"])]
    assert moved


def test_freeze_wm_keeps_the_world_model_weights(tmp_path_factory):
    root = stage(tmp_path_factory, "phase2")
    out = root / "phase2_frozen"
    train_phase2(Phase2TrainOptions(data=str(root / "store"), wm=str(root / "phase1"), out=str(out),
                                    config=str(root / "phase2.yaml"), steps=3, device="cpu", freeze_wm=True))
    world = load_checkpoint(root / "phase1", "dynamics")["model"]
    state = load_checkpoint(out, "agent")
    assert all(torch.equal(value, state["model"][f"world.{name}"]) for name, value in world.items())
    assert not any(key.startswith("dyn_") for key in metrics(out)[0])  # no dynamics loss when frozen
    assert state["config"]["freeze_world_model"] is True


def test_bad_input_is_one_clear_line(tmp_path_factory, tmp_path):
    root = stage(tmp_path_factory, "phase1")
    cases = (
        (tmp_path / "nowhere", root / "phase1", "not a dreamer store"),
        (root / "store", tmp_path / "missing_run", "no such checkpoint file or run directory"),
        (root / "store_without_latents", root / "phase1", "store has no latents"),
    )
    for store, wm, expected in cases:
        code, lines = invoke("phase2", "--data", store, "--wm", wm, "--out", tmp_path / "run", "--device", "cpu")
        assert code == 2 and len(lines) == 1 and "error" in lines[0] and expected in lines[0], lines
