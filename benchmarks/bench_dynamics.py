"""World-model benchmarks: generation speed with / without the K/V cache, rollout quality on
held-out episodes (PSNR of decoded predictions at 1, 4, 16 steps ahead; K = 4 vs K = 64; the
flow-matching baseline at K = 4), sample quality (PSNR rewards a blurred mean, so also: Fréchet distance
between predicted and real latent tokens, the spread of the predictions across windows, and the sharpness
of the decoded frames), and action sensitivity.

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
    from dreamer_model.dynamics import DynamicsModel, Sampler, action_fields
    from dreamer_model.presets import preset

    torch.set_num_threads(args.threads)
    run = preset("phase1", args.preset)
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


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two samples (N, D), as FID computes it on features:
    ‖μa − μb‖² + tr(Ca + Cb − 2 (Ca^½ Cb Ca^½)^½), with the matrix roots from symmetric eigendecompositions."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    eigval, eigvec = np.linalg.eigh(cov_a)
    root_a = (eigvec * np.sqrt(eigval.clip(min=0))) @ eigvec.T  # Ca^½
    cross = np.linalg.eigvalsh(root_a @ cov_b @ root_a).clip(min=0)  # eigenvalues of Ca^½ Cb Ca^½
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.sqrt(cross).sum())


def token_frechet(prediction: torch.Tensor, truth: torch.Tensor, windows: np.ndarray | None = None) -> np.ndarray:
    """(H,) Fréchet distance per step ahead between predicted and real latent tokens (B, H, S_z, D_z) of the
    given windows (default all): each window's S_z tokens are samples of D_z-dim vectors. A realism measure,
    not an accuracy one: a rollout that collapses to the mean latent scores badly even where its MSE is low."""
    rows = slice(None) if windows is None else windows
    flat = lambda z, h: z[rows, h].reshape(-1, z.shape[-1]).double().numpy()  # noqa: E731  (B·S_z, D_z)
    return np.array([frechet_distance(flat(prediction, h), flat(truth, h)) for h in range(truth.shape[1])])


def resampled_frechet(predictions: dict, truth: torch.Tensor, resamples: int, seed: int) -> dict:
    """{key: (resamples, H)} Fréchet distances over windows drawn with replacement, the same draws for every
    key, so differences between two models are paired (their spread is the bootstrap standard error)."""
    rng = np.random.default_rng(seed)
    draws = [rng.integers(0, truth.shape[0], truth.shape[0]) for _ in range(resamples)]
    return {key: np.stack([token_frechet(z, truth, rows) for rows in draws]) for key, z in predictions.items()}


def spread_ratio(prediction: torch.Tensor, truth: torch.Tensor) -> np.ndarray:
    """(H,) std across windows of the predicted latents over that of the real ones (mean over entries):
    1 = as varied as the data, → 0 = every window predicts the same mean."""
    return (prediction.float().std(0).mean(dim=(-2, -1)) / truth.float().std(0).mean(dim=(-2, -1))).numpy()


def sharpness(frames: torch.Tensor) -> np.ndarray:
    """(H,) mean absolute difference of neighbouring pixels (both axes) of frames (B, H, h, w, C) in [0, 1]:
    blurring lowers it."""
    dy = (frames[:, :, 1:] - frames[:, :, :-1]).abs().flatten(2).mean(-1)
    dx = (frames[:, :, :, 1:] - frames[:, :, :, :-1]).abs().flatten(2).mean(-1)
    return ((dx + dy) / 2).mean(0).numpy()


def quality(args) -> None:
    from dreamer_model.rollout import (Episode, decode, load_store_tokenizer, random_actions, rollout,
                                       with_future_actions)
    from dreamer_model.checkpoint import load_world_model

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
    reconstruction = decode(tokenizer, ep.latents)[:, c:]
    psnr = {"tokenizer": psnr_per_window(reconstruction, real[:, c:])}
    copy = ep.latents[:, c - 1:c].expand(-1, args.horizon, -1, -1)
    psnr["copy"] = psnr_per_window(decode(tokenizer, torch.cat((ep.latents[:, :c], copy), 1))[:, c:], real[:, c:])
    truth = ep.latents[:, c:]
    samples = {"copy": {"fd": token_frechet(copy, truth), "spread": spread_ratio(copy, truth),
                        "sharp": sharpness(decode(tokenizer, torch.cat((ep.latents[:, :c], copy), 1))[:, c:])}}
    predicted = {}
    for name, steps in settings:
        began = time.perf_counter()
        predicted[(name, steps)] = rollout(runs[name], ep, c, steps, seed=args.seed)
        imagined = decode(tokenizer, torch.cat((ep.latents[:, :c], predicted[(name, steps)]), dim=1))
        psnr[(name, steps)] = psnr_per_window(imagined[:, c:], real[:, c:])
        samples[(name, steps)] = {"fd": token_frechet(predicted[(name, steps)], truth),
                                  "spread": spread_ratio(predicted[(name, steps)], truth),
                                  "sharp": sharpness(imagined[:, c:])}
        print(f"{name} K = {steps}: {time.perf_counter() - began:.0f} s", flush=True)
    sharp_real = sharpness(reconstruction)
    boot = resampled_frechet({"copy": copy, **predicted}, truth, args.resamples, args.seed)
    future = random_actions(shortcut.action_fields, ep.action_in, torch.Generator().manual_seed(args.seed + 1))
    other_in, other_has = with_future_actions(ep, c, future)
    base = predicted[("shortcut", 4)]
    other = rollout(shortcut, ep, c, 4, seed=args.seed, action_in=other_in, has_action_in=other_has)
    reseeded = rollout(shortcut, ep, c, 4, seed=args.seed + 2)
    last = ep.latents[:, c - 1:c]
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
    print("\nK = 64 minus K = 4 (shortcut): " + ", ".join(f"{g:+.2f} dB at {h}" for g, h in zip(gap, marks)))
    sample_rows = [[label, *[f"{samples[key]['fd'][h - 1]:.3f} ± {boot[key][:, h - 1].std():.3f} / "
                             f"{samples[key]['spread'][h - 1]:.2f} / "
                             f"{samples[key]['sharp'][h - 1] / sharp_real[h - 1]:.2f}" for h in marks]]
                   for key, label in [("copy", "copy last context frame")]
                   + [(key, f"{key[0]}, K = {key[1]}") for key in settings]]
    print(f"\nSample quality: Fréchet distance between predicted and real latent tokens (lower = more realistic; "
          f"± its bootstrap standard error over windows, {args.resamples} resamples) / spread of the predicted "
          f"latents across windows relative to the real ones (1 = as varied as the data) / sharpness of the decoded "
          f"frames relative to the tokenizer's reconstruction of the real ones (1 = as sharp)\n")
    print(markdown(["model", *[f"{h} step{'s' if h > 1 else ''} ahead" for h in marks]], sample_rows))
    if args.flow:
        paired = boot[("shortcut", 4)] - boot[("flow", 4)]  # (resamples, H)
        difference = samples[("shortcut", 4)]["fd"] - samples[("flow", 4)]["fd"]
        print("\nFréchet distance, shortcut K = 4 minus flow K = 4 (negative: shortcut more realistic), paired "
              "bootstrap s.e.: " + ", ".join(f"{difference[h - 1]:+.3f} ± {paired[:, h - 1].std():.3f} at {h}"
                                             for h in marks))
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
                       "samples": {str(k): {m: v.tolist() for m, v in entry.items()} for k, entry in samples.items()},
                       "frechet_se": {str(k): v.std(0).tolist() for k, v in boot.items()},
                       "sharpness_reconstruction": sharp_real.tolist(),
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
    q.add_argument("--resamples", type=int, default=200, help="bootstrap resamples of the windows (Fréchet s.e.)")
    q.add_argument("--json")
    args = parser.parse_args()
    speed(args) if args.what == "speed" else quality(args)


if __name__ == "__main__":
    main()
