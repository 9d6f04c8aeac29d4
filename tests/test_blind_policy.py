"""``agent.policy_sees_actions=false``: the policy acts on observations alone (no copycat shortcut).

Behaviour data is autocorrelated (a scripted breakout player repeats no-op and moves for many steps), so a
policy that sees its past actions can score well offline by repeating them and then ignore the game in
closed loop. A blind agent must give the same action distribution whatever actions came before, in
phase 2's training pass, in evaluation and in phase 3's imagination.
"""

import numpy as np
import torch
import zarr

from dreamer_model.checkpoint import load_agent, load_checkpoint, tokenizer_from_record
from dreamer_model.eval.policies import AgentPolicy
from test_agent_pipeline import invoke, phase2_variant, phase3_trains_from, stage


def action_probs(run, frames: np.ndarray, previous: list[int]) -> torch.Tensor:
    """The policy's probabilities at every frame of an episode, fed ``previous`` as the actions taken."""
    agent, state = load_agent(run)
    policy = AgentPolicy(agent, tokenizer_from_record(state["tokenizer"], state["path"]), agent.tasks[0])
    policy.reset([None], [0])
    probs = []
    with torch.no_grad():
        for t, action in enumerate(previous):
            policy.act(frames[t:t + 1], np.ones(1, bool))
            probs.append(policy.probs.clone())
            policy.prev_action = torch.tensor([action])
    return torch.cat(probs)


def test_blind_policy_ignores_past_actions_in_eval_and_phase3(tmp_path_factory, tmp_path):
    root = stage(tmp_path_factory, "phase2")
    blind = phase2_variant(root, tmp_path / "phase2_blind", "agent.policy_sees_actions=false")
    assert load_checkpoint(blind, "agent")["agent"]["agent"]["policy_sees_actions"] is False

    frames = zarr.open_group(str(root / "store"), mode="r")["data/frames"][:6]
    noop, moves = [0] * 6, [1, 3, 1, 3, 1, 3]
    torch.testing.assert_close(action_probs(blind, frames, noop), action_probs(blind, frames, moves))
    # the same check fails for the phase-2 agent that sees its actions: the comparison can tell them apart
    assert not torch.allclose(action_probs(root / "phase2", frames, noop), action_probs(root / "phase2", frames, moves))

    phase3_trains_from(root, blind, tmp_path / "phase3_blind")
    code, lines = invoke("phase3", "--data", root / "store", "--agent", blind, "--out", tmp_path / "changed",
                         "--set", "agent.policy_sees_actions=true", "--device", "cpu")
    assert code == 2 and len(lines) == 1 and "policy_sees_actions" in lines[0], lines
