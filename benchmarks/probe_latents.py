"""Can a policy read the tokenizer's latents? A MinAtar store's latents against its lossless grid.

    python benchmarks/probe_latents.py STORE [--episodes 30] [--steps 3000]

Two MLPs of the same size learn the behaviour policy's action from one row: one reads
``data/obs_grid`` (MinAtar's lossless state), the other ``data/latents`` (what every later stage
sees). Reported: held-out accuracy (last 20 % of the behaviour episodes) and the return of each MLP
playing greedily in the real environment (evaluation seeds, frames drawn in the store's palette and
encoded by the store's tokenizer). If the grid MLP plays and the latent MLP does not, the tokenizer
dropped what the game needs, and no world model or agent downstream can recover it.
"""

from __future__ import annotations

import argparse
import json
import warnings

import numpy as np
import torch
import zarr

from dreamer_model.checkpoint import tokenizer_from_record, tokenizer_record
from dreamer_model.stores import env_settings
from dreamer_model.eval.envs import EnvSettings, eval_seeds, frame, make_env


def mlp(inputs: int, actions: int) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(inputs, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256),
                               torch.nn.ReLU(), torch.nn.Linear(256, actions))


def fit(x: torch.Tensor, y: torch.Tensor, train: np.ndarray, actions: int, steps: int) -> torch.nn.Module:
    net = mlp(x.shape[1], actions)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    rows = torch.from_numpy(np.flatnonzero(train))
    for _ in range(steps):
        batch = rows[torch.randint(len(rows), (256,))]
        loss = torch.nn.functional.cross_entropy(net(x[batch]), y[batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net


@torch.no_grad()
def play(net: torch.nn.Module, read, settings: EnvSettings, episodes: int) -> float:
    returns = []
    for i in range(episodes):
        env = make_env(settings, eval_seeds(0, i)[0])
        observation, total, done = env.reset(), 0.0, False
        while not done:
            action = int(net(read(observation)).argmax())
            observation, reward, terminal, truncated, _ = env.step(action)
            total, done = total + reward, terminal or truncated
        returns.append(total)
    return float(np.mean(returns))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store")
    parser.add_argument("--episodes", type=int, default=30, help="greedy evaluation episodes per MLP")
    parser.add_argument("--steps", type=int, default=3000, help="MLP training steps (batch 256)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", module="zarr")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    manifest = json.load(open(f"{args.store}/manifest.json"))
    group = zarr.open_group(args.store, mode="r")
    actions = torch.from_numpy(group["data/actions/discrete"][:])
    usable = group["data/has_action"][:].astype(bool)
    train, test = np.zeros(len(actions), bool), np.zeros(len(actions), bool)
    episodes = manifest["episodes"]
    for k, episode in enumerate(episodes):
        (train if k < 0.8 * len(episodes) else test)[episode["start"]:episode["end"]] = True
    train, test = train & usable, test & usable
    settings = EnvSettings(**env_settings(manifest, args.store))
    tokenizer = tokenizer_from_record(tokenizer_record(manifest["latents"], args.store), args.store)
    inputs = {
        "grid": (group["data/obs_grid"][:], lambda o: torch.from_numpy(o["obs"].astype(np.float32)).flatten()[None]),
        "latents": (group[manifest["fields"]["latents"]["path"]][:],
                    lambda o: tokenizer.encode(torch.from_numpy(frame(settings, o))[None, None]).flatten(1)),
    }
    n_actions = int(manifest["actions"]["discrete"]["size"])
    print(f"| input | held-out accuracy | greedy return ({args.episodes} episodes) |\n|---|---|---|")
    for name, (rows, read) in inputs.items():
        x = torch.from_numpy(rows.astype(np.float32)).flatten(1)
        net = fit(x, actions, train, n_actions, args.steps)
        with torch.no_grad():
            accuracy = float((net(x[test]).argmax(-1) == actions[test]).float().mean())
        print(f"| {name} | {accuracy:.3f} | {play(net, read, settings, args.episodes):.2f} |")


if __name__ == "__main__":
    main()
