"""Does the imagined paddle follow the actions? A world model's action response, checked against the game's rules.

    python benchmarks/bench_action_response.py STORE --ckpt RUN [--contexts 96] [--horizon 8]

MinAtar breakout moves its one-cell paddle one column per step (left or right, stopping at the walls;
no-op keeps it). From the same held-out contexts and the same noise, the world model (a phase-1 run, or
the fine-tuned one inside a phase-2/3 agent) imagines ``horizon`` frames under three constant action
sequences: always left, always no-op, always right. The tokenizer decodes them and the paddle's column
is read off the bottom grid row (the paddle's colour, centre of mass). Against the rules' answer from the
last real frame's grid (``data/obs_grid``):

* ``spread`` — mean column under right minus under left, per imagined step, beside the rules' spread
  (2k, less where a wall stops the paddle). A model that ignores actions has spread 0.
* ``response`` — spread / rules' spread: the share of the real action effect the model reproduces.
* ``error`` — mean |imagined − rules' column| per action (``column`` / ``rules_column``: the means), and
  ``detector_error_real`` the same for the tokenizer's own decode of the real last frame (how well the
  paddle detector reads decoded frames at all).

MinAtar's sticky actions (p = 0.1 of repeating the previous action) make the real spread slightly
smaller than the rules'; the rules' answer is the reference here, not a recorded episode.
"""

from __future__ import annotations

import argparse
import json
import warnings

import numpy as np
import torch

from dreamer_data import WindowDataset
from dreamer_data.collect.minatar_render import GRID, palette
from dreamer_data.store.manifest import load_manifest
from dreamer_model.dynamics import Sampler, shift_actions
from dreamer_model.errors import ModelError
from dreamer_model.checkpoint import load_agent, load_store_tokenizer, load_world_model
from dreamer_model.stores import read_manifest, store_action_fields, world_model_fields

ACTIONS = {"left": 1, "noop": 0, "right": 3}  # MinAtar's full action set: n l u r d f


def world_model(ckpt: str | None, agent_ckpt: str | None):
    """The dynamics model of a phase-1 run, or the (fine-tuned) one inside a phase-2/3 agent; its held-out episodes."""
    if ckpt:
        model, state = load_world_model(ckpt)
    else:
        agent, state = load_agent(agent_ckpt)
        model = agent.world
    return model, (state.get("data") or {}).get("heldout", [])


def paddle_colour(store: str) -> torch.Tensor:
    """The RGB the store's frames draw breakout's paddle in (its palette, from the manifest)."""
    observation = load_manifest(store).get("observation") or {}
    channels = observation.get("grid_channels") or []
    if observation.get("game") != "breakout" or "paddle" not in channels:
        raise ModelError(f"{store}: not a MinAtar breakout store (game {observation.get('game')!r})")
    colours = palette(len(channels), observation.get("palette", "cubehelix"))  # stores before palettes: cubehelix
    return torch.tensor(colours[1 + channels.index("paddle")], dtype=torch.float32)


def paddle_columns(frames: torch.Tensor, colour: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames (…, H, W, 3) in [0, 1] → the paddle's column in grid units (…) and whether any is seen."""
    rows = frames.shape[-3] // GRID  # pixels per grid row
    bottom = frames[..., -rows:, :, :].float() * 255  # the paddle's grid row
    near = ((bottom - colour).abs().amax(-1) < 80).float().sum(-2)  # (…, W) paddle-coloured pixels per column
    cols = (torch.arange(near.shape[-1], dtype=torch.float32) + 0.5) * GRID / near.shape[-1] - 0.5
    mass = near.sum(-1)
    return (near * cols).sum(-1) / mass.clamp(min=1e-6), mass > 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("store")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--ckpt", help="a phase-1 run or checkpoint")
    which.add_argument("--agent", help="a phase-2/3 agent checkpoint (its fine-tuned world model)")
    parser.add_argument("--contexts", type=int, default=96)
    parser.add_argument("--context", type=int, default=8)
    parser.add_argument("--horizon", type=int, default=8)
    parser.add_argument("--steps", type=int, default=None, help="K (default: the model's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", module="zarr")
    torch.set_num_threads(1)
    try:
        report = measure(args)
    except ModelError as error:
        raise SystemExit(f"error: {error}") from None
    print(json.dumps(report, indent=1))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=1)


def measure(args: argparse.Namespace) -> dict:
    colour = paddle_colour(args.store)
    model, heldout = world_model(args.ckpt, args.agent)
    tokenizer = load_store_tokenizer(args.store)
    _, has_action = store_action_fields(read_manifest(args.store), args.store)
    load = [*world_model_fields(model.action_fields, has_action), "obs_grid"]
    windows = WindowDataset(args.store, length=args.context, load=load, episodes=heldout or None)
    picks = np.unique(np.linspace(0, len(windows) - 1, args.contexts).round().astype(int))
    items = [windows[int(i)] for i in picks]
    batch = {key: torch.stack([item[key] for item in items]) for key in items[0]}
    latents = batch["latents"].float()  # (B, C, S_z, D_z)
    b, c = latents.shape[:2]
    action_in, has_in = shift_actions(batch, model.action_fields)
    grid_paddle = batch["obs_grid"][:, -1, GRID - 1, :, 0].float()  # (B, 10): the last real frame's paddle row
    start = grid_paddle.argmax(-1).float()  # (B,)
    sampler = Sampler(model, steps=args.steps)
    k = torch.arange(1, args.horizon + 1, dtype=torch.float32)

    def rules(action: str) -> torch.Tensor:  # (B, H)
        step = {"left": -1.0, "noop": 0.0, "right": 1.0}[action]
        return (start[:, None] + step * k).clamp(0, GRID - 1)

    (name,) = action_in
    imagined, seen = {}, {}
    with torch.no_grad():
        real_col, real_seen = paddle_columns(tokenizer.decode(latents)[:, -1], colour)
        for action, index in ACTIONS.items():
            future = {name: torch.cat((action_in[name], torch.full((b, args.horizon), index,
                                                                    dtype=action_in[name].dtype)), 1)}
            has = torch.cat((has_in, torch.ones(b, args.horizon, dtype=torch.bool)), 1)
            predicted = sampler.generate(latents, future, has, args.horizon,
                                         torch.Generator().manual_seed(args.seed))  # same noise for all actions
            frames = tokenizer.decode(torch.cat((latents, predicted), 1))[:, c:]  # causal decoder: context first
            imagined[action], seen[action] = paddle_columns(frames, colour)  # (B, H)
    both = seen["left"] & seen["right"] & seen["noop"]
    mean = lambda x: [round(float(x[:, i][both[:, i]].mean()), 3) for i in range(args.horizon)]  # noqa: E731
    spread = mean(imagined["right"] - imagined["left"])
    rules_spread = mean(rules("right") - rules("left"))
    return {
        "store": args.store, "ckpt": args.ckpt or args.agent, "contexts": b, "horizon": args.horizon, "K": sampler.steps,
        "paddle_seen": round(float(both.float().mean()), 3),
        "detector_error_real": round(float((real_col - start)[real_seen].abs().mean()), 3),
        "spread": spread, "rules_spread": rules_spread,
        "response": [round(s / r, 3) if r else None for s, r in zip(spread, rules_spread)],
        "error": {action: mean((imagined[action] - rules(action)).abs()) for action in ACTIONS},
        "column": {action: mean(imagined[action]) for action in ACTIONS},
        "rules_column": {action: mean(rules(action)) for action in ACTIONS},
    }


if __name__ == "__main__":
    main()
