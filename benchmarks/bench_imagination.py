"""Does imagination rank policies the way the real game does? Imagined returns of fixed policies.

    python benchmarks/bench_imagination.py STORE --agent CKPT [--horizon 16] [--contexts 96] [--repeats 3]

Phase 3 can only improve a policy if the world model and the reward / continuation heads score
policies in the order the real environment would. From the same held-out contexts (the ones phase 3
evaluates on) and the same noise, this imagines ``horizon`` steps under: the agent's policy (sampled
and greedy), the uniform random policy, and each constant action, and prints the imagined discounted
return (the quantity phase 3's held-out evaluation reports), the imagined reward sum and the imagined
probability of an episode end. A constant action should not beat the agent's own policy in breakout
(the ball is lost); if it does, PMPO will learn to exploit the model rather than to play.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import warnings

import torch

from dreamer_model.agent.distributions import ActionDistribution, Categorical
from dreamer_model.agent.returns import state_weights
from dreamer_model.errors import ModelError
from dreamer_model.train.phase3 import Phase3Trainer, Phase3TrainOptions


class FixedPolicy:
    """Stands in for the policy head inside ``Imagination.imagine``: random, greedy or one constant action."""

    def __init__(self, head, name: str, size: int, kind: str, action: int = 0):
        self.head, self.name, self.size, self.kind, self.action = head, name, size, kind, action

    def __call__(self, h: torch.Tensor, first_only: bool = True) -> ActionDistribution:
        if self.kind == "greedy":
            log_probs = self.head(h, first_only=True).parts[self.name].log_probs
            logits = torch.where(log_probs == log_probs.amax(-1, keepdim=True), 0.0, -1e9)
        elif self.kind == "random":
            return self.head.uniform(h)  # the π_random the quickstart's imagination check scores too
        else:
            logits = torch.full((*h.shape[:-1], self.size), -1e9, device=h.device)
            logits[..., self.action] = 0.0
        return ActionDistribution({self.name: Categorical(logits)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("store")
    parser.add_argument("--agent", required=True, help="a phase-2 agent checkpoint (the prior phase 3 starts from)")
    parser.add_argument("--horizon", type=int, default=16)
    parser.add_argument("--contexts", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=3, help="noise seeds per context")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", module="zarr")
    torch.set_num_threads(1)

    try:
        with tempfile.TemporaryDirectory() as scratch:  # the trainer wants a run folder; nothing is trained
            trainer = Phase3Trainer(Phase3TrainOptions(data=args.store, agent=args.agent, out=scratch, sets=[
                f"agent.horizon={args.horizon}", f"train.eval_windows={args.contexts}"]))
            trainer.log.close()
    except ModelError as error:
        raise SystemExit(f"error: {error}") from None
    agent = trainer.agent
    component = agent.space.components[0]
    names = (trainer.manifest["actions"].get(component.name) or {}).get("names") or list(map(str, range(component.size)))
    policies = {"policy (sampled)": agent.policy,
                "policy (greedy)": FixedPolicy(agent.policy, component.name, component.size, "greedy"),
                "uniform random": FixedPolicy(agent.policy, component.name, component.size, "random")}
    policies.update({f"always {label}": FixedPolicy(agent.policy, component.name, component.size, "constant", index)
                     for index, label in enumerate(names)})
    gamma = trainer.run.agent.gamma
    rows = {}
    for label, policy in policies.items():
        returns, rewards, ends = [], [], []
        for repeat in range(args.repeats):
            traj = trainer.imagination.imagine(trainer.eval_batch, torch.Generator().manual_seed(100 + repeat), policy)
            alive = state_weights(traj.continue_BH)
            discount = gamma ** torch.arange(traj.reward_BH.shape[1], dtype=torch.float32)
            returns.append((alive * traj.continue_BH * traj.reward_BH * discount).sum(1))
            rewards.append(traj.reward_BH.sum(1))
            ends.append((1 - traj.continue_BH).sum(1))
        ret = torch.cat(returns)
        rows[label] = {"imagined_return": round(float(ret.mean()), 3),
                       "stderr": round(float(ret.std() / len(ret) ** 0.5), 3),
                       "reward_sum": round(float(torch.cat(rewards).mean()), 3),
                       "end_probability_sum": round(float(torch.cat(ends).mean()), 3)}
        print(f"{label:24s} {rows[label]}", flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"store": args.store, "agent": args.agent, "horizon": args.horizon,
                       "contexts": int(trainer.eval_batch['latents'].shape[0]), "repeats": args.repeats,
                       "policies": rows}, handle, indent=1)


if __name__ == "__main__":
    main()
