"""Which stage loses the skill? Every rung from the data's upper bound down, on one store and one set of seeds.

    python benchmarks/bench_ladder.py STORE --bc RUN --dreamer RUN [--episodes 200] [--seed 1000]

Each rung plays the same ``--episodes`` MinAtar episodes (the same environment seeds, so differences are
paired by episode) in the store's game, frame size and palette:

    behaviour (noisy-scripted) · grid-MLP BC (MinAtar's lossless grid: the data's upper bound) ·
    pixel-MLP BC (the frames, no tokenizer) · latent-MLP BC (the tokenizer's latents of one frame) ·
    phase-2 BC (greedy, sampled) · Dreamer (phase 3; greedy, sampled) · uniform random

with each rung's mean return ± s.e., its ratio to the rung above and the paired difference from it. The
MLPs (two hidden layers of 256) learn the recorded action from one row of the store (all its episodes,
a fixed number of steps; greedy play); nothing is selected, so the reported seeds choose nothing.

BC diagnostics (why would BC play below its own held-out accuracy?): the phase-2 policy played with its
previous actions hidden from the world model (``has_action`` off), and offline on the store's last
episodes: its greedy action accuracy when its context holds the recorded previous actions (teacher
forcing) vs its own, split into the first ``--early`` steps of an episode and the rest.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import zarr

from dreamer_model.checkpoint import load_agent, tokenizer_from_record, tokenizer_record
from dreamer_model.stores import env_settings
from dreamer_model.eval.envs import EnvSettings
from dreamer_model.eval.policies import AgentPolicy, BehaviourPolicy, keep_rows
from dreamer_model.eval.runner import evaluate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.probe_latents import fit  # noqa: E402
from benchmarks.published import publish  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


class MLPPolicy:
    """Greedy MLP on one feature of the current step: the env's grid, the frame's pixels or its latents."""

    def __init__(self, name: str, net: torch.nn.Module, feature: str, tokenizer=None):
        self.name, self.net, self.feature, self.tokenizer = name, net, feature, tokenizer
        self.envs: list = []

    def reset(self, envs: list, policy_seeds: list[int]) -> None:
        self.envs = envs
        self.rows = torch.arange(len(envs))
        self.cache = self.tokenizer.encoder.init_cache() if self.tokenizer is not None else None

    def _features(self, frames_B: np.ndarray, live: np.ndarray) -> torch.Tensor:
        if self.feature == "grid":
            return torch.from_numpy(np.stack([self.envs[i].view() for i in live]).astype(np.float32)).flatten(1)
        frames = torch.from_numpy(np.ascontiguousarray(frames_B[live]))
        if self.feature == "pixels":
            return frames.float().flatten(1) / 255.0
        current = self.rows[torch.from_numpy(live)]
        if len(current) < int((self.rows >= 0).sum()):  # episodes ended: drop their rows from the encoder cache
            keep_rows(self.cache, current, self.tokenizer.encoder.layout.size)
            self.rows[:] = -1
            self.rows[torch.from_numpy(live)] = torch.arange(len(live))
        z = self.tokenizer.encode(frames[:, None], cache=self.cache, update_cache=True)  # (b, 1, S_z, D_z)
        return z.flatten(1)

    @torch.inference_mode()
    def act(self, frames_B: np.ndarray, alive_B: np.ndarray) -> np.ndarray:
        live = np.flatnonzero(alive_B)
        actions = np.zeros(len(frames_B), np.int64)
        actions[live] = self.net(self._features(frames_B, live)).argmax(-1).numpy()
        return actions


def returns_of(settings: EnvSettings, policy, episodes: int, seed: int) -> np.ndarray:
    run = evaluate(settings, policy, episodes, seed=seed, batch=32)
    return np.array([e.ret for e in sorted(run.episodes, key=lambda e: e.index)])


@torch.inference_mode()
def offline_accuracy(agent, tokenizer, task: str, frames: np.ndarray, actions: np.ndarray, early: int,
                     teacher: bool) -> dict[str, float]:
    """Greedy phase-2 actions along one stored episode; previous actions recorded (teacher) or its own."""
    policy = AgentPolicy(agent, tokenizer, task, greedy=True)
    policy.reset([None], [0])
    hits = []
    for t in range(len(frames)):
        action = int(policy.act(frames[t:t + 1], np.ones(1, bool))[0])
        hits.append(action == int(actions[t]))
        if teacher:
            policy.prev_action = torch.tensor([int(actions[t])])
    hits = np.array(hits)
    return {"early": hits[:early], "late": hits[early:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store")
    parser.add_argument("--bc", required=True, help="phase-2 run (or checkpoint)")
    parser.add_argument("--dreamer", required=True, help="phase-3 run (or checkpoint)")
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1000, help="evaluation seed (the quickstart reports seed 0)")
    parser.add_argument("--mlp-steps", type=int, default=3000)
    parser.add_argument("--offline-episodes", type=int, default=6, help="store episodes (its last) for teacher forcing")
    parser.add_argument("--early", type=int, default=8)
    parser.add_argument("--results", default=None, help="markdown file to write (default: print only)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", module="zarr")
    torch.set_num_threads(1)
    began = time.time()

    manifest = json.loads((Path(args.store) / "manifest.json").read_text())
    group = zarr.open_group(args.store, mode="r")
    settings = EnvSettings(**env_settings(manifest, args.store)).checked()
    tokenizer = tokenizer_from_record(tokenizer_record(manifest["latents"], args.store), args.store)
    y = torch.from_numpy(group["data/actions/discrete"][:])
    has_action = group["data/has_action"][:].astype(bool)
    n_actions = int(manifest["actions"]["discrete"]["size"])
    features = {"grid": group["data/obs_grid"][:], "pixels": group["data/frames"][:] / np.float32(255.0),
                "latents": group[manifest["fields"]["latents"]["path"]][:]}
    nets = {}
    for name, x in features.items():
        torch.manual_seed(0)
        nets[name] = fit(torch.from_numpy(x.astype(np.float32)).flatten(1), y, has_action, n_actions,
                         args.mlp_steps).eval()

    bc, bc_state = load_agent(args.bc)
    dreamer, dreamer_state = load_agent(args.dreamer)
    task = bc.tasks[0]
    rungs = [
        ("behaviour (noisy-scripted)", BehaviourPolicy("noisy-scripted")),
        ("grid-MLP BC", MLPPolicy("grid", nets["grid"], "grid")),
        ("pixel-MLP BC", MLPPolicy("pixels", nets["pixels"], "pixels")),
        ("latent-MLP BC", MLPPolicy("latents", nets["latents"], "latents", tokenizer)),
        ("phase-2 BC, greedy", AgentPolicy(bc, tokenizer, task, greedy=True, seed=args.seed)),
        ("phase-2 BC, sampled", AgentPolicy(bc, tokenizer, task, seed=args.seed)),
        ("Dreamer (phase 3), greedy", AgentPolicy(dreamer, tokenizer, task, greedy=True, seed=args.seed)),
        ("Dreamer (phase 3), sampled", AgentPolicy(dreamer, tokenizer, task, seed=args.seed)),
        ("uniform random", BehaviourPolicy("random")),
    ]
    results = {name: returns_of(settings, policy, args.episodes, args.seed) for name, policy in rungs}
    hidden = AgentPolicy(bc, tokenizer, task, seed=args.seed)
    bc.cfg.policy_sees_actions = False  # the world model is told no previous action: has_action off
    results_hidden = returns_of(settings, hidden, args.episodes, args.seed)
    bc.cfg.policy_sees_actions = True

    def row(name: str, r: np.ndarray, above: np.ndarray | None) -> str:
        mean, se = r.mean(), r.std(ddof=1) / np.sqrt(len(r))
        if above is None:
            return f"| {name} | {mean:.2f} ± {se:.2f} | — | — |"
        d = r - above
        ratio = f"{mean / above.mean():.2f}" if above.mean() > 0 else "—"
        return f"| {name} | {mean:.2f} ± {se:.2f} | {ratio} | {d.mean():+.2f} ± {d.std(ddof=1) / np.sqrt(len(d)):.2f} |"

    names = list(results)
    lines = [f"Store `{args.store}` ({manifest['totals']['episodes']} episodes, {manifest['totals']['frames']:,} "
             f"frames); {args.episodes} evaluation episodes per rung, seed {args.seed}, the same environments for "
             f"every rung; BC `{bc_state['path']}` (step {bc_state['step']}), Dreamer `{dreamer_state['path']}` "
             f"(step {dreamer_state['step']}); MLPs {args.mlp_steps} steps.", "",
             "| rung | mean return ± s.e. | ratio to the rung above | paired difference from the rung above |",
             "|---|---|---|---|"]
    lines += [row(name, results[name], results[names[i - 1]] if i else None) for i, name in enumerate(names)]
    lines += [row("phase-2 BC, sampled, previous actions hidden", results_hidden, results["phase-2 BC, sampled"]), ""]

    episodes = manifest["episodes"][-args.offline_episodes:]
    offline = {True: {"early": [], "late": []}, False: {"early": [], "late": []}}
    for episode in episodes:
        start, end = episode["start"], episode["end"]
        frames, actions = group["data/frames"][start:end - 1], group["data/actions/discrete"][start:end - 1]
        for teacher in (True, False):
            hits = offline_accuracy(bc, tokenizer, task, frames, actions, args.early, teacher)
            for part in ("early", "late"):
                offline[teacher][part].append(hits[part])
    lines += [f"Phase-2 BC offline on the store's last {len(episodes)} episodes (greedy action = recorded action):", "",
              f"| previous actions in its context | first {args.early} steps | later steps |", "|---|---|---|"]
    for teacher, label in ((True, "recorded (teacher forcing)"), (False, "its own")):
        early, late = (np.concatenate(offline[teacher][p]) for p in ("early", "late"))
        lines.append(f"| {label} | {early.mean():.3f} ({len(early)}) | {late.mean():.3f} ({len(late)}) |")
    publish(lines, args.results, f" ({time.time() - began:.0f} s).")


if __name__ == "__main__":
    main()
