"""``dreamer-train phase1``: train the dynamics model on a store's cached latents (paper eqs. 4, 7, 8).

Data comes only through ``dreamer_data.WindowDataset`` (windows of ``context`` rows of ``latents``, the action
fields and ``has_action``; no pixels). The store's manifest gives the action spec and the latent shape, both
recorded in the checkpoint. (d, τ, ε) of step s depend only on (seed, s); the checkpoint keeps the
loss's running-RMS normalisers.

Held-out evaluation: the loss on held-out windows (fixed noise, normalisers frozen) and open-loop
rollouts in latent space: the first half of each held-out window is context, the second half is
generated with K steps per frame; the latent MSE at 1 step and at the last step is reported beside
the "copy the last context frame" baseline.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from dreamer_data import WindowDataset
from dreamer_data.store.fields import LATENTS

from ..checkpoint import WORLD_MODEL, model_hash
from ..dynamics import DynamicsModel, Sampler, ShortcutForcingLoss, shift_actions
from ..dynamics.actions import fields_from_dicts, fields_to_dicts
from ..dynamics.config import OBJECTIVES, Phase1Run, validate_dynamics
from ..errors import ModelError
from ..presets import resolve_run, run_from_dict
from ..stores import latents_entry, read_manifest, store_action_fields, world_model_fields
from .trainer import Trainer, TrainOptions, step_generator


@dataclass(kw_only=True)
class Phase1TrainOptions(TrainOptions):
    objective: str | None = None  # overrides dynamics.objective: "shortcut" or "flow" (the baseline)


class Phase1Trainer(Trainer):
    kind = WORLD_MODEL
    options: Phase1TrainOptions
    run: Phase1Run

    def read_store(self) -> None:
        store = self.options.data
        manifest = read_manifest(store)
        self.latent_entry = latents_entry(manifest, store)
        self.store_fields, self.has_action = store_action_fields(manifest, store)

    def configure(self) -> Phase1Run:
        store, state = self.options.data, self.resume_state
        if state is not None:
            self.fields = fields_from_dicts(state["action_fields"])
            if [f.name for f in self.fields] != [f.name for f in self.store_fields]:
                raise ModelError(f"{store}: actions {[f.name for f in self.store_fields]} differ from the run's "
                                 f"{[f.name for f in self.fields]} ({state['path']})")
            return run_from_dict("phase1", state["config"], state["path"])
        self.fields = self.store_fields
        run = resolve_run("phase1", self.options.preset, self.options.config, self.options.sets)
        if self.options.objective is not None:
            if self.options.objective not in OBJECTIVES:
                raise ModelError(f"--objective must be one of {', '.join(OBJECTIVES)}, got {self.options.objective!r}")
            run.dynamics.objective = self.options.objective
        return run

    def build(self) -> None:
        cfg, store = self.run.dynamics, self.options.data
        load = world_model_fields(self.fields, self.has_action)
        everything = WindowDataset(store, length=cfg.context, load=load)
        latent_shape = tuple(everything[0][LATENTS].shape[1:])
        if self.resume_state is None:
            cfg.latent_tokens, cfg.latent_dim = latent_shape  # the store decides what a frame is
        elif latent_shape != (cfg.latent_tokens, cfg.latent_dim):
            raise ModelError(f"{store}: latents are {latent_shape} per frame but the run was trained on "
                             f"{(cfg.latent_tokens, cfg.latent_dim)} ({self.resume_state['path']})")
        self.split_data(load, cfg.context, everything)
        validate_dynamics(cfg, self.options.config or "--set")
        torch.manual_seed(self.seed)
        self.model = DynamicsModel(cfg, self.fields).to(self.device)
        self.loss_fn = ShortcutForcingLoss.from_config(cfg).to(self.device)

    def load_state(self, state: dict) -> None:
        self.load_model(self.model, state["model"])
        self.load_optimizer(self.optimizer, state["optimizer"])
        self.loss_fn.load_state_dict(state["loss_norm"])

    def checkpoint_state(self) -> dict:
        model = self.model_state(self.model)
        return {"model": model, "model_hash": model_hash(model, asdict(self.run.dynamics)),
                "optimizer": self.optimizer_state(self.optimizer), "loss_norm": self.loss_fn.state_dict(),
                "action_fields": fields_to_dicts(self.fields), "latents": self.latent_entry,
                "world_size": self.dist.world_size}

    def describe(self) -> dict:
        return {"objective": self.run.dynamics.objective, "actions": [f.name for f in self.fields]}

    @property
    def frames_per_step(self) -> int:
        return self.run.train.batch * self.run.dynamics.context

    def _inputs(self, batch: dict[str, torch.Tensor]):
        batch = {key: value.to(self.device, non_blocking=True) for key, value in batch.items()}
        latents = batch[LATENTS].float()  # (B, T, S_z, D_z)
        action_in, has_action_in = shift_actions(batch, self.fields)  # the action that led to each frame
        return latents, action_in, has_action_in

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        latents, action_in, has_action_in = self._inputs(batch)

        def student(z, tau, d):
            return self.net(z, tau, d, action_in, has_action_in).x_pred

        def teacher(z, tau, d):  # called under stop-gradient by the loss (eq. 7 bootstrap)
            return self.model(z, tau, d, action_in, has_action_in).x_pred

        self.schedule(self.optimizer)
        loss, metrics = self.loss_fn(student, latents, step_generator(self.seed, self.step), teacher=teacher,
                                     reduce=self.dist.mean, shard=self.shard)
        self.update(self.optimizer, loss, self.trained, metrics)
        metrics["lr"] = self.optimizer.param_groups[0]["lr"]
        return metrics

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Held-out loss terms and open-loop latent rollouts (see the module docstring)."""
        self.model.eval()
        self.loss_fn.eval()
        latents, action_in, has_action_in = self._inputs(self.eval_batch)

        def predict(z, tau, d):
            return self.model(z, tau, d, action_in, has_action_in).x_pred

        _, loss_metrics = self.loss_fn(predict, latents, torch.Generator().manual_seed(self.seed + 1))
        metrics = {key: loss_metrics[key] for key in ("flow", "bootstrap", "x_mse") if key in loss_metrics}
        context = latents.shape[1] // 2
        horizon = latents.shape[1] - context
        predicted = Sampler(self.model).generate(latents[:, :context], action_in, has_action_in, horizon,
                                                 torch.Generator().manual_seed(self.seed + 2))
        error = ((predicted.float() - latents[:, context:]) ** 2).mean(dim=(0, 2, 3))  # (H,) per step ahead
        copy = ((latents[:, context - 1:context] - latents[:, context:]) ** 2).mean(dim=(0, 2, 3))
        metrics.update({"rollout_mse_1": float(error[0]), f"rollout_mse_{horizon}": float(error[-1]),
                        "copy_mse_1": float(copy[0]), f"copy_mse_{horizon}": float(copy[-1])})
        self.model.train()
        self.loss_fn.train()
        return metrics


train_phase1 = Phase1Trainer.train
