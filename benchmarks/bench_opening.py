"""Where a MinAtar agent parts from the player it cloned: agreement with the scripted player, step by step.

The agent (a phase-2 or phase-3 run) plays real episodes; at every step the scripted player that recorded
the data (``noisy-scripted`` without its random actions) is asked what it would do in the same state.
Offline accuracy on recorded windows says how well BC fits the data; this says where, in the episodes the
agent plays itself, it stops doing what the data did: an episode's first steps (empty context, the game's
opening) are one window in hundreds of a uniform draw, and breakout's first ball is caught or lost there.

``--teacher`` lets the scripted player drive and only asks the agent (its previous action in context is the
scripted one): the same states as the data, so a gap between the two modes is the agent's own drift.

    python benchmarks/bench_opening.py RUN [--episodes 200] [--seed 1000] [--greedy] [--teacher]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import numpy as np
import torch

from dreamer_data.collect.minatar_policy import scripted_for
from dreamer_model.eval.evaluate import EvalOptions, prepare
from dreamer_model.eval.runner import evaluate


@dataclass
class StepAgreement:
    """Counts of (agent = scripted) per step of the episode; steps from ``last`` on are pooled."""

    last: int = 12
    agree: np.ndarray = field(init=False)
    seen: np.ndarray = field(init=False)

    def __post_init__(self):
        self.agree, self.seen = np.zeros(self.last + 1, np.int64), np.zeros(self.last + 1, np.int64)

    def add(self, step: int, agent_action: int, scripted_action: int) -> None:
        k = min(step, self.last)
        self.agree[k] += int(agent_action == scripted_action)
        self.seen[k] += 1

    def rows(self, episodes: int) -> list[tuple[str, float, int, float]]:
        """(steps, agreement, decisions, share of episodes still running)."""
        return [(str(k) if k < self.last else f"{k}+", self.agree[k] / max(self.seen[k], 1), int(self.seen[k]),
                 self.seen[k] / episodes if k < self.last else float("nan")) for k in range(self.last + 1)]


class Asked:
    """Wraps an evaluation policy: each step asks the scripted player too; with ``teacher`` the scripted
    player's action is played and fed back as the agent's previous action."""

    def __init__(self, policy, game: str, tally: StepAgreement, teacher: bool):
        self.policy, self.script, self.tally, self.teacher = policy, scripted_for(game), tally, teacher
        self.name = policy.name

    def reset(self, envs: list, policy_seeds: list[int]) -> None:
        self.envs, self.steps = envs, np.zeros(len(envs), np.int64)
        self.policy.reset(envs, policy_seeds)

    def act(self, frames_B: np.ndarray, alive_B: np.ndarray) -> np.ndarray:
        actions = self.policy.act(frames_B, alive_B)
        for i in np.flatnonzero(alive_B):
            scripted = self.script(self.envs[i].view(), self.envs[i].channels)
            self.tally.add(int(self.steps[i]), int(actions[i]), scripted)
            self.steps[i] += 1
            if self.teacher:
                actions[i] = scripted
        if self.teacher:
            self.policy.prev_action = torch.from_numpy(actions[alive_B]).long()
        return actions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a phase-2 or phase-3 run (or checkpoint) trained on a MinAtar store")
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1000, help="evaluation seed (the quickstart reports seed 0)")
    parser.add_argument("--greedy", action="store_true", help="the policy's mode instead of a sample")
    parser.add_argument("--teacher", action="store_true", help="the scripted player drives; the agent is asked")
    parser.add_argument("--last", type=int, default=12, help="steps from this one on are pooled")
    args = parser.parse_args()
    torch.set_num_threads(1)
    settings, policy, _, _ = prepare(EvalOptions(env="minatar", ckpt=args.run, episodes=args.episodes,
                                                 seed=args.seed, greedy=args.greedy))
    tally = StepAgreement(args.last)
    run = evaluate(settings, Asked(policy, settings.game, tally, args.teacher), args.episodes, seed=args.seed)
    returns = np.array([e.ret for e in run.episodes])
    mode = ("greedy" if args.greedy else "sampled") + (", scripted player driving" if args.teacher else "")
    print(f"{args.run} ({mode}), {args.episodes} episodes at seed {args.seed}: return "
          f"{returns.mean():.2f} ± {returns.std(ddof=1) / np.sqrt(len(returns)):.2f}")
    print("| step | agreement with the scripted player | decisions | episodes still running |")
    print("|---|---|---|---|")
    for steps, agreement, decisions, running in tally.rows(args.episodes):
        print(f"| {steps} | {agreement:.3f} | {decisions} | " + ("—" if np.isnan(running) else f"{running:.2f}") + " |")


if __name__ == "__main__":
    main()
