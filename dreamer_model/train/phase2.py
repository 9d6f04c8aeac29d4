"""``dreamer-train phase2``: behaviour cloning and reward heads on agent tokens (paper §3.3, eq. 9).

Start from a phase-1 world model; add hidden agent tokens (task embedding → ``agent`` group, read by
no world-model token) and heads on their outputs h_t. Each step, on a batch of latent windows:

    L = w_dyn · L_shortcut(world model)                                   (eq. 7, still on; off with freeze)
      + w_bc  · mean_{t,n} −ln π(a_{t+n} | h_t)                            (eq. 9, policy, n = 0 … L)
      + w_rew · mean_{t,n} −ln p(r^in_{t+n} | h_t)                         (eq. 9, reward, two-hot)
      + w_con · mean_{t,n} BCE(c^in_{t+n} | h_t)                           (continuation, for imagination)

The agent pass feeds the context as it is fed when acting and imagining: every frame re-noised to
the context level τ_ctx and labelled d_min (``Sampler.renoise``), so the heads see at training what
they see later. Eq. 9 sums over n; we average over the valid (t, n) pairs (a constant factor).
Targets follow the row convention (``agent/targets.py``). The world model is fine-tuned jointly
(paper), or frozen with ``--freeze-wm`` (then only task embedding and heads learn).

Same guarantees as the other trainers: window n and the noise of step s depend only on (seed, n) and
(seed, s); ``--resume`` continues bit-exactly; Ctrl-C checkpoints at a step boundary.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import yaml
from torch.nn import functional as F
from torch.utils.data import DataLoader

from dreamer_data import WindowDataset
from dreamer_data.loaders import WindowSampler
from dreamer_data.store.fields import HAS_ACTION, IS_FIRST, IS_TERMINAL, LATENTS, REWARDS

from ..agent.actions import ActionSpace
from ..agent.config import Phase2Run, validate_agent
from ..agent.model import Agent
from ..agent.tasks import parse_tasks
from ..agent.targets import incoming, shift_ahead
from ..checkpoint import (AGENT, list_checkpoints, load_checkpoint, load_world_model, model_hash, save_checkpoint,
                          tokenizer_record)
from ..configs import apply_overrides, load_yaml, parse_set
from ..dynamics import Sampler, ShortcutForcingLoss, shift_actions
from ..errors import ModelError
from ..stores import env_settings, latents_entry, read_manifest
from .distributed import set_threads
from .logging import RunLog
from .tokenizer_trainer import learning_rate, parameter_groups, split_episodes, step_generator, stop_on_sigint

Report = Callable[[str, dict], None]


@dataclass
class Phase2TrainOptions:
    data: str
    wm: str
    out: str
    tasks: list[str] = field(default_factory=list)
    preset: str = "tiny"
    steps: int | None = None
    config: str | None = None
    sets: list[str] = field(default_factory=list)
    resume: bool = False
    seed: int = 0
    device: str = "auto"
    freeze_wm: bool = False


def resolve_phase2_run(preset: str, config_file: str | None, sets: list[str] | None) -> Phase2Run:
    if preset not in ("tiny", "small", "base", "paper"):
        raise ModelError(f"unknown preset {preset!r} (known: tiny, small, base, paper)")
    run = Phase2Run(preset=preset)
    if config_file:
        data = load_yaml(config_file)
        data.pop("preset", None)
        run = apply_overrides(run, data, str(config_file))
    if sets:
        run = apply_overrides(run, parse_set(sets), "--set")
    validate_agent(run.agent, config_file or "--set")
    return run


def bc_losses(agent: Agent, h_BTD: torch.Tensor, batch: dict[str, torch.Tensor], reward_BT: torch.Tensor,
              mtp: int, balance_continue: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """Eq. 9 terms on agent states h (B, T, D) and the window's rows (see ``agent/targets.py``)."""
    space = agent.space
    has_action_BT = batch[HAS_ACTION].bool() if HAS_ACTION in batch else torch.ones_like(reward_BT, dtype=torch.bool)
    # policy: a_{t+n}, n = 0 … L
    dist = agent.policy(h_BTD)  # batch shape (B, T, L+1)
    targets, masks = {}, None
    for c in space.components:
        target, mask = shift_ahead(batch[c.field], has_action_BT, mtp)  # (B, T, L+1, …), (B, T, L+1)
        targets[c.name], masks = target, mask
    bc_nll_BTN = -dist.log_prob(targets)
    bc = (bc_nll_BTN * masks).sum() / masks.sum().clamp(min=1)
    # reward and continuation of arriving at step t+n
    r_in, c_in, valid_in = incoming(reward_BT, batch[IS_TERMINAL], has_action_BT, batch[IS_FIRST])
    r_target, r_mask = shift_ahead(r_in, valid_in, mtp)
    c_target, _ = shift_ahead(c_in, valid_in, mtp)
    reward_logits = agent.reward(h_BTD)  # (B, T, L+1, bins)
    reward_nll = (agent.bins.nll(reward_logits, r_target) * r_mask).sum() / r_mask.sum().clamp(min=1)
    cont_logits = agent.cont(h_BTD).float()  # (B, T, L+1)
    cont_bce = F.binary_cross_entropy_with_logits(cont_logits, c_target, reduction="none")
    ends, goes_on = r_mask & (c_target < 0.5), r_mask & (c_target >= 0.5)
    if balance_continue and bool(ends.any()):
        # Episode ends are rare (one row per episode): average the two classes separately so the head
        # cannot ignore them; imagination needs them to know when an imagined episode is over.
        cont_nll = 0.5 * (cont_bce * ends).sum() / ends.sum() + 0.5 * (cont_bce * goes_on).sum() / goes_on.sum().clamp(min=1)
    else:
        cont_nll = (cont_bce * r_mask).sum() / r_mask.sum().clamp(min=1)
    with torch.no_grad():
        first = masks[..., 0]
        mode = dist.mode()
        correct = torch.stack([(mode[c.name][:, :, 0] == targets[c.name][:, :, 0]).reshape(*first.shape, -1).all(-1)
                               for c in space.components]).all(0)  # n = 0: the action taken at t
        reward_pred = agent.bins.decode(reward_logits[..., 0, :])
        r_first = r_mask[..., 0]
        metrics = {
            "bc_accuracy": float((correct & first).sum() / first.sum().clamp(min=1)),
            "policy_entropy": float((dist.entropy()[..., 0] * first).sum() / first.sum().clamp(min=1)),
            "reward_mae": float(((reward_pred - r_target[..., 0]).abs() * r_first).sum() / r_first.sum().clamp(min=1)),
            "continue_accuracy": float((((cont_logits[..., 0] > 0).float() == c_target[..., 0]).float() * r_first).sum()
                                       / r_first.sum().clamp(min=1)),
            "end_recall": float(((cont_logits < 0) & ends).sum() / ends.sum()) if bool(ends.any()) else float("nan"),
        }
    return {"bc": bc, "reward": reward_nll, "continue": cont_nll}, metrics


class Phase2Trainer:
    def __init__(self, options: Phase2TrainOptions, report: Report | None = None):
        self.options, self.report = options, report or (lambda event, info: None)
        self.device = _device(options.device)
        self.out = Path(options.out)
        store = options.data
        self.manifest = read_manifest(store)
        self.latents = latents_entry(self.manifest, store)
        self.resume_state = self._resume_state()
        self.loss_norm = None
        if self.resume_state is not None:
            source = self.resume_state["path"]
            self.run = apply_overrides(Phase2Run(), self.resume_state["config"], source)
            self.seed = int(self.resume_state["seed"])
            self.agent = Agent.from_description(self.resume_state["agent"], source)
            self.tokenizer = self.resume_state["tokenizer"]
            self.wm_path = self.resume_state["wm"]
        else:
            self.run = resolve_phase2_run(options.preset, options.config, options.sets)
            if options.freeze_wm:
                self.run.freeze_world_model = True
            self.seed = options.seed
            world, wm_state = load_world_model(options.wm)
            self.wm_path = wm_state["path"]
            if (wm_state.get("latents") or {}).get("checkpoint_hash") != self.latents.get("checkpoint_hash"):
                raise ModelError(f"{self.wm_path}: the world model was trained on latents of tokenizer "
                                 f"{(wm_state.get('latents') or {}).get('checkpoint_hash')}, but {store} holds "
                                 f"latents of {self.latents.get('checkpoint_hash')}")
            space = ActionSpace.from_manifest(self.manifest.get("actions"), f"{store}/manifest.json")
            tasks = parse_tasks(options.tasks, self.manifest, store)
            torch.manual_seed(self.seed)
            self.agent = Agent(world.cfg, world.action_fields, space, self.run.agent, [t.name for t in tasks])
            missing, unexpected = self.agent.world.load_state_dict(world.state_dict(), strict=False)
            if unexpected or set(missing) - {"agent_queries"}:
                raise ModelError(f"{self.wm_path}: world-model weights do not fit (missing {missing}, "
                                 f"unexpected {unexpected})")
            self.tokenizer = tokenizer_record(self.latents, store)
            self.loss_norm = wm_state.get("loss_norm")
        self.tasks = parse_tasks(self.agent.tasks, self.manifest, store)
        self.env = env_settings(self.manifest, store)
        self.agent.to(self.device)
        train = self.run.train
        set_threads(train.threads)
        self.steps = options.steps if options.steps is not None else train.steps
        if self.steps < 0:
            raise ModelError(f"--steps must be >= 0, got {self.steps}")
        dyn = self.agent.dynamics_cfg
        self.loss_fn = ShortcutForcingLoss(dyn.k_max, dyn.objective, dyn.rms_decay,
                                           dyn.bootstrap_fraction).to(self.device)  # the world model's eq. 7 as in phase 1
        if self.resume_state is None and self.loss_norm is not None:
            self.loss_fn.load_state_dict(self.loss_norm)
        self.frozen = self.run.freeze_world_model
        if self.frozen:
            self.agent.world.requires_grad_(False)
        trainable = [p for p in self.agent.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(parameter_groups(self.agent, train.weight_decay) if not self.frozen else
                                           [{"params": trainable, "weight_decay": train.weight_decay}],
                                           lr=train.lr, betas=(train.beta1, train.beta2), eps=1e-8)
        self.step = 0
        if self.resume_state is not None:
            self.agent.load_state_dict(self.resume_state["model"])
            self.optimizer.load_state_dict(self.resume_state["optimizer"])
            self.loss_fn.load_state_dict(self.resume_state["loss_norm"])
            self.step = int(self.resume_state["step"])
        self.sampler = Sampler(self.agent.world)
        self._build_data()
        self.log = RunLog(self.out)

    def _resume_state(self) -> dict | None:
        existing = list_checkpoints(self.out)
        if not self.options.resume:
            if existing:
                raise ModelError(f"{self.out}: run already holds checkpoints (newest {existing[-1].name}); pass "
                                 f"--resume to continue it or choose another --out")
            return None
        if not existing:
            raise ModelError(f"{self.out}: --resume but the run has no checkpoint ({self.out}/checkpoints/step_*.pt)")
        state = load_checkpoint(existing[-1], AGENT)
        if state.get("phase") != 2:
            raise ModelError(f"{state['path']}: a phase-{state.get('phase')} agent checkpoint, not phase 2")
        return state

    def _build_data(self) -> None:
        store, train = self.options.data, self.run.train
        fields = self.manifest["fields"]
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
        train_ids, heldout_ids = split_episodes(everything.episode_ids, train.heldout_episodes, store)
        self.train_set = WindowDataset(store, length=context, load=load, episodes=train_ids)
        heldout = WindowDataset(store, length=context, load=load, episodes=heldout_ids)
        self.heldout_ids = heldout_ids
        picks = np.unique(np.linspace(0, len(heldout) - 1, min(train.eval_windows, len(heldout))).round().astype(int))
        items = [heldout[int(i)] for i in picks]
        self.eval_batch = {key: torch.stack([item[key] for item in items]) for key in items[0]}

    def _batches(self) -> Iterator[dict[str, torch.Tensor]]:
        batch = self.run.train.batch
        sampler = WindowSampler(self.train_set, seed=self.seed, start=self.step * batch)
        workers = self.run.train.workers
        yield from DataLoader(self.train_set, batch_size=batch, sampler=sampler, num_workers=workers,
                              multiprocessing_context=self.train_set.multiprocessing_context if workers else None,
                              persistent_workers=workers > 0)

    # ------------------------------------------------------------------------------------------ losses

    def losses(self, batch: dict[str, torch.Tensor], generator: torch.Generator,
               with_dynamics: bool) -> tuple[torch.Tensor, dict[str, float]]:
        batch = {key: value.to(self.device) for key, value in batch.items()}
        cfg = self.run.agent
        latents = batch[LATENTS].float()  # (B, T, S_z, D_z)
        b, t = latents.shape[:2]
        action_in, has_in = shift_actions(batch, self.agent.world.action_fields)
        task_B = torch.randint(len(self.tasks), (b,), generator=generator).to(self.device)
        reward_KBT = torch.stack([task.reward(batch) for task in self.tasks])  # every task's reward
        reward_BT = reward_KBT[task_B, torch.arange(b, device=self.device)]  # each window's own task
        total = latents.new_zeros(())
        metrics: dict[str, float] = {}
        if with_dynamics:
            def f(z, tau, d):
                return self.agent.world(z, tau, d, action_in, has_in).x_pred

            dyn_loss, dyn_metrics = self.loss_fn(f, latents, generator)
            total = total + cfg.dynamics_weight * dyn_loss
            metrics.update({f"dyn_{k}": v for k, v in dyn_metrics.items()})
        noise = torch.randn(latents.shape, generator=generator).to(self.device)
        z_ctx, tau, d = self.sampler.renoise(latents, noise)  # the context as the agent sees it when acting
        agent_has_in = has_in if cfg.policy_sees_actions else torch.zeros_like(has_in)
        out = self.agent.world(z_ctx, tau, d, action_in, agent_has_in, agent=self.agent.agent_inputs(task_B, t))
        h = self.agent.state(out.agent)  # (B, T, D)
        terms, head_metrics = bc_losses(self.agent, h, batch, reward_BT, cfg.mtp, cfg.balance_continue)
        total = total + cfg.bc_weight * terms["bc"] + cfg.reward_weight * terms["reward"] \
            + cfg.continue_weight * terms["continue"]
        metrics.update({"loss": float(total.detach()), "bc_nll": float(terms["bc"].detach()), "reward_nll": float(terms["reward"].detach()),
                        "continue_nll": float(terms["continue"].detach()), **head_metrics})
        return total, metrics

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.step, self.run.train)
        loss, metrics = self.losses(batch, step_generator(self.seed, self.step, 0), with_dynamics=not self.frozen)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.run.train.grad_clip > 0:
            metrics["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(
                [p for p in self.agent.parameters() if p.requires_grad], self.run.train.grad_clip))
        self.optimizer.step()
        self.step += 1
        metrics["lr"] = self.optimizer.param_groups[0]["lr"]
        return metrics

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        self.agent.eval()
        self.loss_fn.eval()
        _, metrics = self.losses(self.eval_batch, torch.Generator().manual_seed(self.seed + 1), with_dynamics=False)
        self.agent.train()
        self.loss_fn.train()
        return metrics

    def checkpoint(self) -> Path:
        config = asdict(self.run)
        state = {"kind": AGENT, "phase": 2, "version": 1, "step": self.step, "seed": self.seed, "config": config,
                 "agent": self.agent.describe(), "model": self.agent.state_dict(),
                 "model_hash": model_hash(self.agent.state_dict(), config),
                 "optimizer": self.optimizer.state_dict(), "loss_norm": self.loss_fn.state_dict(),
                 "tokenizer": self.tokenizer, "env": self.env, "wm": self.wm_path, "latents": self.latents,
                 "data": {"store": self.options.data, "heldout": self.heldout_ids}}
        path = save_checkpoint(self.out, self.step, state, keep=self.run.train.keep_checkpoints)
        self.report("checkpoint", {"path": str(path), "step": self.step})
        return path

    def fit(self) -> dict:
        train, summary = self.run.train, {}
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "config.yaml").write_text(yaml.safe_dump(asdict(self.run), sort_keys=False))
        self.report("start", {"step": self.step, "steps": self.steps, "device": str(self.device),
                              "parameters": sum(p.numel() for p in self.agent.parameters()),
                              "trainable": sum(p.numel() for p in self.agent.parameters() if p.requires_grad),
                              "train_windows": len(self.train_set), "heldout_episodes": len(self.heldout_ids),
                              "tasks": self.agent.tasks, "frozen": self.frozen})
        last_saved = self.step if self.resume_state is not None else None
        began = time.perf_counter()
        self.agent.train()
        try:
            with stop_on_sigint() as interrupt:
                batches = self._batches()
                while self.step < self.steps:
                    metrics = self.train_step(next(batches))
                    if self.step % train.log_every == 0 or self.step == self.steps:
                        metrics["seconds"] = time.perf_counter() - began
                        self.log.write(self.step, metrics, "train")
                        self.report("step", {"step": self.step, **metrics})
                    if self.step % train.eval_every == 0 or self.step == self.steps:
                        summary = self.evaluate()
                        self.log.write(self.step, summary, "heldout")
                        self.report("eval", {"step": self.step, **summary})
                    if self.step % train.checkpoint_every == 0 or self.step == self.steps:
                        self.checkpoint()
                        last_saved = self.step
                    if interrupt["stop"]:
                        raise KeyboardInterrupt
        except KeyboardInterrupt:
            if last_saved != self.step:
                self.checkpoint()
            raise
        finally:
            self.log.close()
        if last_saved != self.step:
            self.checkpoint()
        return {"step": self.step, **summary}


def _device(name: str) -> torch.device:
    from .distributed import pick_device

    return pick_device(name)


def train_phase2(options: Phase2TrainOptions, report: Report | None = None) -> dict:
    return Phase2Trainer(options, report).fit()
