"""Open-loop rollouts of a trained world model, decoded to pixels with the tokenizer's decoder.

A rollout takes ``context`` real frames of a stored episode (their cached latents), then generates
``horizon`` frames under the recorded actions (or other actions, for action-sensitivity checks) with
K denoising steps per frame and the K/V cache. The decoder turns the real and the predicted latents
into pixels, and ``write_video`` puts ground truth beside prediction in an mp4 or GIF, or
``write_arrays`` saves the same panels as arrays (``.npz``) for anyone to score. On MinAtar stores the
report also scores each panel object by object against the stored grid (``eval/objects.py``).

Which tokenizer: the store's manifest records the checkpoint that produced its latents
(``latents.tokenizer.checkpoint`` and ``latents.checkpoint_hash``); another path can be given, and
its weights must hash to the recorded value, or the decoded pixels would not belong to these latents
(``checkpoint.load_store_tokenizer``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from dreamer_data import WindowDataset
from dreamer_data.atomic import replacing
from dreamer_data.store.fields import FRAMES, LATENTS

from .dynamics import DynamicsModel, Sampler, shift_actions
from .dynamics.actions import ActionField
from .errors import ModelError
from .stores import latents_entry, read_manifest, store_action_fields, world_model_fields
from .eval.fidelity import ObjectScorer, object_scorer, truth_fields
from .tokenizer import Tokenizer

OUTPUTS = (".mp4", ".gif", ".npz")
HORIZONS = (1, 4, 16, 64)  # steps ahead at which imagined frames are scored object by object


@dataclass
class Episode:
    """One window of a stored episode, batched (B = 1): latents, the actions that led to each frame, pixels."""

    latents: torch.Tensor  # (1, T, S_z, D_z)
    action_in: dict[str, torch.Tensor]  # {name: (1, T, …)}
    has_action_in: torch.Tensor  # (1, T) bool
    frames: torch.Tensor | None  # (1, T, H, W, C) uint8, when the store keeps pixels
    actions: dict[str, torch.Tensor] = field(default_factory=dict)  # raw rows {store field: (1, T, …)}
    rows: np.ndarray | None = None  # (T,) the store row of each frame
    truth: dict[str, np.ndarray] = field(default_factory=dict)  # {field: (T, …)} object ground truth, if kept


def read_episode(store: str, episode: str, length: int, start: int, fields: list[ActionField]) -> Episode:
    """Rows start … start + length − 1 of ``episode``, read through ``WindowDataset``."""
    manifest = read_manifest(store)
    latents_entry(manifest, store)
    store_fields, has_action = store_action_fields(manifest, store)
    names = {f.name for f in fields}
    if names != {f.name for f in store_fields}:
        raise ModelError(f"{store}: actions {sorted(f.name for f in store_fields)} differ from the world model's "
                         f"{sorted(names)}")
    load = list(world_model_fields(fields, has_action))
    load += [FRAMES] * (FRAMES in manifest.get("fields", {})) + list(truth_fields(manifest))
    try:
        dataset = WindowDataset(store, length=length, load=load, episodes=[episode])
    except Exception as error:  # unknown episode id, or a window longer than the episode
        raise ModelError(f"{store}: cannot read {length} frames of episode {episode!r} ({error})") from None
    if not 0 <= start < len(dataset):
        raise ModelError(f"{store}: episode {episode!r} has no {length}-frame window starting at frame {start} "
                         f"(starts 0 … {len(dataset) - 1} fit)")
    item = {key: value[None] for key, value in dataset[start].items()}
    action_in, has_action_in = shift_actions(item, fields)
    first_row = next(e["start"] for e in manifest["episodes"] if e["id"] == episode) + start
    truth = {name: item[name][0].numpy() for name in truth_fields(manifest)}
    return Episode(item[LATENTS].float(), action_in, has_action_in, item.get(FRAMES),
                   {f.store_field: item[f.store_field] for f in fields}, first_row + np.arange(length), truth)


def random_actions(fields: list[ActionField], like: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Uniformly random actions of the same shapes as ``like`` ({name: (B, T, …)})."""
    out = {}
    for f in fields:
        shape = like[f.name].shape
        if f.kind == "categorical":
            out[f.name] = torch.randint(0, f.size, shape, generator=generator)
        elif f.kind == "binary":
            out[f.name] = (torch.rand(shape, generator=generator) < 0.5).to(like[f.name].dtype)
        else:
            out[f.name] = torch.randn(shape, generator=generator) * torch.tensor(f.std or [1.0] * f.size) \
                + torch.tensor(f.mean or [0.0] * f.size)
    return out


def with_future_actions(episode: Episode, context: int, future: dict[str, torch.Tensor]) -> tuple[dict, torch.Tensor]:
    """The episode's action inputs with those of frames after the context replaced by ``future``
    (actions taken from the last context frame on: they lead to frames context … T − 1)."""
    action_in = {name: torch.cat((value[:, :context], future[name][:, context:].to(value.dtype)), dim=1)
                 for name, value in episode.action_in.items()}
    has = episode.has_action_in.clone()
    has[:, context:] = True
    return action_in, has


@torch.no_grad()
def rollout(model: DynamicsModel, episode: Episode, context: int, steps: int | None = None, seed: int = 0,
            action_in: dict | None = None, has_action_in: torch.Tensor | None = None) -> torch.Tensor:
    """Predicted latents (1, H, S_z, D_z) for frames context … T − 1 of ``episode``."""
    device = next(model.parameters()).device
    total = episode.latents.shape[1]
    action_in = action_in if action_in is not None else episode.action_in
    has_action_in = has_action_in if has_action_in is not None else episode.has_action_in
    sampler = Sampler(model, steps=steps)
    return sampler.generate(episode.latents[:, :context].to(device), {k: v.to(device) for k, v in action_in.items()},
                            has_action_in.to(device), total - context, torch.Generator().manual_seed(seed))


@torch.no_grad()
def decode(tokenizer: Tokenizer, latents: torch.Tensor, chunk: int = 0) -> torch.Tensor:
    """Latents (1, T, S_z, D_z) → frames (1, T, H, W, C) in [0, 1] (the decoder is causal over time)."""
    device = next(tokenizer.parameters()).device
    return tokenizer.decode(latents.to(device).float()).cpu()


def psnr_per_frame(prediction: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    """PSNR (dB) per frame of (…, T, H, W, C) frames in [0, 1] (or uint8)."""
    a = prediction.float() / (255.0 if prediction.dtype == torch.uint8 else 1.0)
    b = target.float() / (255.0 if target.dtype == torch.uint8 else 1.0)
    mse = ((a - b) ** 2).flatten(-3).mean(-1).reshape(-1, a.shape[-4]).mean(0)  # (T,)
    return np.array([float("inf") if m <= 0 else -10.0 * math.log10(m) for m in mse.tolist()])


# ---------------------------------------------------------------------------------------------- video

def compose(rows: list[tuple[str, np.ndarray]], scale: int = 4, gap: int = 4) -> np.ndarray:
    """Columns side by side with a label above each: rows of (label, frames (T, H, W, 3) uint8) →
    (T, H', W', 3) uint8 with even sides (H.264 needs them)."""
    from PIL import Image, ImageDraw

    t, h, w = rows[0][1].shape[:3]
    label_h = 14
    width = len(rows) * (w * scale + gap) - gap
    height = label_h + h * scale
    width, height = width + width % 2, height + height % 2
    out = np.empty((t, height, width, 3), dtype=np.uint8)
    for i in range(t):
        canvas = Image.new("RGB", (width, height), (255, 255, 255))
        draw = ImageDraw.Draw(canvas)
        for c, (label, frames) in enumerate(rows):
            left = c * (w * scale + gap)
            draw.text((left + 2, 1), f"{label} {i}", fill=(0, 0, 0))
            tile = Image.fromarray(frames[i]).resize((w * scale, h * scale), Image.NEAREST)
            canvas.paste(tile, (left, label_h))
        out[i] = np.asarray(canvas)
    return out


def check_output(path: str | Path) -> Path:
    path = Path(path)
    if path.suffix.lower() not in OUTPUTS:
        raise ModelError(f"{path}: output must end in {', '.join(OUTPUTS[:-1])} or {OUTPUTS[-1]}")
    return path


def write_arrays(path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    """The rollout's panels as an ``.npz`` of plain arrays (no pickles), written atomically."""
    path = Path(path)
    with replacing(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)
    return path


def write_video(path: str | Path, frames: np.ndarray, fps: int = 8) -> Path:
    """(T, H, W, 3) uint8 → ``.mp4`` (H.264 via PyAV) or ``.gif`` (PIL), written atomically."""
    path = check_output(path)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        raise ModelError(f"{path}: a video must end in .mp4 or .gif")
    with replacing(path, suffix=suffix) as tmp:
        if suffix == ".gif":
            from PIL import Image

            images = [Image.fromarray(frame) for frame in frames]
            images[0].save(tmp, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
        else:
            import av

            with av.open(str(tmp), mode="w") as container:
                stream = container.add_stream("libx264", rate=fps)
                stream.height, stream.width = frames.shape[1:3]
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": "18"}
                for frame in frames:
                    container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
                container.mux(stream.encode())
    return path


@dataclass
class RolloutReport:
    path: Path
    context: int
    horizon: int
    psnr: list[float]  # per predicted frame vs the real frames (or the decoded real latents)
    psnr_tokenizer: list[float]  # the tokenizer's own reconstruction of the same frames: the ceiling
    latent_mse: list[float]
    # stores with ground truth (MinAtar cells, Crafter tiles): per-class recall/precision of the tokenizer
    # panel (all frames) and of the imagined frames h steps ahead ({"tokenizer": {class: rates},
    # "imagined": {h: {class: rates}}}); else {}
    objects: dict = field(default_factory=dict)


def score_objects(scorer: ObjectScorer, truth: dict[str, np.ndarray], recon: np.ndarray, imagined: np.ndarray,
                  context: int) -> dict:
    """Per-class recall/precision of the panels (T, H, W, 3) uint8 against the stored truth {field: (T, …)}."""
    tokenizer = scorer.fresh()
    tokenizer.add(recon, truth)
    ahead = {}
    for h in (h for h in HORIZONS if context + h <= len(recon)):
        counts = scorer.fresh()
        counts.add(imagined[context + h - 1:context + h], {name: rows[context + h - 1:context + h]
                                                            for name, rows in truth.items()})
        ahead[h] = counts.rates()
    return {"tokenizer": tokenizer.rates(), "imagined": ahead}


def rollout_video(model: DynamicsModel, tokenizer: Tokenizer, store: str, episode: str, out: str | Path,
                  context: int, horizon: int, start: int = 0, steps: int | None = None, seed: int = 0,
                  fps: int = 8, actions: str = "recorded") -> RolloutReport:
    """``dreamer-train rollout``: real | tokenizer reconstruction | prediction(s), side by side.

    ``actions``: ``recorded`` (the episode's own), ``random`` (uniform random actions after the
    context), or ``both`` (two prediction panels from the same context and noise)."""
    if context < 1 or horizon < 1:
        raise ModelError(f"rollout: need --context ≥ 1 and --frames ≥ 1, got {context} and {horizon}")
    if actions not in ("recorded", "random", "both"):
        raise ModelError(f"rollout: --actions must be recorded, random or both, got {actions!r}")
    out = check_output(out)
    ep = read_episode(store, episode, context + horizon, start, model.action_fields)
    inputs = {}
    if actions in ("recorded", "both"):
        inputs["recorded"] = (ep.action_in, ep.has_action_in)
    if actions in ("random", "both"):
        future = random_actions(model.action_fields, ep.action_in, torch.Generator().manual_seed(seed + 1))
        inputs["random"] = with_future_actions(ep, context, future)
    recon = decode(tokenizer, ep.latents)  # (1, T, H, W, C)
    real = ep.frames.float() / 255.0 if ep.frames is not None else recon
    to_u8 = lambda x: (x[0].clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()  # noqa: E731
    columns = [("real", to_u8(real)), ("tokenizer", to_u8(recon))]
    report, panels = None, {}
    for name, (action_in, has_in) in inputs.items():
        predicted = rollout(model, ep, context, steps, seed, action_in, has_in).cpu()  # (1, H, S, D)
        imagined = decode(tokenizer, torch.cat((ep.latents[:, :context], predicted), dim=1))
        columns.append((f"world model ({name} actions)", to_u8(imagined)))
        panels["imagined" if not panels else f"imagined_{name}"] = columns[-1][1]
        if report is None:
            psnr = psnr_per_frame(imagined[:, context:], real[:, context:])
            psnr_tok = psnr_per_frame(recon[:, context:], real[:, context:])
            latent_mse = ((predicted - ep.latents[:, context:]) ** 2).mean(dim=(0, 2, 3))
            report = (psnr.tolist(), psnr_tok.tolist(), latent_mse.tolist())
    objects = {}
    if ep.truth:  # Crafter's tile reader learns from the other episodes (all, if there are no others)
        others = [e["id"] for e in read_manifest(store)["episodes"] if e["id"] != episode]
        scorer = object_scorer(store, fit_episodes=others or None)
        objects = score_objects(scorer, ep.truth, columns[1][1], panels["imagined"], context)
    if out.suffix.lower() == ".npz":
        path = write_arrays(out, {"real": columns[0][1], "tokenizer": columns[1][1], **panels,
                                  "rows": ep.rows.astype(np.int64), "context": np.array(context, dtype=np.int64)})
    else:
        path = write_video(out, compose(columns), fps)
    return RolloutReport(path, context, horizon, *report, objects=objects)
