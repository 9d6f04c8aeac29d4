"""Frames/s while playing: the play server's generation loop (``PlaySession.advance``: K denoising steps that
read the rolling K/V cache, one commit, one decode on the decoder's cache) per preset and context length.

    python benchmarks/bench_play.py [--presets quickstart quickstart:crafter micro tiny small] [--contexts 8 32 64]

A preset is ``NAME[:GAME]``: its action space and frames are the game's (``minatar``: the 6 MinAtar actions;
``crafter``: Crafter's 17 at the 64x64 frames and 8-pixel patches the quickstart's Crafter run trains on;
``minecraft``: VPT's 23 buttons and 121 camera classes); without a game, the preset's reference (MinAtar for the
named scales, Minecraft for the ladder). Random weights (speed does not depend on the weights; the world model's
latents come from its own tokenizer). "context" is the world model's window (``dynamics.context``: the frames
each new frame reads), and the session starts from that many frames, so every measured frame reads a full
window. Baseline, in the same rounds: the sampler without the cache
(``Sampler.generate(use_cache=False)``: every denoising step re-runs the kept frames), no decoding. Rounds
interleave the configurations; the table gives medians over rounds. Target: the quickstart's world model
plays at ≥ 15 frames/s on this CPU (its own context, 8).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from dataclasses import replace

import torch

from dreamer_data.actions.minecraft import action_spec as minecraft_spec
from dreamer_data.collect.crafter_env import ACTION_NAMES as CRAFTER_ACTIONS
from dreamer_data.collect.minatar_env import ACTION_NAMES
from dreamer_model.dynamics import DynamicsModel, action_fields
from dreamer_model.play import PlaySession, World
from dreamer_model.play.controls import Action, controls_for
from dreamer_model.presets import NAMED, preset
from dreamer_model.quickstart import configs as quickstart_configs
from dreamer_model.rollout import Episode
from dreamer_model.tokenizer import Tokenizer

SPECS = {"minatar": {"discrete": {"kind": "categorical", "size": len(ACTION_NAMES), "names": list(ACTION_NAMES),
                                  "null_class": 0}},
         "crafter": {"discrete": {"kind": "categorical", "size": len(CRAFTER_ACTIONS), "names": list(CRAFTER_ACTIONS),
                                  "null_class": 0}},
         "minecraft": minecraft_spec()}
PLAYED = {"minatar": Action(name="left"), "crafter": Action(name="move_left"),
          "minecraft": Action(buttons=frozenset({"forward"}), camera=(0.0, 2.0))}
WARMUP = 4  # frames generated before timing


def game_of(key: str) -> tuple[str, str]:
    """``NAME[:GAME]`` → (preset, game); the game defaults to the preset's reference action space."""
    name, _, game = key.partition(":")
    game = game or ("minatar" if name in NAMED else "minecraft")
    if game not in SPECS:
        raise SystemExit(f"unknown game {game!r} in {key!r} (known: {', '.join(SPECS)})")
    return name, game


def build(key: str, context: int, device: torch.device = torch.device("cpu")) -> tuple[PlaySession, Action]:
    """A play session on random weights of preset ``key`` (``NAME[:GAME]``) with a ``context``-frame window."""
    name, game = game_of(key)
    tokenizer_cfg = preset("tokenizer", name).tokenizer
    if game == "crafter":  # the frames and patches the quickstart's Crafter run trains on
        tokenizer_cfg = replace(tokenizer_cfg, **quickstart_configs("crafter", cpu=True)["tokenizer"]["tokenizer"])
    dynamics = replace(preset("phase1", name).dynamics, latent_tokens=tokenizer_cfg.latent_tokens,
                       latent_dim=tokenizer_cfg.latent_dim, context=context)
    dynamics = replace(dynamics, transformer=replace(dynamics.transformer, time_window=context))
    spec = SPECS[game]
    fields = action_fields(spec)
    torch.manual_seed(0)
    model, tokenizer = DynamicsModel(dynamics, fields).to(device).eval(), Tokenizer(tokenizer_cfg).to(device).eval()
    controls = controls_for(spec, fields)
    world = World(model, tokenizer, "(benchmark)", {"episodes": []}, controls, "(random weights)", 0, [],
                  device)
    session = PlaySession(world, context)
    s, d = model.latent_shape
    inputs = [controls.encode(Action()) for _ in range(context)]
    session.data = Episode(torch.randn(1, context, s, d).tanh(),
                           {f.name: torch.cat([i[0][f.name] for i in inputs], 1) for f in fields},
                           torch.cat([i[1] for i in inputs], 1), None)
    return session, PLAYED[game]


def rates(run, frames: int) -> tuple[float, float]:
    """(frames per wall-clock second, frames per CPU second of this process) of ``run()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return frames / (time.perf_counter() - wall), frames / (time.process_time() - cpu)


def play_rate(session: PlaySession, action: Action, frames: int) -> tuple[float, float]:
    session.reset()
    for _ in range(WARMUP):
        session.advance(action)
    return rates(lambda: [session.advance(action) for _ in range(frames)], frames)


@torch.no_grad()
def uncached_rate(session: PlaySession, frames: int) -> tuple[float, float]:
    data, sampler = session.data, session.sampler
    c = data.latents.shape[1]
    action_in = {k: v[:, :1].expand(-1, c + frames, *v.shape[2:]) for k, v in data.action_in.items()}
    has = data.has_action_in[:, :1].expand(-1, c + frames)
    device = session.world.device
    action_in, has = {k: v.to(device) for k, v in action_in.items()}, has.to(device)

    def run():
        sampler.generate(data.latents.to(device), action_in, has, frames, torch.Generator().manual_seed(0),
                         use_cache=False)
        if device.type == "cuda":
            torch.cuda.synchronize(device)  # launches return before the kernels finish
    return rates(run, frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["quickstart", "quickstart:crafter", "micro", "tiny", "small"])
    parser.add_argument("--contexts", nargs="+", type=int, default=[8, 32, 64])
    parser.add_argument("--frames", type=int, default=24, help="timed frames per configuration and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    configs = [(name, c) for name in args.presets for c in args.contexts]
    sessions = {key: build(*key, device) for key in configs}
    played: dict[tuple, list[tuple[float, float]]] = {key: [] for key in configs}
    baseline: dict[tuple, list[tuple[float, float]]] = {key: [] for key in configs}
    for _ in range(args.rounds):
        for key in configs:
            session, action = sessions[key]
            played[key].append(play_rate(session, action, args.frames))
            baseline[key].append(uncached_rate(session, max(2, args.frames // 8)))
    gpu = f", GPU {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    print(f"CPU: {platform.processor() or platform.machine()}{gpu}, torch {torch.__version__}, {args.threads} "
          f"thread(s), {args.rounds} rounds × {args.frames} frames, K = 4")
    per = "per wall-clock second (GPU)" if device.type == "cuda" else "per CPU-second"
    print("| preset | actions | frame | latents | world-model params | context | play frames/s (median; rounds) | "
          f"{per} | uncached sampler, {per} | cache speed-up |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for key in configs:
        session, _ = sessions[key]
        name, game = game_of(key[0])
        cfg = session.world.tokenizer.cfg
        params = sum(p.numel() for p in session.world.model.parameters())
        wall = statistics.median(r[0] for r in played[key])
        cpu, slow = statistics.median(r[1] for r in played[key]), statistics.median(r[1] for r in baseline[key])
        if device.type == "cuda":  # the host's CPU time says nothing of the GPU's work: compare wall-clock rates
            cpu, slow = wall, statistics.median(r[0] for r in baseline[key])
        print(f"| {name} | {game} | {cfg.height}x{cfg.width} | {cfg.latent_tokens}x{cfg.latent_dim} | "
              f"{params / 1e6:.2f}M | "
              f"{key[1]} | {wall:.1f} ({' '.join(f'{r[0]:.1f}' for r in played[key])}) | {cpu:.1f} | {slow:.1f} | "
              f"{cpu / slow:.1f}x |")


if __name__ == "__main__":
    main()
