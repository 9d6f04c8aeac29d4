"""Which stage loses the skill? Every rung from the data's upper bound down, on one store and one set of seeds.

    python benchmarks/bench_ladder.py STORE --bc RUN --dreamer RUN [--episodes 200] [--seed 1000]

Each rung plays the same ``--episodes`` MinAtar episodes (the same environment seeds, so differences are
paired by episode) in the store's game, frame size and palette:

    behaviour (noisy-scripted) · grid-MLP BC (MinAtar's lossless grid: the data's upper bound) ·
    pixel-MLP BC (the frames, no tokenizer) · latent-MLP BC (the tokenizer's latents of one frame) ·
    latent-MLP BC on the last k frames (k = the world model's window: what phase 2's policy can read) ·
    phase-2 BC (greedy, sampled) · Dreamer (phase 3; greedy, sampled) · uniform random

and a second ladder for sampled play (grid-MLP and history-MLP BC sampling their softmax, then phase-2 BC and
Dreamer sampled), with each rung's mean return ± s.e., its ratio to the rung above and the paired difference
from it. The MLPs (two hidden layers of 256) learn the recorded action from one row of the store (the history
rung: the latents of the last k rows, newest first, zeros before the episode's start), a fixed number of steps,
greedy play (sampled in the second ladder). They train on phase 2's training episodes only (the store without
the episodes its run held out), so every BC rung learns from the same data: on small stores one episode more or
less moves an MLP's return by a third, and so does its training seed: each MLP rung is trained with
``--mlp-seeds`` seeds and its return per evaluation episode is the mean over them (the table lists each seed's
mean return). Phase 2 and 3 are the single runs given. Nothing is selected, so the reported seeds choose nothing.

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
from dreamer_model.eval.policies import AgentPolicy, BehaviourPolicy, draw, keep_rows
from dreamer_model.eval.runner import evaluate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.probe_latents import fit  # noqa: E402
from benchmarks.published import publish  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


class MLPPolicy:
    """An MLP on one feature of the current step: the env's grid, the frame's pixels or its latents. Greedy, or
    ``sampled`` from its softmax with one random stream per episode (its policy seed), as ``AgentPolicy`` samples."""

    def __init__(self, name: str, net: torch.nn.Module, feature: str, tokenizer=None, history: int = 1,
                 sampled: bool = False):
        self.name, self.net, self.feature, self.tokenizer, self.history = name, net, feature, tokenizer, history
        self.sampled = sampled
        self.envs: list = []

    def reset(self, envs: list, policy_seeds: list[int]) -> None:
        self.envs = envs
        self.generators = [torch.Generator().manual_seed(int(seed)) for seed in policy_seeds]
        self.rows = torch.arange(len(envs))
        self.cache = self.tokenizer.encoder.init_cache() if self.tokenizer is not None else None
        self.recent_BKD: torch.Tensor | None = None  # latents of each episode's last k frames, newest first

    def _features(self, frames_B: np.ndarray, live: np.ndarray) -> torch.Tensor:
        if self.feature == "grid":
            return torch.from_numpy(np.stack([self.envs[i].view() for i in live]).astype(np.float32)).flatten(1)
        frames = torch.from_numpy(np.ascontiguousarray(frames_B[live]))
        if self.feature == "pixels":
            return frames.float().flatten(1) / 255.0
        current = self.rows[torch.from_numpy(live)]
        if len(current) < int((self.rows >= 0).sum()):  # episodes ended: drop their rows from the encoder cache
            keep_rows(self.cache, current, self.tokenizer.encoder.layout.size)
            if self.recent_BKD is not None:
                self.recent_BKD = self.recent_BKD[current]
            self.rows[:] = -1
            self.rows[torch.from_numpy(live)] = torch.arange(len(live))
        z = self.tokenizer.encode(frames[:, None], cache=self.cache, update_cache=True).flatten(1)  # (b, S_z·D_z)
        if self.history == 1:
            return z
        if self.recent_BKD is None:
            self.recent_BKD = z.new_zeros(len(z), self.history, z.shape[1])
        self.recent_BKD = torch.cat((z[:, None], self.recent_BKD[:, :-1]), dim=1)
        return self.recent_BKD.flatten(1)

    @torch.inference_mode()
    def act(self, frames_B: np.ndarray, alive_B: np.ndarray) -> np.ndarray:
        live = np.flatnonzero(alive_B)
        actions = np.zeros(len(frames_B), np.int64)
        logits = self.net(self._features(frames_B, live))  # (b, actions)
        if not self.sampled:
            actions[live] = logits.argmax(-1).numpy()
            return actions
        actions[live] = draw(logits.softmax(-1), [self.generators[i] for i in live]).numpy()
        return actions


def recent_rows(x: np.ndarray, episodes: list[dict], k: int) -> np.ndarray:
    """Per store row, the features of its episode's last k rows, newest first, zeros before the episode's start:
    (N, …) → (N, k·F), what ``MLPPolicy(history=k)`` assembles while playing."""
    flat = x.reshape(len(x), -1)
    out = np.zeros((len(x), k * flat.shape[1]), flat.dtype)
    for e in episodes:
        padded = np.concatenate((np.zeros((k - 1, flat.shape[1]), flat.dtype), flat[e["start"]:e["end"]]))
        for i in range(k):  # slot i holds row t − i
            out[e["start"]:e["end"], i * flat.shape[1]:(i + 1) * flat.shape[1]] = padded[k - 1 - i:len(padded) - i]
    return out


def training_rows(manifest: dict, has_action: np.ndarray, heldout: list[str]) -> np.ndarray:
    """Rows with an action in the episodes phase 2 trained on (every episode but its run's held-out ones)."""
    rows = has_action.copy()
    for e in manifest["episodes"]:
        if e["id"] in heldout:
            rows[e["start"]:e["end"]] = False
    return rows


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
    parser.add_argument("--mlp-seeds", type=int, default=3, help="training seeds per MLP rung (returns averaged)")
    parser.add_argument("--history", type=int, default=None,
                        help="frames of the history MLP (default: the phase-2 world model's window)")
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
    bc, bc_state = load_agent(args.bc)
    dreamer, dreamer_state = load_agent(args.dreamer)
    task = bc.tasks[0]
    heldout = list((bc_state.get("data") or {}).get("heldout") or [])
    history = args.history or bc.world.cfg.context
    y = torch.from_numpy(group["data/actions/discrete"][:])
    train = training_rows(manifest, group["data/has_action"][:].astype(bool), heldout)
    n_actions = int(manifest["actions"]["discrete"]["size"])
    latents = group[manifest["fields"]["latents"]["path"]][:].astype(np.float32)
    features = {"grid": group["data/obs_grid"][:], "pixels": group["data/frames"][:] / np.float32(255.0),
                "latents": latents, "history": recent_rows(latents, manifest["episodes"], history)}
    nets: dict[str, list[torch.nn.Module]] = {}
    for name, x in features.items():
        x = torch.from_numpy(x.astype(np.float32)).flatten(1)
        nets[name] = []
        for seed in range(args.mlp_seeds):
            torch.manual_seed(seed)
            nets[name].append(fit(x, y, train, n_actions, args.mlp_steps).eval())
    rungs = [
        ("behaviour (noisy-scripted)", BehaviourPolicy("noisy-scripted")),
        ("grid-MLP BC", [MLPPolicy("grid", net, "grid") for net in nets["grid"]]),
        ("pixel-MLP BC", [MLPPolicy("pixels", net, "pixels") for net in nets["pixels"]]),
        ("latent-MLP BC", [MLPPolicy("latents", net, "latents", tokenizer) for net in nets["latents"]]),
        (f"latent-MLP BC, last {history} frames",
         [MLPPolicy("history", net, "latents", tokenizer, history) for net in nets["history"]]),
        ("phase-2 BC, greedy", AgentPolicy(bc, tokenizer, task, greedy=True, seed=args.seed)),
        ("phase-2 BC, sampled", AgentPolicy(bc, tokenizer, task, seed=args.seed)),
        ("Dreamer (phase 3), greedy", AgentPolicy(dreamer, tokenizer, task, greedy=True, seed=args.seed)),
        ("Dreamer (phase 3), sampled", AgentPolicy(dreamer, tokenizer, task, seed=args.seed)),
        ("uniform random", BehaviourPolicy("random")),
    ]
    # The same ladder for sampled play (how the quickstart's BC and Dreamer rows play): the MLPs sample their softmax.
    sampled_rungs = [
        ("behaviour (noisy-scripted)", None),
        ("grid-MLP BC, sampled", [MLPPolicy("grid", net, "grid", sampled=True) for net in nets["grid"]]),
        (f"latent-MLP BC, last {history} frames, sampled",
         [MLPPolicy("history", net, "latents", tokenizer, history, sampled=True) for net in nets["history"]]),
        ("phase-2 BC, sampled", None),
        ("Dreamer (phase 3), sampled", None),
    ]
    results, seed_means = {}, {}
    for name, policy in rungs + [(name, policy) for name, policy in sampled_rungs if policy is not None]:
        if isinstance(policy, list):  # an MLP rung: one policy per training seed, returns averaged per episode
            per_seed = [returns_of(settings, p, args.episodes, args.seed) for p in policy]
            results[name], seed_means[name] = np.mean(per_seed, axis=0), [r.mean() for r in per_seed]
        else:
            results[name] = returns_of(settings, policy, args.episodes, args.seed)
    hidden = AgentPolicy(bc, tokenizer, task, seed=args.seed)
    bc.cfg.policy_sees_actions = False  # the world model is told no previous action: has_action off
    results_hidden = returns_of(settings, hidden, args.episodes, args.seed)
    bc.cfg.policy_sees_actions = True

    def row(name: str, r: np.ndarray, above: np.ndarray | None) -> str:
        mean, se = r.mean(), r.std(ddof=1) / np.sqrt(len(r))
        seeds = " / ".join(f"{m:.2f}" for m in seed_means.get(name, [])) or "—"
        if above is None:
            return f"| {name} | {mean:.2f} ± {se:.2f} | {seeds} | — | — |"
        d = r - above
        ratio = f"{mean / above.mean():.2f}" if above.mean() > 0 else "—"
        return (f"| {name} | {mean:.2f} ± {se:.2f} | {seeds} | {ratio} | "
                f"{d.mean():+.2f} ± {d.std(ddof=1) / np.sqrt(len(d)):.2f} |")

    names = [name for name, _ in rungs]
    lines = [f"Store `{args.store}` ({manifest['totals']['episodes']} episodes, {manifest['totals']['frames']:,} "
             f"frames); {args.episodes} evaluation episodes per rung, seed {args.seed}, the same environments for "
             f"every rung; BC `{bc_state['path']}` (step {bc_state['step']}), Dreamer `{dreamer_state['path']}` "
             f"(step {dreamer_state['step']}); MLPs {args.mlp_steps} steps on phase 2's training episodes "
             f"({len(heldout)} held out: {', '.join(heldout) or 'none'}).", "",
             "| rung | mean return ± s.e. | per training seed | ratio to the rung above | "
             "paired difference from the rung above |",
             "|---|---|---|---|---|"]
    lines += [row(name, results[name], results[names[i - 1]] if i else None) for i, name in enumerate(names)]
    lines += [row("phase-2 BC, sampled, previous actions hidden", results_hidden, results["phase-2 BC, sampled"]), ""]
    sampled = [name for name, _ in sampled_rungs]
    lines += ["Sampled play, every BC rung sampling its policy (the behaviour samples its own 10 % noise):", "",
              *lines[2:4]]
    lines += [row(name, results[name], results[sampled[i - 1]] if i else None) for i, name in enumerate(sampled)]
    lines += [""]

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
