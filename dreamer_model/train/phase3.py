"""``dreamer-train phase3``: imagination training (paper §3.3, eqs. 10–11) inside the frozen world model.

The objective is ``agent/imagination.py``: imagine from real contexts, λ-returns, the value's two-hot loss and
PMPO. Only the policy and value heads train (the transformer, task embedding, reward and continuation
heads stay as phase 2 left them). For the first ``value_warmup`` steps only the value learns, so the
first advantages are not all positive against an untrained value of 0. Every loss term, the
advantage statistics, the policy entropy and KL[π ‖ π_prior] are logged per step. The held-out
evaluation imagines from held-out contexts with the same noise under π and under π_prior and
reports both imagined returns: what the world model thinks of the student (the real test is
``dreamer-train eval``).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch

from dreamer_data import WindowDataset
from dreamer_data.store.fields import HAS_ACTION, LATENTS

from ..agent.config import Phase3Run
from ..agent.imagination import Imagination
from ..agent.model import Agent
from ..agent.tasks import parse_tasks
from ..agent.twohot import SymlogBins
from ..checkpoint import AGENT, load_checkpoint, model_hash
from ..errors import ModelError
from ..presets import resolve_run, run_from_dict
from ..stores import latents_entry, read_manifest
from .fsdp import agent_roots, gathered
from .trainer import Trainer, TrainOptions, step_generator

@dataclass(kw_only=True)
class Phase3TrainOptions(TrainOptions):
    agent: str  # the phase-2 run to start from


class Phase3Trainer(Trainer):
    kind, phase = AGENT, 3
    wrap_ddp = False  # imagination calls the world model step by step; only the heads train
    options: Phase3TrainOptions
    run: Phase3Run

    def read_store(self) -> None:
        self.manifest = read_manifest(self.options.data)
        self.latents = latents_entry(self.manifest, self.options.data)

    def configure(self) -> Phase3Run:
        state = self.resume_state
        base = state if state is not None else load_checkpoint(self.options.agent, AGENT)
        if state is None and base.get("phase") != 2:
            raise ModelError(f"{base['path']}: phase 3 starts from a phase-2 agent, this is phase {base.get('phase')}")
        if (base.get("latents") or {}).get("checkpoint_hash") != self.latents.get("checkpoint_hash"):
            raise ModelError(f"{base['path']}: the agent was trained on latents of tokenizer "
                             f"{(base.get('latents') or {}).get('checkpoint_hash')}, but {self.options.data} holds "
                             f"latents of {self.latents.get('checkpoint_hash')}")
        self.base = base
        self.agent = Agent.from_description(base["agent"], base["path"])
        if state is not None:
            return run_from_dict("phase3", state["config"], state["path"])
        return resolve_run("phase3", self.options.preset, self.options.config, self.options.sets, self.agent.cfg)

    def build(self) -> None:
        agent, cfg = self.agent, self.run.agent
        agent.load_state_dict(self.base["model"])
        agent.cfg = cfg  # phase-3 coefficients (α, β, γ, λ, H, …); the shapes are unchanged
        agent.bins = SymlogBins(cfg.bins, cfg.bins_low, cfg.bins_high, cfg.bins_target)  # two-hot or HL-Gauss targets
        self.model = self.agent = agent.to(self.device)
        self.tasks = parse_tasks(agent.tasks, self.manifest, self.options.data)
        agent.requires_grad_(False)
        agent.policy.requires_grad_(True)
        agent.value.requires_grad_(True)
        self.imagination = Imagination(agent, self.tasks, cfg)
        self._build_data()

    def build_optimizers(self) -> None:
        agent, train = self.agent, self.run.train
        self.policy_params, self.value_params = list(agent.policy.parameters()), list(agent.value.parameters())
        self.policy_opt = torch.optim.AdamW(self.policy_params, lr=train.lr, betas=(train.beta1, train.beta2),
                                            weight_decay=train.weight_decay)
        self.value_opt = torch.optim.AdamW(self.value_params, lr=self.run.value_lr,
                                           betas=(train.beta1, train.beta2), weight_decay=train.weight_decay)

    def fsdp_roots(self) -> list[torch.nn.Module]:
        return agent_roots(self.agent)

    def _build_data(self) -> None:
        store, cfg = self.options.data, self.run.agent
        fields = self.manifest["fields"]
        load = list(dict.fromkeys([LATENTS, *[f.store_field for f in self.agent.world.action_fields],
                                   *(HAS_ACTION,) * (HAS_ACTION in fields)]))
        everything = WindowDataset(store, length=cfg.context, load=load)
        shape = tuple(everything[0][LATENTS].shape[1:])
        if shape != self.agent.world.latent_shape:
            raise ModelError(f"{store}: latents are {shape} per frame, the world model reads "
                             f"{self.agent.world.latent_shape}")
        self.split_data(load, cfg.context, everything)

    def load_state(self, state: dict) -> None:
        self.imagination.prior.load_state_dict(state["prior_policy"])
        self.imagination.slow_value.module.load_state_dict(state["slow_value"])
        self.load_optimizer(self.policy_opt, state["policy_optimizer"])
        self.load_optimizer(self.value_opt, state["value_optimizer"])

    def checkpoint_state(self) -> dict:
        description = {**self.agent.describe(), "agent": asdict(self.run.agent)}
        model = self.model_state(self.agent)
        return {**{k: v for k, v in self.base.items() if k in ("tokenizer", "env", "wm", "latents")},
                "agent": description, "model": model, "model_hash": model_hash(model, asdict(self.run)),
                "prior_policy": self.imagination.prior.state_dict(),
                "slow_value": self.imagination.slow_value.module.state_dict(),
                "policy_optimizer": self.optimizer_state(self.policy_opt),
                "value_optimizer": self.optimizer_state(self.value_opt),
                "phase2": self.base.get("phase2", self.base["path"]) if self.resume_state is not None
                else self.base["path"]}

    def describe(self) -> dict:
        return {"tasks": self.agent.tasks, "horizon": self.run.agent.horizon}

    @property
    def frames_per_step(self) -> int:
        return self.run.train.batch * (self.run.agent.context + self.run.agent.horizon)

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        generator = step_generator(self.seed, self.step)
        began = time.perf_counter()
        self.agent.eval()  # the frozen parts: no dropout/normalisation state anyway, but be explicit
        traj = self.imagination.imagine(batch, generator, shard=self.shard)
        imagine_seconds = time.perf_counter() - began
        update_policy = self.step >= self.run.value_warmup
        policy_loss, value_loss, metrics = self.imagination.losses(traj, update_policy,
                                                                   self.dist.mean if self.dist.enabled else None)
        self.update(self.value_opt, value_loss, self.value_params, metrics, "value_grad_norm")
        if update_policy:
            self.update(self.policy_opt, policy_loss, self.policy_params, metrics, "policy_grad_norm")
        with gathered(self.agent.value) as value:  # FSDP: the slow copy follows the full weights
            self.imagination.slow_value.update(value)
        metrics["imagine_seconds"] = imagine_seconds
        return metrics

    def evaluate(self) -> dict[str, float]:
        return self.imagination.imagined_returns(self.eval_batch, self.seed + 7)


train_phase3 = Phase3Trainer.train
