"""``dreamer-train tokenizer``: train the causal MAE tokenizer on a store's frames (paper eq. 5).

Data comes only through ``dreamer_data.WindowDataset`` (windows of ``context`` frames) and its
``WindowSampler``; a hash split of episode ids keeps some episodes out for evaluation.

Resume is bit-exact because nothing random carries hidden state from one step to the next: the
n-th training window depends only on (seed, n) (``WindowSampler``), the patch masks of step s on
rank r only on (seed, s, r), and the checkpoint holds model, optimizer, loss normalisers and step.
Ctrl-C (SIGINT) is turned into a stop request checked between steps, so the checkpoint written on
the way out is always at a step boundary.
"""

from __future__ import annotations

import math
import signal
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import yaml
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from dreamer_data import WindowDataset
from dreamer_data.loaders import EpisodeSplit, WindowSampler
from dreamer_data.patches import unpatchify
from dreamer_data.store.manifest import load_manifest

from ..checkpoint import TOKENIZER, list_checkpoints, load_checkpoint, model_hash, save_checkpoint
from ..configs import TokenizerRun, TrainConfig, resolve_tokenizer_run, to_dict, tokenizer_run_from_dict
from ..errors import ModelError
from ..eval.objects import GRID_FIELD, CellCounts
from ..tokenizer import Tokenizer
from ..tokenizer.loss import TokenizerLoss, psnr
from .distributed import Distributed, init_distributed, set_threads
from .images import save_grid, to_uint8
from .logging import RunLog

Report = Callable[[str, dict], None]


@dataclass
class TokenizerTrainOptions:
    """The shared trainer flags plus the tokenizer's own."""

    data: str
    out: str
    preset: str = "tiny"
    steps: int | None = None  # total steps to reach (default: the preset's train.steps)
    config: str | None = None
    sets: list[str] = field(default_factory=list)
    resume: bool = False
    seed: int = 0
    device: str = "auto"
    lpips_weight: float | None = None  # overrides tokenizer.lpips_weight


def learning_rate(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then constant or a cosine decay to lr·lr_min_ratio over ``decay_steps``."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    if cfg.decay_steps <= 0:
        return cfg.lr
    progress = min(1.0, (step - cfg.warmup) / cfg.decay_steps)
    return cfg.lr * (cfg.lr_min_ratio + (1 - cfg.lr_min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def step_generator(seed: int, step: int, rank: int) -> torch.Generator:
    """The random stream of one training step on one rank: a pure function of (seed, step, rank)."""
    state = np.random.SeedSequence([seed, step, rank]).generate_state(2, dtype=np.uint64)
    return torch.Generator().manual_seed(int(state[0] >> np.uint64(1)))


def split_episodes(dataset_ids: list[str], fraction: float, store: str) -> tuple[list[str], list[str]]:
    """(train ids, held-out ids) by a stable hash of the id; at least one episode is held out."""
    if len(dataset_ids) < 2:
        raise ModelError(f"{store}: needs at least 2 episodes (one is held out for evaluation), "
                         f"has {len(dataset_ids)}")
    split = EpisodeSplit(fraction)
    heldout = [i for i in dataset_ids if split.val(i)]
    if not heldout or len(heldout) == len(dataset_ids):
        heldout = [min(dataset_ids, key=split.score)]
    return [i for i in dataset_ids if i not in set(heldout)], heldout


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on linear weights only, not on norms, biases or learned tokens."""
    decay, plain = [], []
    for name, parameter in model.named_parameters():
        is_linear_weight = parameter.ndim == 2 and name.endswith(".weight")
        (decay if is_linear_weight else plain).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]


@contextmanager
def stop_on_sigint() -> Iterator[dict]:
    """First Ctrl-C: set ``flag["stop"]`` (the loop checkpoints and stops). Second: interrupt now."""
    flag = {"stop": False}

    def handler(signum, frame):
        if flag["stop"]:
            raise KeyboardInterrupt
        flag["stop"] = True

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield flag
        return
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


class TokenizerTrainer:
    def __init__(self, options: TokenizerTrainOptions, report: Report | None = None):
        self.options = options
        self.report = report or (lambda event, info: None)
        self.dist: Distributed = init_distributed(options.device)
        self.device = self.dist.device
        self.out = Path(options.out)
        self.resume_state = self._resume_state()
        if self.resume_state is not None:
            self.run = tokenizer_run_from_dict(self.resume_state["config"], self.resume_state["path"])
            self.seed = int(self.resume_state["seed"])
        else:
            self.run = resolve_tokenizer_run(options.preset, options.config, options.sets)
            if options.lpips_weight is not None:
                if options.lpips_weight < 0:
                    raise ModelError(f"--lpips-weight must be >= 0, got {options.lpips_weight}")
                self.run.tokenizer.lpips_weight = float(options.lpips_weight)
            self.seed = options.seed
        self.steps = options.steps if options.steps is not None else self.run.train.steps
        if self.steps < 0:
            raise ModelError(f"--steps must be >= 0, got {self.steps}")
        cfg, train = self.run.tokenizer, self.run.train
        if train.batch % self.dist.world_size:
            raise ModelError(f"train.batch {train.batch} is not divisible by {self.dist.world_size} processes")
        self.local_batch = train.batch // self.dist.world_size
        set_threads(train.threads)
        self._build_data()
        torch.manual_seed(self.seed)
        self.model = Tokenizer(cfg).to(self.device)
        self.loss_fn = TokenizerLoss(cfg.lpips_weight, cfg.lpips_net, cfg.rms_decay, cfg.focal_gamma).to(self.device)
        self.optimizer = torch.optim.AdamW(parameter_groups(self.model, train.weight_decay), lr=train.lr,
                                           betas=(train.beta1, train.beta2), eps=1e-8)
        self.step = 0
        if self.resume_state is not None:
            self.model.load_state_dict(self.resume_state["model"])
            self.optimizer.load_state_dict(self.resume_state["optimizer"])
            self.loss_fn.mse_rms.load_state_dict(self.resume_state["loss_norm"]["mse"])
            self.loss_fn.lpips_rms.load_state_dict(self.resume_state["loss_norm"]["lpips"])
            self.step = int(self.resume_state["step"])
        self.net: torch.nn.Module = self.model
        if self.dist.enabled:
            self.net = DistributedDataParallel(self.model, device_ids=[self.device.index] if self.device.type == "cuda"
                                               else None)
        if train.compile and self.device.type == "cuda":
            self.net = torch.compile(self.net)
        self.autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if train.bf16 and self.device.type == "cuda"
                         else nullcontext())
        self.log = RunLog(self.out, enabled=self.dist.is_main)

    # ------------------------------------------------------------------------------------------ setup

    def _resume_state(self) -> dict | None:
        existing = list_checkpoints(self.out)
        if not self.options.resume:
            if existing:
                raise ModelError(f"{self.out}: run already holds checkpoints (newest {existing[-1].name}); pass "
                                 f"--resume to continue it or choose another --out")
            return None
        if not existing:
            raise ModelError(f"{self.out}: --resume but the run has no checkpoint ({self.out}/checkpoints/step_*.pt)")
        return load_checkpoint(existing[-1], TOKENIZER)

    def _build_data(self) -> None:
        cfg, train, store = self.run.tokenizer, self.run.train, self.options.data
        everything = WindowDataset(store, length=cfg.context, load="frames")
        train_ids, heldout_ids = split_episodes(everything.episode_ids, train.heldout_episodes, store)
        frame_shape = tuple(everything[0]["frames"].shape[1:])
        if frame_shape != (cfg.height, cfg.width, cfg.channels):
            raise ModelError(f"{store}: frames are {frame_shape[0]}x{frame_shape[1]}x{frame_shape[2]} but the "
                             f"tokenizer config expects {cfg.height}x{cfg.width}x{cfg.channels}; set "
                             f"tokenizer.height/width (--set tokenizer.height={frame_shape[0]} "
                             f"--set tokenizer.width={frame_shape[1]}) or use a matching store")
        # MinAtar stores hold the lossless grid: held-out reconstructions are also scored object by object
        self.observation = load_manifest(store).get("observation", {})
        has_grid = CellCounts.for_observation(self.observation) is not None
        self.train_set = WindowDataset(store, length=cfg.context, load="frames", episodes=train_ids)
        self.heldout_set = WindowDataset(store, length=cfg.context, load=["frames", *[GRID_FIELD] * has_grid],
                                         episodes=heldout_ids)
        self.heldout_ids = heldout_ids
        count = min(train.eval_windows, len(self.heldout_set))
        picks = np.unique(np.linspace(0, len(self.heldout_set) - 1, count).round().astype(int))
        windows = [self.heldout_set[int(i)] for i in picks]
        self.eval_frames = torch.stack([w["frames"] for w in windows])  # (E, T, H, W, C)
        self.eval_grids = torch.stack([w[GRID_FIELD] for w in windows]) if has_grid else None  # (E, T, 10, 10, C)

    def _batches(self) -> Iterator[torch.Tensor]:
        sampler = WindowSampler(self.train_set, seed=self.seed, start=self.step * self.local_batch,
                                rank=self.dist.rank, world_size=self.dist.world_size)
        workers = self.run.train.workers
        loader = DataLoader(self.train_set, batch_size=self.local_batch, sampler=sampler, num_workers=workers,
                            multiprocessing_context=self.train_set.multiprocessing_context if workers else None,
                            persistent_workers=workers > 0, pin_memory=self.device.type == "cuda")
        for batch in loader:
            yield batch["frames"]

    # ------------------------------------------------------------------------------------------ steps

    def train_step(self, frames: torch.Tensor) -> dict[str, float]:
        frames = frames.to(self.device, non_blocking=True)  # (B, T, H, W, C) uint8
        b, t = frames.shape[:2]
        drop = self.model.sample_drop(b, t, step_generator(self.seed, self.step, self.dist.rank)).to(self.device)
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.step, self.run.train)
        with self.autocast:
            recon, _ = self.net(frames, drop)
        loss, metrics = self.loss_fn(recon.float(), frames.float() / 255.0, reduce=self.dist.mean)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.run.train.grad_clip > 0:
            metrics["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(),
                                                                        self.run.train.grad_clip))
        self.optimizer.step()
        self.step += 1
        metrics["lr"] = self.optimizer.param_groups[0]["lr"]
        metrics["drop"] = float(drop.float().mean())
        return metrics

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Held-out PSNR of unmasked and masked reconstructions; a PNG grid of both. On MinAtar stores also
        each object class's cell recall and precision of the unmasked reconstruction (``eval/objects.py``)."""
        self.model.eval()
        mse_full, mse_masked, shown = [], [], None
        cells = CellCounts.for_observation(self.observation)
        generator = torch.Generator().manual_seed(self.seed + 1)  # the same eval masks every time
        for first, chunk in zip(range(0, len(self.eval_frames), 8), self.eval_frames.split(8)):
            frames = chunk.to(self.device)
            target = frames.float() / 255.0
            drop = self.model.sample_drop(*frames.shape[:2], generator).to(self.device)
            with self.autocast:
                full, _ = self.model(frames)
                masked, _ = self.model(frames, drop)
            mse_full.append(((full.float() - target) ** 2).mean(dim=(2, 3, 4)).flatten())  # per frame
            mse_masked.append(((masked.float() - target) ** 2).mean(dim=(2, 3, 4)).flatten())
            if cells is not None:
                grids = self.eval_grids[first:first + len(chunk)]  # (b, T, 10, 10, C)
                cells.add(full.float().flatten(0, 1).cpu().numpy() * 255.0, grids.flatten(0, 1).numpy())
            if shown is None:
                shown = (target[:, -1], drop[:, -1], masked[:, -1].float(), full[:, -1].float())
        self.model.train()
        mse_full, mse_masked = torch.cat(mse_full), torch.cat(mse_masked)
        metrics = {"psnr": float(np.mean([psnr(m) for m in mse_full.tolist()])),
                   "psnr_masked": float(np.mean([psnr(m) for m in mse_masked.tolist()])),
                   "mse": float(mse_full.mean()), "mse_masked": float(mse_masked.mean()),
                   **(cells.flat() if cells is not None else {})}
        if self.dist.is_main:
            metrics_path = self._save_samples(*shown)
            self.report("samples", {"path": str(metrics_path)})
        return metrics

    def _save_samples(self, target, drop, masked, full) -> Path:
        patches = self.model.patchify(target)  # (n, N, p·p·C)
        greyed = unpatchify(torch.where(drop[..., None], torch.full_like(patches, 0.5), patches), self.model.grid)
        rows = [("original", to_uint8(target)), ("masked in", to_uint8(greyed)),
                ("masked out", to_uint8(masked)), ("unmasked", to_uint8(full))]
        path = save_grid(self.out / "samples" / f"step_{self.step:08d}.png", rows)
        save_grid(self.out / "samples" / "latest.png", rows)
        return path

    def checkpoint(self) -> Path | None:
        if not self.dist.is_main:
            return None
        config = to_dict(self.run)
        state = {
            "kind": TOKENIZER, "version": 1, "step": self.step, "seed": self.seed, "config": config,
            "model": self.model.state_dict(), "model_hash": model_hash(self.model.state_dict(), config["tokenizer"]),
            "optimizer": self.optimizer.state_dict(),
            "loss_norm": {"mse": self.loss_fn.mse_rms.state_dict(), "lpips": self.loss_fn.lpips_rms.state_dict()},
            "world_size": self.dist.world_size, "data": {"store": self.options.data, "heldout": self.heldout_ids},
        }
        path = save_checkpoint(self.out, self.step, state, keep=self.run.train.keep_checkpoints)
        self.report("checkpoint", {"path": str(path), "step": self.step})
        return path

    # ------------------------------------------------------------------------------------------ loop

    def fit(self) -> dict:
        train, summary = self.run.train, {}
        if self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.yaml").write_text(yaml.safe_dump(to_dict(self.run), sort_keys=False))
        frames_per_step = train.batch * self.run.tokenizer.context
        self.report("start", {"step": self.step, "steps": self.steps, "device": str(self.device),
                              "resumed": self.resume_state is not None,
                              "world_size": self.dist.world_size, "preset": self.run.preset,
                              "parameters": sum(p.numel() for p in self.model.parameters()),
                              "train_windows": len(self.train_set), "heldout_episodes": len(self.heldout_ids)})
        last_saved = self.step if self.resume_state is not None else None
        window_start, window_steps = time.perf_counter(), 0
        self.model.train()
        try:
            with stop_on_sigint() as interrupt:
                batches = self._batches()
                while self.step < self.steps:
                    metrics = self.train_step(next(batches))
                    window_steps += 1
                    if self.step % train.log_every == 0 or self.step == self.steps:
                        elapsed = time.perf_counter() - window_start
                        metrics["frames_per_s"] = window_steps * frames_per_step / max(elapsed, 1e-9)
                        window_start, window_steps = time.perf_counter(), 0
                        self.log.write(self.step, metrics, "train")
                        self.report("step", {"step": self.step, **metrics})
                    if self.step % train.eval_every == 0 or self.step == self.steps:
                        summary = self.evaluate()
                        self.log.write(self.step, summary, "heldout")
                        self.report("eval", {"step": self.step, **summary})
                    if self.step % train.checkpoint_every == 0 or self.step == self.steps:
                        self.checkpoint()
                        last_saved = self.step
                    if self._stop_requested(interrupt):
                        raise KeyboardInterrupt
        except KeyboardInterrupt:
            if last_saved != self.step:
                self.checkpoint()
            raise
        finally:
            self.log.close()
        if last_saved != self.step:  # --steps already reached at start (a resumed, finished run)
            self.checkpoint()
        return {"step": self.step, **summary}

    def _stop_requested(self, interrupt: dict) -> bool:
        """Every rank stops at the same step when any rank got Ctrl-C."""
        flag = torch.tensor([1.0 if interrupt["stop"] else 0.0])
        return bool(self.dist.mean(flag) > 0) if self.dist.enabled else interrupt["stop"]

    def close(self) -> None:
        self.dist.close()


def train_tokenizer(options: TokenizerTrainOptions, report: Report | None = None) -> dict:
    trainer = TokenizerTrainer(options, report)
    try:
        return trainer.fit()
    finally:
        trainer.close()
