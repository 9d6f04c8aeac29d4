"""``dreamer-train tokenizer``: train the causal MAE tokenizer on a store's frames (paper eq. 5).

Data comes only through ``dreamer_data.WindowDataset`` (windows of ``context`` frames); the patch masks of
step s depend only on (seed, s). On MinAtar stores (which keep the lossless grid) the held-out
reconstructions are also scored object by object (``eval/objects.py``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from dreamer_data import WindowDataset
from dreamer_data.patches import unpatchify
from dreamer_data.store.fields import FRAMES
from dreamer_data.store.manifest import load_manifest

from ..checkpoint import TOKENIZER, model_hash
from ..configs import TokenizerRun
from ..errors import ModelError
from ..eval.fidelity import object_scorer, truth_fields
from ..presets import resolve_run, run_from_dict
from ..tokenizer import Tokenizer
from ..tokenizer.loss import TokenizerLoss, psnr
from .images import save_grid, to_uint8
from .trainer import Trainer, TrainOptions, step_generator


@dataclass(kw_only=True)
class TokenizerTrainOptions(TrainOptions):
    lpips_weight: float | None = None  # overrides tokenizer.lpips_weight


class TokenizerTrainer(Trainer):
    kind = TOKENIZER
    options: TokenizerTrainOptions
    run: TokenizerRun

    def configure(self) -> TokenizerRun:
        if self.resume_state is not None:
            return run_from_dict("tokenizer", self.resume_state["config"], self.resume_state["path"])
        run = resolve_run("tokenizer", self.options.preset, self.options.config, self.options.sets)
        if self.options.lpips_weight is not None:
            if self.options.lpips_weight < 0:
                raise ModelError(f"--lpips-weight must be >= 0, got {self.options.lpips_weight}")
            run.tokenizer.lpips_weight = float(self.options.lpips_weight)
        return run

    def build(self) -> None:
        cfg, store = self.run.tokenizer, self.options.data
        everything = WindowDataset(store, length=cfg.context, load=FRAMES)
        frame_shape = tuple(everything[0][FRAMES].shape[1:])
        if frame_shape != (cfg.height, cfg.width, cfg.channels):
            raise ModelError(f"{store}: frames are {frame_shape[0]}x{frame_shape[1]}x{frame_shape[2]} but the "
                             f"tokenizer config expects {cfg.height}x{cfg.width}x{cfg.channels}; set "
                             f"tokenizer.height/width (--set tokenizer.height={frame_shape[0]} "
                             f"--set tokenizer.width={frame_shape[1]}) or use a matching store")
        # stores with ground truth (MinAtar's grid, Crafter's tile ids): held-out reconstructions are also
        # scored object by object (eval/fidelity.py); Crafter's tile reader learns from training episodes only
        truth = truth_fields(load_manifest(store))
        self.split_data(FRAMES, cfg.context, everything, [FRAMES, *truth])
        heldout = set(self.heldout_ids)
        self.objects = (object_scorer(store, fit_episodes=[e for e in everything.episode_ids if e not in heldout])
                        if truth else None)
        torch.manual_seed(self.seed)
        self.model = Tokenizer(cfg).to(self.device)
        self.loss_fn = TokenizerLoss(cfg.lpips_weight, cfg.lpips_net, cfg.rms_decay, cfg.focal_gamma).to(self.device)

    def load_state(self, state: dict) -> None:
        self.load_model(self.model, state["model"])
        self.load_optimizer(self.optimizer, state["optimizer"])
        self.loss_fn.mse_rms.load_state_dict(state["loss_norm"]["mse"])
        self.loss_fn.lpips_rms.load_state_dict(state["loss_norm"]["lpips"])

    def checkpoint_state(self) -> dict:
        model = self.model_state(self.model)
        return {"model": model, "model_hash": model_hash(model, asdict(self.run.tokenizer)),
                "optimizer": self.optimizer_state(self.optimizer),
                "loss_norm": {"mse": self.loss_fn.mse_rms.state_dict(), "lpips": self.loss_fn.lpips_rms.state_dict()},
                "world_size": self.dist.world_size}

    @property
    def frames_per_step(self) -> int:
        return self.run.train.batch * self.run.tokenizer.context

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        frames = batch[FRAMES].to(self.device, non_blocking=True)  # (B, T, H, W, C) uint8
        b, t = frames.shape[:2]
        generator = step_generator(self.seed, self.step)
        drop = self.shard.draw(lambda shape: self.model.sample_drop(*shape, generator), (b, t)).to(self.device)
        self.schedule(self.optimizer)
        recon, _ = self.net(frames, drop)
        loss, metrics = self.loss_fn(recon.float(), frames.float() / 255.0, reduce=self.dist.mean)
        self.update(self.optimizer, loss, self.trained, metrics)
        metrics["lr"] = self.optimizer.param_groups[0]["lr"]
        metrics["drop"] = float(drop.float().mean())
        return metrics

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Held-out PSNR of unmasked and masked reconstructions; a PNG grid of both. On stores with ground
        truth also each object class's recall and precision of the unmasked reconstruction (MinAtar cells,
        Crafter tiles and inventory readout; ``eval/fidelity.py``)."""
        self.model.eval()
        mse_full, mse_masked, shown = [], [], None
        objects = self.objects.fresh() if self.objects is not None else None
        eval_frames = self.eval_batch[FRAMES]  # (E, T, H, W, C)
        generator = torch.Generator().manual_seed(self.seed + 1)  # the same eval masks every time
        for first, chunk in zip(range(0, len(eval_frames), 8), eval_frames.split(8)):
            frames = chunk.to(self.device)
            target = frames.float() / 255.0
            drop = self.model.sample_drop(*frames.shape[:2], generator).to(self.device)
            full, _ = self.model(frames)
            masked, _ = self.model(frames, drop)
            mse_full.append(((full.float() - target) ** 2).mean(dim=(2, 3, 4)).flatten())  # per frame
            mse_masked.append(((masked.float() - target) ** 2).mean(dim=(2, 3, 4)).flatten())
            if objects is not None:
                truth = {name: self.eval_batch[name][first:first + len(chunk)].flatten(0, 1).numpy()
                         for name in objects.truth_fields}  # (b·T, ...) each
                objects.add(full.float().flatten(0, 1).cpu().numpy() * 255.0, truth)
            if shown is None:
                shown = (target[:, -1], drop[:, -1], masked[:, -1].float(), full[:, -1].float())
        self.model.train()
        mse_full, mse_masked = torch.cat(mse_full), torch.cat(mse_masked)
        metrics = {"psnr": float(np.mean([psnr(m) for m in mse_full.tolist()])),
                   "psnr_masked": float(np.mean([psnr(m) for m in mse_masked.tolist()])),
                   "mse": float(mse_full.mean()), "mse_masked": float(mse_masked.mean()),
                   **(objects.flat() if objects is not None else {})}
        if self.dist.is_main:
            self.report("samples", {"path": str(self._save_samples(*shown))})
        return metrics

    def _save_samples(self, target, drop, masked, full) -> Path:
        patches = self.model.patchify(target)  # (n, N, p·p·C)
        greyed = unpatchify(torch.where(drop[..., None], torch.full_like(patches, 0.5), patches), self.model.grid)
        rows = [("original", to_uint8(target)), ("masked in", to_uint8(greyed)),
                ("masked out", to_uint8(masked)), ("unmasked", to_uint8(full))]
        path = save_grid(self.out / "samples" / f"step_{self.step:08d}.png", rows)
        save_grid(self.out / "samples" / "latest.png", rows)
        return path


train_tokenizer = TokenizerTrainer.train
