"""``dreamer-train phase1``: train the dynamics model on a store's cached latents (paper eqs. 4, 7, 8).

Data comes only through ``dreamer_data.WindowDataset`` (windows of ``context`` rows of
``latents``, the action fields and ``has_action``; no pixels) and its ``WindowSampler``; a hash
split of episode ids keeps some episodes out for evaluation. The store's manifest gives the action
spec and the latent shape, both recorded in the checkpoint.

Everything the tokenizer trainer guarantees holds here too, with its helpers: the n-th training
window depends only on (seed, n); (d, τ, ε) of step s on rank r only on (seed, s, r); the checkpoint
holds model, optimizer, the loss's running-RMS normalisers and the step, so ``--resume`` is
bit-exact; Ctrl-C checkpoints at a step boundary; metrics go to ``metrics.jsonl`` and TensorBoard;
``torchrun`` runs DDP.

Held-out evaluation: the loss on held-out windows (fixed noise, normalisers frozen) and open-loop
rollouts in latent space: the first half of each held-out window is context, the second half is
generated with K steps per frame; the latent MSE at 1 step and at the last step is reported beside
the "copy the last context frame" baseline.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import yaml
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from dreamer_data import WindowDataset
from dreamer_data.loaders import WindowSampler
from dreamer_data.store.fields import LATENTS

from ..checkpoint import WORLD_MODEL, list_checkpoints, load_checkpoint, model_hash, save_checkpoint
from ..configs import to_dict
from ..dynamics import DynamicsModel, Sampler, ShortcutForcingLoss, shift_actions
from ..dynamics.actions import fields_from_dicts, fields_to_dicts
from ..dynamics.config import OBJECTIVES, Phase1Run, phase1_run_from_dict, resolve_phase1_run, validate_dynamics
from ..errors import ModelError
from ..stores import latents_entry, read_manifest, store_action_fields, world_model_fields
from .distributed import Distributed, init_distributed, set_threads
from .logging import RunLog
from .tokenizer_trainer import learning_rate, parameter_groups, split_episodes, step_generator, stop_on_sigint

Report = Callable[[str, dict], None]


@dataclass
class Phase1TrainOptions:
    """The shared trainer flags plus phase 1's own."""

    data: str
    out: str
    preset: str = "tiny"
    steps: int | None = None  # total steps to reach (default: the preset's train.steps)
    config: str | None = None
    sets: list[str] = field(default_factory=list)
    resume: bool = False
    seed: int = 0
    device: str = "auto"
    objective: str | None = None  # overrides dynamics.objective: "shortcut" or "flow" (the baseline)


class Phase1Trainer:
    def __init__(self, options: Phase1TrainOptions, report: Report | None = None):
        self.options = options
        self.report = report or (lambda event, info: None)
        self.dist: Distributed = init_distributed(options.device)
        self.device = self.dist.device
        self.out = Path(options.out)
        store = options.data
        manifest = read_manifest(store)
        self.latent_entry = latents_entry(manifest, store)
        store_fields, self.has_action = store_action_fields(manifest, store)
        self.resume_state = self._resume_state()
        if self.resume_state is not None:
            source = self.resume_state["path"]
            self.run: Phase1Run = phase1_run_from_dict(self.resume_state["config"], source)
            self.fields = fields_from_dicts(self.resume_state["action_fields"])
            self.seed = int(self.resume_state["seed"])
            if [f.name for f in self.fields] != [f.name for f in store_fields]:
                raise ModelError(f"{store}: actions {[f.name for f in store_fields]} differ from the run's "
                                 f"{[f.name for f in self.fields]} ({source})")
        else:
            self.run = resolve_phase1_run(options.preset, options.config, options.sets)
            if options.objective is not None:
                if options.objective not in OBJECTIVES:
                    raise ModelError(f"--objective must be one of {', '.join(OBJECTIVES)}, got {options.objective!r}")
                self.run.dynamics.objective = options.objective
            self.fields = store_fields
            self.seed = options.seed
        self.steps = options.steps if options.steps is not None else self.run.train.steps
        if self.steps < 0:
            raise ModelError(f"--steps must be >= 0, got {self.steps}")
        train = self.run.train
        if train.batch % self.dist.world_size:
            raise ModelError(f"train.batch {train.batch} is not divisible by {self.dist.world_size} processes")
        self.local_batch = train.batch // self.dist.world_size
        set_threads(train.threads)
        self._build_data()
        validate_dynamics(self.run.dynamics, options.config or "--set")
        cfg = self.run.dynamics
        torch.manual_seed(self.seed)
        self.model = DynamicsModel(cfg, self.fields).to(self.device)
        self.loss_fn = ShortcutForcingLoss(cfg.k_max, cfg.objective, cfg.rms_decay, cfg.bootstrap_fraction).to(self.device)
        self.optimizer = torch.optim.AdamW(parameter_groups(self.model, train.weight_decay), lr=train.lr,
                                           betas=(train.beta1, train.beta2), eps=1e-8)
        self.step = 0
        if self.resume_state is not None:
            self.model.load_state_dict(self.resume_state["model"])
            self.optimizer.load_state_dict(self.resume_state["optimizer"])
            self.loss_fn.load_state_dict(self.resume_state["loss_norm"])
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
        return load_checkpoint(existing[-1], WORLD_MODEL)

    def _build_data(self) -> None:
        cfg, train, store = self.run.dynamics, self.run.train, self.options.data
        load = world_model_fields(self.fields, self.has_action)
        everything = WindowDataset(store, length=cfg.context, load=load)
        latent_shape = tuple(everything[0][LATENTS].shape[1:])
        if self.resume_state is None:
            cfg.latent_tokens, cfg.latent_dim = latent_shape  # the store decides what a frame is
        elif latent_shape != (cfg.latent_tokens, cfg.latent_dim):
            raise ModelError(f"{store}: latents are {latent_shape} per frame but the run was trained on "
                             f"{(cfg.latent_tokens, cfg.latent_dim)} ({self.resume_state['path']})")
        train_ids, heldout_ids = split_episodes(everything.episode_ids, train.heldout_episodes, store)
        self.train_set = WindowDataset(store, length=cfg.context, load=load, episodes=train_ids)
        self.heldout_set = WindowDataset(store, length=cfg.context, load=load, episodes=heldout_ids)
        self.heldout_ids = heldout_ids
        count = min(train.eval_windows, len(self.heldout_set))
        picks = np.unique(np.linspace(0, len(self.heldout_set) - 1, count).round().astype(int))
        items = [self.heldout_set[int(i)] for i in picks]
        self.eval_batch = {key: torch.stack([item[key] for item in items]) for key in items[0]}

    def _batches(self) -> Iterator[dict[str, torch.Tensor]]:
        sampler = WindowSampler(self.train_set, seed=self.seed, start=self.step * self.local_batch,
                                rank=self.dist.rank, world_size=self.dist.world_size)
        workers = self.run.train.workers
        loader = DataLoader(self.train_set, batch_size=self.local_batch, sampler=sampler, num_workers=workers,
                            multiprocessing_context=self.train_set.multiprocessing_context if workers else None,
                            persistent_workers=workers > 0, pin_memory=self.device.type == "cuda")
        yield from loader

    # ------------------------------------------------------------------------------------------ steps

    def _inputs(self, batch: dict[str, torch.Tensor]):
        batch = {key: value.to(self.device, non_blocking=True) for key, value in batch.items()}
        latents = batch[LATENTS].float()  # (B, T, S_z, D_z)
        action_in, has_action_in = shift_actions(batch, self.fields)  # the action that led to each frame
        return latents, action_in, has_action_in

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        latents, action_in, has_action_in = self._inputs(batch)

        def student(z, tau, d):
            with self.autocast:
                return self.net(z, tau, d, action_in, has_action_in).x_pred

        def teacher(z, tau, d):  # called under stop-gradient by the loss (eq. 7 bootstrap)
            with self.autocast:
                return self.model(z, tau, d, action_in, has_action_in).x_pred

        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.step, self.run.train)
        loss, metrics = self.loss_fn(student, latents, step_generator(self.seed, self.step, self.dist.rank),
                                     teacher=teacher, reduce=self.dist.mean)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.run.train.grad_clip > 0:
            metrics["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(),
                                                                        self.run.train.grad_clip))
        self.optimizer.step()
        self.step += 1
        metrics["lr"] = self.optimizer.param_groups[0]["lr"]
        return metrics

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Held-out loss terms and open-loop latent rollouts (see the module docstring)."""
        self.model.eval()
        self.loss_fn.eval()
        latents, action_in, has_action_in = self._inputs(self.eval_batch)

        def predict(z, tau, d):
            with self.autocast:
                return self.model(z, tau, d, action_in, has_action_in).x_pred

        _, loss_metrics = self.loss_fn(predict, latents, torch.Generator().manual_seed(self.seed + 1))
        metrics = {key: loss_metrics[key] for key in ("flow", "bootstrap", "x_mse") if key in loss_metrics}
        context = latents.shape[1] // 2
        horizon = latents.shape[1] - context
        with self.autocast:
            predicted = Sampler(self.model).generate(latents[:, :context], action_in, has_action_in, horizon,
                                                     torch.Generator().manual_seed(self.seed + 2))
        error = ((predicted.float() - latents[:, context:]) ** 2).mean(dim=(0, 2, 3))  # (H,) per step ahead
        copy = ((latents[:, context - 1:context] - latents[:, context:]) ** 2).mean(dim=(0, 2, 3))
        metrics.update({"rollout_mse_1": float(error[0]), f"rollout_mse_{horizon}": float(error[-1]),
                        "copy_mse_1": float(copy[0]), f"copy_mse_{horizon}": float(copy[-1])})
        self.model.train()
        self.loss_fn.train()
        return metrics

    def checkpoint(self) -> Path | None:
        if not self.dist.is_main:
            return None
        config = to_dict(self.run)
        state = {
            "kind": WORLD_MODEL, "version": 1, "step": self.step, "seed": self.seed, "config": config,
            "model": self.model.state_dict(), "model_hash": model_hash(self.model.state_dict(), config["dynamics"]),
            "optimizer": self.optimizer.state_dict(), "loss_norm": self.loss_fn.state_dict(),
            "action_fields": fields_to_dicts(self.fields), "latents": self.latent_entry,
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
        frames_per_step = train.batch * self.run.dynamics.context
        self.report("start", {"step": self.step, "steps": self.steps, "device": str(self.device),
                              "world_size": self.dist.world_size, "preset": self.run.preset,
                              "objective": self.run.dynamics.objective,
                              "parameters": sum(p.numel() for p in self.model.parameters()),
                              "train_windows": len(self.train_set), "heldout_episodes": len(self.heldout_ids),
                              "actions": [f.name for f in self.fields]})
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


def train_phase1(options: Phase1TrainOptions, report: Report | None = None) -> dict:
    trainer = Phase1Trainer(options, report)
    try:
        return trainer.fit()
    finally:
        trainer.close()

