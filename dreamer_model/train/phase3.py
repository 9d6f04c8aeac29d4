"""``dreamer-train phase3``: imagination training (paper §3.3, eqs. 10–11) inside the frozen world model.

Each step:

1. **Imagine.** B real contexts of C frames (latents from the store, with their actions) are
   committed to the world model's K/V cache at τ_ctx; the agent state of the last real frame is s_0.
   Then for k = 0 … H−1: a_k ~ π(·|s_k); the next frame is generated in K shortcut steps given a_k
   (``Sampler.denoise``) and committed, which gives s_{k+1}; the frozen reward and continuation heads
   give r_{k+1} = E p(r | s_{k+1}) and c_{k+1} = p(continue | s_{k+1}). No gradient flows here.
2. **Returns** (eq. 10): R^λ_k = r_{k+1} + γ c_{k+1} ((1 − λ) v̄_{k+1} + λ R^λ_{k+1}), R^λ_H = v̄_H,
   bootstrapped with the slow (EMA) value head v̄. States after an imagined end weigh
   w_k = Π_{j≤k} c_j.
3. **Value**: −ln p(R^λ_k | s_k) on two-hot targets (distributional), weighted by w_k.
4. **Policy** (eq. 11, PMPO): A_k = R^λ_k − v(s_k); D+ / D− by the sign of A_k;
   (1 − α)/|D−| Σ_{D−} ln π − α/|D+| Σ_{D+} ln π + β/N Σ KL[π ‖ π_prior], π_prior the frozen phase-2 policy.

Only the policy and value heads train (the transformer, task embedding, reward and continuation
heads stay as phase 2 left them). For the first ``value_warmup`` steps only the value learns, so the
first advantages are not all positive against an untrained value of 0. Every loss term, the
advantage statistics, the policy entropy and KL[π ‖ π_prior] are logged per step. The held-out
evaluation imagines from held-out contexts with the same noise under π and under π_prior and
reports both imagined returns: what the world model thinks of the student (the real test is
``dreamer-train eval``).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader

from dreamer_data import WindowDataset
from dreamer_data.loaders import WindowSampler
from dreamer_data.store.fields import HAS_ACTION, LATENTS

from ..agent.config import AgentConfig, Phase3Run, validate_agent
from ..agent.heads import PolicyHead
from ..agent.model import Agent
from ..agent.tasks import parse_tasks
from ..agent.pmpo import pmpo_loss
from ..agent.returns import lambda_returns, state_weights
from ..agent.target import EMATarget
from ..agent.twohot import SymlogBins
from ..checkpoint import AGENT, list_checkpoints, load_checkpoint, model_hash, save_checkpoint
from ..configs import apply_overrides, load_yaml, parse_set
from ..dynamics import Sampler, shift_actions
from ..errors import ModelError
from ..stores import latents_entry, read_manifest
from .distributed import set_threads
from .logging import RunLog
from .tokenizer_trainer import split_episodes, step_generator, stop_on_sigint

Report = Callable[[str, dict], None]
# Agent fields that shape the networks or what the policy reads: phase 3 may not change them.
STRUCTURE = ("agent_tokens", "head_hidden", "head_layers", "mtp", "bins", "bins_low", "bins_high",
             "policy_sees_actions")


@dataclass
class Phase3TrainOptions:
    data: str
    agent: str
    out: str
    preset: str = "tiny"
    steps: int | None = None
    config: str | None = None
    sets: list[str] = field(default_factory=list)
    resume: bool = False
    seed: int = 0
    device: str = "auto"


@dataclass
class Imagined:
    """One batch of imagined trajectories (no gradient): states s_0 … s_H, actions a_0 … a_{H−1}."""

    h_BH1D: torch.Tensor  # agent states
    action_BH: dict[str, torch.Tensor]  # a_k per component (B, H, …)
    reward_BH: torch.Tensor  # r_{k+1}
    continue_BH: torch.Tensor  # c_{k+1}
    task_B: torch.Tensor


def resolve_phase3_run(base: AgentConfig, preset: str, config_file: str | None, sets: list[str] | None) -> Phase3Run:
    run = Phase3Run(preset=preset, agent=AgentConfig(**asdict(base)))
    for source, data in ((config_file, load_yaml(config_file) if config_file else None),
                         ("--set", parse_set(sets) if sets else None)):
        if data:
            data = dict(data)
            data.pop("preset", None)
            run = apply_overrides(run, data, str(source))
    changed = [name for name in STRUCTURE if getattr(run.agent, name) != getattr(base, name)]
    if changed:
        raise ModelError(f"{config_file or '--set'}: phase 3 cannot change the heads' shape "
                         f"({', '.join('agent.' + n for n in changed)}); they come from phase 2")
    validate_agent(run.agent, config_file or "--set")
    if run.value_warmup < 0:
        raise ModelError(f"{config_file or '--set'}: value_warmup must be >= 0")
    return run


class Phase3Trainer:
    def __init__(self, options: Phase3TrainOptions, report: Report | None = None):
        from .distributed import pick_device

        self.options, self.report = options, report or (lambda event, info: None)
        self.device = pick_device(options.device)
        self.out = Path(options.out)
        store = options.data
        self.manifest = read_manifest(store)
        self.latents = latents_entry(self.manifest, store)
        self.resume_state = self._resume_state()
        base = self.resume_state if self.resume_state is not None else load_checkpoint(options.agent, AGENT)
        if self.resume_state is None and base.get("phase") != 2:
            raise ModelError(f"{base['path']}: phase 3 starts from a phase-2 agent, this is phase {base.get('phase')}")
        if (base.get("latents") or {}).get("checkpoint_hash") != self.latents.get("checkpoint_hash"):
            raise ModelError(f"{base['path']}: the agent was trained on latents of tokenizer "
                             f"{(base.get('latents') or {}).get('checkpoint_hash')}, but {store} holds latents of "
                             f"{self.latents.get('checkpoint_hash')}")
        self.base = base
        agent = Agent.from_description(base["agent"], base["path"])
        if self.resume_state is not None:
            self.run = apply_overrides(Phase3Run(), self.resume_state["config"], self.resume_state["path"])
            self.seed = int(self.resume_state["seed"])
        else:
            self.run = resolve_phase3_run(agent.cfg, options.preset, options.config, options.sets)
            self.seed = options.seed
        agent.load_state_dict(base["model"])
        agent.cfg = self.run.agent  # phase-3 coefficients (α, β, γ, λ, H, …); the shapes are unchanged
        cfg = self.run.agent
        agent.bins = SymlogBins(cfg.bins, cfg.bins_low, cfg.bins_high, cfg.bins_target)  # two-hot or HL-Gauss targets
        self.agent = agent.to(self.device)
        self.tasks = parse_tasks(self.agent.tasks, self.manifest, store)
        self.agent.requires_grad_(False)
        self.agent.policy.requires_grad_(True)
        self.agent.value.requires_grad_(True)
        self.prior: PolicyHead = self.agent.frozen_policy()  # π_prior: the phase-2 policy
        self.slow_value = EMATarget(self.agent.value, self.run.agent.slow_value_decay).to(self.device)
        train = self.run.train
        set_threads(train.threads)
        self.policy_opt = torch.optim.AdamW(self.agent.policy.parameters(), lr=train.lr, betas=(train.beta1, train.beta2),
                                            weight_decay=train.weight_decay)
        self.value_opt = torch.optim.AdamW(self.agent.value.parameters(), lr=self.run.value_lr,
                                           betas=(train.beta1, train.beta2), weight_decay=train.weight_decay)
        self.step = 0
        if self.resume_state is not None:
            self.prior.load_state_dict(self.resume_state["prior_policy"])
            self.slow_value.module.load_state_dict(self.resume_state["slow_value"])
            self.policy_opt.load_state_dict(self.resume_state["policy_optimizer"])
            self.value_opt.load_state_dict(self.resume_state["value_optimizer"])
            self.step = int(self.resume_state["step"])
        self.steps = options.steps if options.steps is not None else train.steps
        if self.steps < 0:
            raise ModelError(f"--steps must be >= 0, got {self.steps}")
        self.sampler = Sampler(self.agent.world, steps=self.run.agent.sampling_steps)
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
        if state.get("phase") != 3:
            raise ModelError(f"{state['path']}: a phase-{state.get('phase')} agent checkpoint, not phase 3")
        return state

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
        train_ids, heldout_ids = split_episodes(everything.episode_ids, self.run.train.heldout_episodes, store)
        self.train_set = WindowDataset(store, length=cfg.context, load=load, episodes=train_ids)
        heldout = WindowDataset(store, length=cfg.context, load=load, episodes=heldout_ids)
        self.heldout_ids = heldout_ids
        count = min(self.run.train.eval_windows, len(heldout))
        picks = np.unique(np.linspace(0, len(heldout) - 1, count).round().astype(int))
        items = [heldout[int(i)] for i in picks]
        self.eval_batch = {key: torch.stack([item[key] for item in items]) for key in items[0]}

    def _batches(self) -> Iterator[dict[str, torch.Tensor]]:
        batch = self.run.train.batch
        sampler = WindowSampler(self.train_set, seed=self.seed, start=self.step * batch)
        yield from DataLoader(self.train_set, batch_size=batch, sampler=sampler, num_workers=0)

    # ------------------------------------------------------------------------------------ imagination

    @torch.no_grad()
    def imagine(self, batch: dict[str, torch.Tensor], generator: torch.Generator,
                policy: PolicyHead | None = None) -> Imagined:
        """Roll the frozen world model forward from real contexts under ``policy`` (default π)."""
        agent, cfg, sampler = self.agent, self.run.agent, self.sampler
        policy = policy or agent.policy
        batch = {key: value.to(self.device) for key, value in batch.items()}
        latents = batch[LATENTS].float()  # (B, C, S_z, D_z)
        b, c, s, dz = latents.shape
        action_in, has_in = shift_actions(batch, agent.world.action_fields)
        task_B = torch.randint(len(self.tasks), (b,), generator=generator).to(self.device)
        ctx_noise = torch.randn((b, c + cfg.horizon, s, dz), generator=generator).to(self.device)
        start_noise = torch.randn((b, cfg.horizon, s, dz), generator=generator).to(self.device)
        cache = sampler.init_cache()
        # A policy blind to actions reads its own pass of the world model (actions → null embedding, own cache);
        # generation always sees the actions.
        agent_cache = cache if cfg.policy_sees_actions else sampler.init_cache()

        def observe(frames, act_in, has, noise, steps):
            """Commit frames to the generation cache (and the agent's); the agent states (B, steps, D)."""
            if agent_cache is cache:
                return agent.state(sampler.commit(cache, frames, act_in, has, noise,
                                                  agent=agent.agent_inputs(task_B, steps)).agent)
            sampler.commit(cache, frames, act_in, has, noise)
            return agent.state(sampler.commit(agent_cache, frames, act_in, torch.zeros_like(has), noise,
                                              agent=agent.agent_inputs(task_B, steps)).agent)

        h = observe(latents, action_in, has_in, ctx_noise[:, :c], c)[:, -1]  # s_0 (B, D): the last real frame
        states, actions = [h], []
        ones = torch.ones(b, 1, dtype=torch.bool, device=self.device)
        for k in range(cfg.horizon):
            a_k = policy(h, first_only=True).sample(generator)  # a_k ~ π(·|s_k)
            act_in = {name: value[:, None] for name, value in a_k.items()}
            x_next = sampler.denoise(cache, act_in, ones, start_noise[:, k:k + 1])  # (B, 1, S_z, D_z)
            h = observe(x_next, act_in, ones, ctx_noise[:, c + k:c + k + 1], 1)[:, 0]  # s_{k+1}
            states.append(h)
            actions.append(a_k)
        h_BH1D = torch.stack(states, dim=1)
        reward_BH = agent.bins.decode(agent.reward(h_BH1D[:, 1:])[..., 0, :])  # r_{k+1}, n = 0
        continue_BH = torch.sigmoid(agent.cont(h_BH1D[:, 1:])[..., 0].float())  # c_{k+1}
        action_BH = {name: torch.stack([a[name] for a in actions], dim=1) for name in actions[0]}
        return Imagined(h_BH1D, action_BH, reward_BH, continue_BH, task_B)

    # ---------------------------------------------------------------------------------------- losses

    def losses(self, traj: Imagined, update_policy: bool) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        cfg, agent = self.run.agent, self.agent
        h_BH1D = traj.h_BH1D.detach()
        with torch.no_grad():
            slow_value_BH1 = agent.value_of(h_BH1D, self.slow_value.module)  # v̄(s_0 … s_H)
            returns_BH = lambda_returns(traj.reward_BH, traj.continue_BH, slow_value_BH1, cfg.gamma, cfg.lam)  # eq. 10
            weight_BH = state_weights(traj.continue_BH)
        h_BHD = h_BH1D[:, :-1]
        value_logits = agent.value(h_BHD)[..., 0, :]  # (B, H, bins)
        value_nll_BH = agent.bins.nll(value_logits, returns_BH)  # −ln p(R^λ_k | s_k)
        value_loss = (weight_BH * value_nll_BH).sum() / weight_BH.sum()
        with torch.no_grad():
            value_BH = agent.bins.decode(value_logits)
            advantage_BH = returns_BH - value_BH  # A_k = R^λ_k − v(s_k)
        dist = agent.policy(h_BHD, first_only=True)  # π(·|s_k), (B, H)
        with torch.no_grad():
            prior = self.prior(h_BHD, first_only=True)
        log_prob_BH = dist.log_prob(traj.action_BH)
        kl_BH = dist.kl(prior)
        terms = pmpo_loss(log_prob_BH, advantage_BH, kl_BH, cfg.alpha, cfg.beta, weight_BH)  # eq. 11
        policy_loss = terms.loss if update_policy else terms.loss.detach()
        with torch.no_grad():
            w = weight_BH / weight_BH.sum()
            metrics = {
                **terms.scalars(), "value_loss": float(value_loss),
                "advantage_mean": float((w * advantage_BH).sum()), "advantage_std": float(advantage_BH.std()),
                "advantage_abs_mean": float((w * advantage_BH.abs()).sum()),
                "return_mean": float((w * returns_BH).sum()), "value_mean": float((w * value_BH).sum()),
                "imagined_reward_sum": float(traj.reward_BH.sum(1).mean()),
                "imagined_continue_mean": float(traj.continue_BH.mean()),
                "policy_entropy": float((w * dist.entropy()).sum()), "prior_entropy": float((w * prior.entropy()).sum()),
                "kl_prior": float((w * kl_BH).sum()), "policy_updated": float(update_policy),
            }
        return policy_loss, value_loss, metrics

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        generator = step_generator(self.seed, self.step, 0)
        began = time.perf_counter()
        self.agent.eval()  # the frozen parts: no dropout/normalisation state anyway, but be explicit
        traj = self.imagine(batch, generator)
        imagine_seconds = time.perf_counter() - began
        update_policy = self.step >= self.run.value_warmup
        policy_loss, value_loss, metrics = self.losses(traj, update_policy)
        clip = self.run.train.grad_clip
        self.value_opt.zero_grad(set_to_none=True)
        value_loss.backward()
        if clip > 0:
            metrics["value_grad_norm"] = float(torch.nn.utils.clip_grad_norm_(self.agent.value.parameters(), clip))
        self.value_opt.step()
        if update_policy:
            self.policy_opt.zero_grad(set_to_none=True)
            policy_loss.backward()
            if clip > 0:
                metrics["policy_grad_norm"] = float(torch.nn.utils.clip_grad_norm_(self.agent.policy.parameters(), clip))
            self.policy_opt.step()
        self.slow_value.update(self.agent.value)
        self.step += 1
        metrics["imagine_seconds"] = imagine_seconds
        return metrics

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Imagined discounted return on held-out contexts under π and under π_prior (same noise)."""
        gamma = self.run.agent.gamma
        result = {}
        for name, policy in (("policy", self.agent.policy), ("prior", self.prior)):
            traj = self.imagine(self.eval_batch, torch.Generator().manual_seed(self.seed + 7), policy)
            alive = state_weights(traj.continue_BH)
            discount = gamma ** torch.arange(traj.reward_BH.shape[1], device=self.device, dtype=torch.float32)
            result[f"imagined_return_{name}"] = float((alive * traj.continue_BH * traj.reward_BH * discount)
                                                      .sum(1).mean())
        return result

    def checkpoint(self) -> Path:
        config = asdict(self.run)
        description = {**self.agent.describe(), "agent": asdict(self.run.agent)}
        state = {**{k: v for k, v in self.base.items() if k in ("tokenizer", "env", "wm", "latents")},
                 "kind": AGENT, "phase": 3, "version": 1, "step": self.step, "seed": self.seed, "config": config,
                 "agent": description, "model": self.agent.state_dict(),
                 "model_hash": model_hash(self.agent.state_dict(), config),
                 "prior_policy": self.prior.state_dict(), "slow_value": self.slow_value.module.state_dict(),
                 "policy_optimizer": self.policy_opt.state_dict(), "value_optimizer": self.value_opt.state_dict(),
                 "phase2": self.base.get("phase2", self.base["path"]) if self.resume_state is not None
                 else self.base["path"],
                 "data": {"store": self.options.data, "heldout": self.heldout_ids}}
        path = save_checkpoint(self.out, self.step, state, keep=self.run.train.keep_checkpoints)
        self.report("checkpoint", {"path": str(path), "step": self.step})
        return path

    def fit(self) -> dict:
        train, summary = self.run.train, {}
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "config.yaml").write_text(yaml.safe_dump(asdict(self.run), sort_keys=False))
        self.report("start", {"step": self.step, "steps": self.steps, "device": str(self.device),
                              "trainable": sum(p.numel() for p in self.agent.parameters() if p.requires_grad),
                              "train_windows": len(self.train_set), "heldout_episodes": len(self.heldout_ids),
                              "tasks": self.agent.tasks, "horizon": self.run.agent.horizon})
        last_saved = self.step if self.resume_state is not None else None
        began = time.perf_counter()
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


def train_phase3(options: Phase3TrainOptions, report: Report | None = None) -> dict:
    return Phase3Trainer(options, report).fit()
