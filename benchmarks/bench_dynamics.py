"""World-model benchmarks (issue 6): generation speed with / without the K/V cache, rollout quality on
held-out episodes (PSNR of decoded predictions at 1, 4, 16 steps ahead; K = 4 vs K = 64; the
flow-matching baseline at K = 4), and action sensitivity.

    # speed (random weights of the tiny preset: speed does not depend on the weights)
    python benchmarks/bench_dynamics.py speed --contexts 16 64 192 --threads 1
    # quality + action sensitivity of trained phase-1 runs on a tokenized store
    python benchmarks/bench_dynamics.py quality --data STORE --shortcut RUN_A --flow RUN_B

Results are printed as markdown tables (benchmarks/results/dynamics.md collects them).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import replace

import numpy as np
import torch


def markdown(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- speed

def speed(args) -> None:
    from dreamer_model.dynamics import DynamicsModel, Sampler, action_fields, phase1_preset

    torch.set_num_threads(args.threads)
    run = phase1_preset(args.preset)
    cfg = replace(run.dynamics, latent_tokens=args.latent_tokens, latent_dim=args.latent_dim,
                  transformer=replace(run.dynamics.transformer, time_window=args.window))  # None: all the context
    fields = action_fields({"discrete": {"kind": "categorical", "size": 17}})
    torch.manual_seed(0)
    model = DynamicsModel(cfg, fields).eval()
    params = sum(p.numel() for p in model.parameters())
    sampler = Sampler(model, steps=args.steps)
    rows = []
    for context in args.contexts:
        total = context + args.frames
        latents = torch.randn(1, total, cfg.latent_tokens, cfg.latent_dim)
        actions = {"discrete": torch.randint(0, 17, (1, total))}
        has = torch.ones(1, total, dtype=torch.bool)
        result = {}
        for use_cache in (True, False):
            frames = args.frames if use_cache else max(1, args.frames // (4 if context >= 64 else 1))
            best = math.inf
            for _ in range(args.repeats):
                began = time.perf_counter()
                sampler.generate(latents[:, :context], actions, has, frames, torch.Generator().manual_seed(0),
                                 use_cache=use_cache)
                elapsed = time.perf_counter() - began
                if use_cache:  # the one-off commit of the context is not per-frame cost: time it alone
                    cache = sampler.init_cache()
                    began = time.perf_counter()
                    with torch.no_grad():
                        sampler.commit(cache, latents[:, :context], {"discrete": actions["discrete"][:, :context]},
                                       has[:, :context], torch.zeros_like(latents[:, :context]))
                    elapsed -= time.perf_counter() - began
                best = min(best, elapsed / frames)
            result[use_cache] = 1.0 / best
        rows.append([context, f"{result[True]:.1f}", f"{result[False]:.2f}", f"{result[True] / result[False]:.1f}x"])
        print(f"context {context}: cached {result[True]:.1f} frames/s, uncached {result[False]:.2f} frames/s", flush=True)
    window = f"temporal window {args.window} frames" if args.window else "temporal layers read the whole context"
    print(f"\n{args.preset} preset, {params / 1e6:.2f}M parameters, latents {cfg.latent_tokens}x{cfg.latent_dim}, "
          f"K = {args.steps}, batch 1, {window}, {args.threads} thread(s), torch {torch.__version__}\n")
    print(markdown(["context frames", "frames/s with K/V cache", "frames/s without", "ratio"], rows))


# ---------------------------------------------------------------------------------------------- quality

def windows(store: str, episodes: list[str], length: int, per_episode: int, fields) -> list:
    """Up to ``per_episode`` evenly spaced windows of each held-out episode."""
    from dreamer_data import WindowDataset

    from dreamer_model.rollout import read_episode

    picked = []
    for episode in episodes:
        try:
            count = len(WindowDataset(store, length=length, load="latents", episodes=[episode]))
        except Exception:  # shorter than a window
            continue
        for start in np.unique(np.linspace(0, count - 1, per_episode).round().astype(int)):
            picked.append((episode, int(start), read_episode(store, episode, length, int(start), fields)))
    return picked


def psnr_per_window(prediction: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    """(B, H) PSNR in dB of frames (B, H, h, w, C) in [0, 1]."""
    mse = ((prediction.float() - target.float()) ** 2).flatten(2).mean(-1).clamp(min=1e-10)
    return (-10.0 * torch.log10(mse)).numpy()


def quality(args) -> None:
    from dreamer_model.rollout import (Episode, decode, load_store_tokenizer, random_actions, rollout,
                                       with_future_actions)
    from dreamer_model.train.phase1 import load_world_model

    torch.set_num_threads(args.threads)
    shortcut, state = load_world_model(args.shortcut)
    runs = {"shortcut": shortcut}
    if args.flow:
        runs["flow"] = load_world_model(args.flow)[0]
    tokenizer = load_store_tokenizer(args.data, args.tokenizer)
    heldout = state["data"]["heldout"]
    length = args.context + args.horizon
    picked = windows(args.data, heldout, length, args.per_episode, shortcut.action_fields)
    print(f"{len(picked)} windows of {length} frames from {len(heldout)} held-out episodes "
          f"({args.context} context + {args.horizon} predicted)", flush=True)
    marks = [h for h in (1, 4, 8, 16) if h <= args.horizon]
    settings = [("shortcut", 4), ("shortcut", 64)] + ([("flow", 4), ("flow", 64)] if args.flow else [])
    # all windows as one batch (B = windows): one generate call per setting
    ep = Episode(torch.cat([e.latents for _, _, e in picked]),
                 {k: torch.cat([e.action_in[k] for _, _, e in picked]) for k in picked[0][2].action_in},
                 torch.cat([e.has_action_in for _, _, e in picked]), torch.cat([e.frames for _, _, e in picked]))
    c = args.context
    real = ep.frames.float() / 255.0
    psnr = {"tokenizer": psnr_per_window(decode(tokenizer, ep.latents)[:, c:], real[:, c:])}
    copy = ep.latents[:, c - 1:c].expand(-1, args.horizon, -1, -1)
    psnr["copy"] = psnr_per_window(decode(tokenizer, torch.cat((ep.latents[:, :c], copy), 1))[:, c:], real[:, c:])
    predicted = {}
    for name, steps in settings:
        began = time.perf_counter()
        predicted[(name, steps)] = rollout(runs[name], ep, c, steps, seed=args.seed)
        imagined = decode(tokenizer, torch.cat((ep.latents[:, :c], predicted[(name, steps)]), dim=1))
        psnr[(name, steps)] = psnr_per_window(imagined[:, c:], real[:, c:])
        print(f"{name} K = {steps}: {time.perf_counter() - began:.0f} s", flush=True)
    future = random_actions(shortcut.action_fields, ep.action_in, torch.Generator().manual_seed(args.seed + 1))
    other_in, other_has = with_future_actions(ep, c, future)
    base = predicted[("shortcut", 4)]
    other = rollout(shortcut, ep, c, 4, seed=args.seed, action_in=other_in, has_action_in=other_has)
    reseeded = rollout(shortcut, ep, c, 4, seed=args.seed + 2)
    truth, last = ep.latents[:, c:], ep.latents[:, c - 1:c]
    mse = lambda a, b: ((a - b) ** 2).mean(dim=(2, 3)).numpy()  # noqa: E731  (B, H)
    sens = {"action": mse(base, other), "noise": mse(base, reseeded), "real": mse(truth, last), "error": mse(base, truth)}
    decoded = lambda z: decode(tokenizer, torch.cat((ep.latents[:, :c], z), 1))[:, c:]  # noqa: E731
    base_pixels = decoded(base)
    sens_pixels = {"action": psnr_per_window(decoded(other), base_pixels),
                   "noise": psnr_per_window(decoded(reseeded), base_pixels)}

    def at(values, h):
        return float(np.mean(np.asarray(values)[:, h - 1]))

    rows = [["tokenizer reconstruction (ceiling)", *[f"{at(psnr['tokenizer'], h):.2f}" for h in marks]],
            ["copy last context frame", *[f"{at(psnr['copy'], h):.2f}" for h in marks]]]
    for name, steps in settings:
        rows.append([f"{name}, K = {steps}", *[f"{at(psnr[(name, steps)], h):.2f}" for h in marks]])
    print("\nPSNR (dB) of decoded predictions vs the real frames, mean over windows\n")
    print(markdown(["model", *[f"{h} step{'s' if h > 1 else ''} ahead" for h in marks]], rows))
    gap = [at(psnr[("shortcut", 64)], h) - at(psnr[("shortcut", 4)], h) for h in marks]
    print(f"\nK = 64 minus K = 4 (shortcut): " + ", ".join(f"{g:+.2f} dB at {h}" for g, h in zip(gap, marks)))
    def median(values, h):
        return float(np.median(np.asarray(values)[:, h - 1]))

    def share(h):  # windows where other actions move the prediction more than another noise seed does
        return float(np.mean(sens["action"][:, h - 1] > sens["noise"][:, h - 1]))

    sens_rows = [[f"{h}", f"{at(sens['action'], h):.4f} / {median(sens['action'], h):.4f}",
                  f"{at(sens['noise'], h):.4f} / {median(sens['noise'], h):.4f}",
                  f"{at(sens['real'], h):.4f} / {median(sens['real'], h):.4f}",
                  f"{at(sens['error'], h):.4f}", f"{share(h):.2f}",
                  f"{at(sens_pixels['action'], h):.1f}", f"{at(sens_pixels['noise'], h):.1f}"] for h in marks]
    print("\nAction sensitivity (shortcut, K = 4), from the same context: latent MSE mean / median over windows "
          "between the rollout under the recorded actions and (a) under uniformly random actions, (b) under the "
          "recorded actions with another noise seed; (c) the real change z_t+h vs the last context frame; (d) the "
          "rollout's error vs truth; share of windows with (a) > (b); PSNR (dB) between the decoded rollouts "
          "(higher = more alike)\n")
    print(markdown(["steps ahead", "(a) other actions", "(b) other seed", "(c) real change", "(d) error",
                    "(a) > (b)", "PSNR (a)", "PSNR (b)"], sens_rows))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"psnr": {str(k): np.mean(v, axis=0).tolist() for k, v in psnr.items()},
                       "sensitivity": {k: np.mean(v, axis=0).tolist() for k, v in sens.items()},
                       "windows": [(e, s) for e, s, _ in picked]}, handle, indent=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--preset", default="tiny")
    s.add_argument("--contexts", type=int, nargs="+", default=[16, 64, 192])
    s.add_argument("--frames", type=int, default=8, help="frames generated per measurement (cached path)")
    s.add_argument("--steps", type=int, default=4, help="K")
    s.add_argument("--latent-tokens", type=int, default=16)
    s.add_argument("--latent-dim", type=int, default=32)
    s.add_argument("--repeats", type=int, default=3)
    s.add_argument("--threads", type=int, default=1)
    s.add_argument("--window", type=int, default=None, help="temporal window (default: the whole context)")
    q = sub.add_parser("quality")
    q.add_argument("--data", required=True)
    q.add_argument("--shortcut", required=True, help="phase-1 run trained with the shortcut objective")
    q.add_argument("--flow", help="phase-1 run trained with --objective flow (the baseline)")
    q.add_argument("--tokenizer", help="tokenizer checkpoint (default: the store's)")
    q.add_argument("--context", type=int, default=8)
    q.add_argument("--horizon", type=int, default=16)
    q.add_argument("--per-episode", type=int, default=4)
    q.add_argument("--threads", type=int, default=1)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--json")
    args = parser.parse_args()
    speed(args) if args.what == "speed" else quality(args)


if __name__ == "__main__":
    main()
