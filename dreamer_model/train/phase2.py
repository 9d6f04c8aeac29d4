"""``dreamer-train phase2``: behaviour cloning and reward heads on agent tokens (paper §3.3, eq. 9).

Start from a phase-1 world model; the objective (``agent/behaviour_cloning.py``) trains hidden agent tokens and
heads on their outputs, with the world model fine-tuned jointly (paper) or frozen (``--freeze-wm``). The task
of each window and the noise of step s depend only on (seed, s); see ``trainer.py`` for the loop.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from dreamer_data import WindowDataset
from dreamer_data.store.fields import HAS_ACTION, IS_TERMINAL, LATENTS, REWARDS

from ..agent.actions import ActionSpace
from ..agent.behaviour_cloning import BehaviourCloning
from ..agent.config import Phase2Run
from ..agent.model import Agent
from ..agent.tasks import parse_tasks
from ..checkpoint import AGENT, load_world_model, model_hash, tokenizer_record
from ..dynamics import ShortcutForcingLoss
from ..errors import ModelError
from ..presets import resolve_run, run_from_dict
from ..stores import env_settings, latents_entry, read_manifest
from .fsdp import agent_roots
from .trainer import Trainer, TrainOptions, parameter_groups, step_generator


@dataclass(kw_only=True)
class Phase2TrainOptions(TrainOptions):
    wm: str  # the phase-1 run to start from
    tasks: list[str] = field(default_factory=list)
    freeze_wm: bool = False


class Phase2Trainer(Trainer):
    kind, phase = AGENT, 2
    wrap_ddp = False  # a step calls the world model for eq. 7 and again for the agent tokens
    options: Phase2TrainOptions
    run: Phase2Run

    def read_store(self) -> None:
        self.manifest = read_manifest(self.options.data)
        self.latents = latents_entry(self.manifest, self.options.data)

    def configure(self) -> Phase2Run:
        if self.resume_state is not None:
            return run_from_dict("phase2", self.resume_state["config"], self.resume_state["path"])
        run = resolve_run("phase2", self.options.preset, self.options.config, self.options.sets)
        if self.options.freeze_wm:
            run.freeze_world_model = True
        return run

    def build(self) -> None:
        store, state = self.options.data, self.resume_state
        loss_norm = None
        if state is not None:
            self.agent = Agent.from_description(state["agent"], state["path"])
            self.tokenizer, self.wm_path = state["tokenizer"], state["wm"]
        else:
            world, wm_state = load_world_model(self.options.wm)
            self.wm_path = wm_state["path"]
            if (wm_state.get("latents") or {}).get("checkpoint_hash") != self.latents.get("checkpoint_hash"):
                raise ModelError(f"{self.wm_path}: the world model was trained on latents of tokenizer "
                                 f"{(wm_state.get('latents') or {}).get('checkpoint_hash')}, but {store} holds "
                                 f"latents of {self.latents.get('checkpoint_hash')}")
            space = ActionSpace.from_manifest(self.manifest.get("actions"), f"{store}/manifest.json")
            tasks = parse_tasks(self.options.tasks, self.manifest, store)
            torch.manual_seed(self.seed)
            self.agent = Agent(world.cfg, world.action_fields, space, self.run.agent, [t.name for t in tasks])
            missing, unexpected = self.agent.world.load_state_dict(world.state_dict(), strict=False)
            if unexpected or set(missing) - {"agent_queries"}:
                raise ModelError(f"{self.wm_path}: world-model weights do not fit (missing {missing}, "
                                 f"unexpected {unexpected})")
            self.tokenizer = tokenizer_record(self.latents, store)
            loss_norm = wm_state.get("loss_norm")
        self.model = self.agent
        self.tasks = parse_tasks(self.agent.tasks, self.manifest, store)
        self.env = env_settings(self.manifest, store)
        self.agent.to(self.device)
        dyn = self.agent.dynamics_cfg
        self.loss_fn = ShortcutForcingLoss.from_config(dyn).to(self.device)  # the world model's eq. 7 as in phase 1
        if loss_norm is not None:
            self.loss_fn.load_state_dict(loss_norm)
        self.frozen = self.run.freeze_world_model
        if self.frozen:
            self.agent.world.requires_grad_(False)
        self.objective = BehaviourCloning(self.agent, self.tasks, self.loss_fn, self.run.agent)
        self._build_data()

    def build_optimizers(self) -> None:
        train = self.run.train
        self.trained = [p for p in self.agent.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(parameter_groups(self.agent, train.weight_decay) if not self.frozen else
                                           [{"params": self.trained, "weight_decay": train.weight_decay}],
                                           lr=train.lr, betas=(train.beta1, train.beta2), eps=1e-8)

    def fsdp_roots(self) -> list[torch.nn.Module]:
        return agent_roots(self.agent)

    def _build_data(self) -> None:
        store, fields = self.options.data, self.manifest["fields"]
        load = [LATENTS, *self.agent.space.fields, *[f.store_field for f in self.agent.world.action_fields],
                *(HAS_ACTION,) * (HAS_ACTION in fields), REWARDS, IS_TERMINAL]
        load += sorted({t.field for t in self.tasks} - set(load))
        for name in (REWARDS, IS_TERMINAL):
            if name not in fields:
                raise ModelError(f"{store}: phase 2 needs the {name!r} field; the store has none")
        load = list(dict.fromkeys(load))
        context = self.agent.dynamics_cfg.context
        everything = WindowDataset(store, length=context, load=load)
        shape = tuple(everything[0][LATENTS].shape[1:])
        if shape != self.agent.world.latent_shape:
            raise ModelError(f"{store}: latents are {shape} per frame, the world model reads "
                             f"{self.agent.world.latent_shape}")
        self.split_data(load, context, everything)

    def load_state(self, state: dict) -> None:
        self.load_model(self.agent, state["model"])
        self.load_optimizer(self.optimizer, state["optimizer"])
        self.loss_fn.load_state_dict(state["loss_norm"])

    def checkpoint_state(self) -> dict:
        model = self.model_state(self.agent)
        return {"agent": self.agent.describe(), "model": model, "model_hash": model_hash(model, asdict(self.run)),
                "optimizer": self.optimizer_state(self.optimizer), "loss_norm": self.loss_fn.state_dict(),
                "tokenizer": self.tokenizer, "env": self.env, "wm": self.wm_path, "latents": self.latents}

    def describe(self) -> dict:
        return {"tasks": self.agent.tasks, "frozen": self.frozen}

    @property
    def frames_per_step(self) -> int:
        return self.run.train.batch * self.agent.dynamics_cfg.context

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        self.schedule(self.optimizer)
        loss, metrics = self.objective(batch, step_generator(self.seed, self.step), with_dynamics=not self.frozen,
                                       shard=self.shard, reduce=self.dist.mean if self.dist.enabled else None)
        self.update(self.optimizer, loss, self.trained, metrics)
        metrics["lr"] = self.optimizer.param_groups[0]["lr"]
        return metrics

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        self.agent.eval()
        self.loss_fn.eval()
        _, metrics = self.objective(self.eval_batch, torch.Generator().manual_seed(self.seed + 1), with_dynamics=False)
        self.agent.train()
        self.loss_fn.train()
        return metrics


train_phase2 = Phase2Trainer.train
