"""The one training loop every stage runs (tokenizer, phase 1, 2, 3): resume, data, fit, evaluation cadence,
checkpoints, Ctrl-C, logging, DDP / FSDP.

A stage subclasses ``Trainer`` and fills in what differs: ``read_store`` (what the store must hold),
``configure`` (its run config, new or resumed), ``build`` (data, models, losses), ``build_optimizers``,
``train_step``, ``evaluate``, ``checkpoint_state`` / ``load_state`` (what a checkpoint holds beyond the common
keys; models and optimizers go through ``model_state`` / ``optimizer_state`` and ``load_model`` /
``load_optimizer``) and ``describe`` (what the start event reports).

Resume is bit-exact because nothing random carries hidden state from one step to the next: the n-th training
window depends only on (seed, n) (``WindowSampler``), the random draws of step s only on (seed, s)
(``step_generator``), and the checkpoint holds models, optimizers, loss normalisers and the step. Ctrl-C
(SIGINT) is turned into a stop request checked between steps (every rank stops at the same step), so the
checkpoint written on the way out is always at a step boundary.

Under ``torchrun`` (DDP) rank r of w trains on windows r, r + w, … of each global batch, draws the random numbers
of the whole global batch and keeps its rows (``shards.py``), normalises its losses by the global batch's sizes
and averages gradients over ranks (DDP for the tokenizer and phase 1, whose step calls the model once;
``Distributed.average_gradients`` for phases 2 and 3), so its losses and updates are those of a one-process run
at the same global batch. The logged training metrics are averaged over ranks.

With ``train.fsdp`` the ranks shard the model instead of each holding a copy (``fsdp.py``: FSDP2, for presets
that do not fit one device): the same rows, draws and losses, gradients averaged by FSDP's reduce-scatter,
checkpoints gathered into the one-process format. In one process ``train.fsdp`` is a no-op (the start event
carries a note): there is nothing to shard, and a run or checkpoint made under FSDP continues there unchanged.
"""

from __future__ import annotations

import gc
import logging
import math
import signal
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import yaml
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from dreamer_data import WindowDataset
from dreamer_data.loaders import EpisodeSplit, WindowSampler

from ..checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from ..configs import TrainConfig
from ..errors import ModelError
from ..nn.transformer import use_bf16
from ..shards import Shard
from .distributed import Distributed, init_distributed, set_threads
from .fsdp import full_model_state, full_optimizer_state, load_model_state, load_optimizer_state, shard
from .logging import RunLog
from .precision import autocasts_bf16, precision_note
from .threads import AUTO, ThreadChooser

Report = Callable[[str, dict], None]


@dataclass(kw_only=True)
class TrainOptions:
    """The flags every trainer shares (a stage's options add its own)."""

    data: str
    out: str
    preset: str = "tiny"
    steps: int | None = None  # total steps to reach (default: the preset's train.steps)
    config: str | None = None
    sets: list[str] = field(default_factory=list)
    resume: bool = False
    seed: int = 0
    device: str = "auto"


def learning_rate(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then constant or a cosine decay to lr·lr_min_ratio over ``decay_steps``."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    if cfg.decay_steps <= 0:
        return cfg.lr
    progress = min(1.0, (step - cfg.warmup) / cfg.decay_steps)
    return cfg.lr * (cfg.lr_min_ratio + (1 - cfg.lr_min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def step_generator(seed: int, step: int) -> torch.Generator:
    """The random stream of one training step (the global batch's draws): a pure function of (seed, step)."""
    state = np.random.SeedSequence([seed, step, 0]).generate_state(2, dtype=np.uint64)
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


class Trainer:
    """One stage's training run in ``options.out``; ``fit`` trains to ``steps`` and returns the last metrics."""

    kind: str  # the checkpoint kind (``checkpoint.TOKENIZER``, …)
    phase: int | None = None  # agent checkpoints: 2 or 3
    model: torch.nn.Module  # what trains (DDP wraps it as ``net``); its parameters are counted at the start
    wrap_ddp = True  # False: the step calls the model several times, ``update`` averages the gradients instead
    fsdp = False  # train.fsdp under torchrun: ``model`` is sharded in place (``net`` is ``model``)

    def __init__(self, options: TrainOptions, report: Report | None = None):
        self.options = options
        self.report = report or (lambda event, info: None)
        self.dist: Distributed = init_distributed(options.device)
        self.device = self.dist.device
        self.shard = Shard(self.dist.rank, self.dist.world_size)
        self.out = Path(options.out)
        self.read_store()
        self.resume_state = self._resume_state()
        self.seed = int(self.resume_state["seed"]) if self.resume_state is not None else options.seed
        self.run = self.configure()
        self.steps = options.steps if options.steps is not None else self.run.train.steps
        if self.steps < 0:
            raise ModelError(f"--steps must be >= 0, got {self.steps}")
        if self.run.train.batch % self.dist.world_size:
            raise ModelError(f"train.batch {self.run.train.batch} is not divisible by {self.dist.world_size} processes")
        self.local_batch = self.run.train.batch // self.dist.world_size
        self.fsdp = self.run.train.fsdp and self.dist.enabled
        set_threads(self.run.train.threads)
        self.build()
        self.bf16 = autocasts_bf16(self.device, self.run.train)
        use_bf16(self.model, self.bf16)
        self.net = self.distribute(self.model)
        self.build_optimizers()  # after sharding: FSDP's parameters are DTensors
        self.step = 0
        if self.resume_state is not None:
            self.load_state(self.resume_state)
            self.step = int(self.resume_state["step"])
        self.log = RunLog(self.out, enabled=self.dist.is_main)

    # ---------------------------------------------------------------------------------------- stage hooks

    def read_store(self) -> None:
        """Check what the store must hold before anything else (default: nothing here)."""

    def configure(self) -> Any:
        """The run config: the resumed run's, or the preset with the options' overrides."""
        raise NotImplementedError

    def build(self) -> None:
        """Data, models and losses (``self.run``, ``self.seed`` are set)."""
        raise NotImplementedError

    def build_optimizers(self) -> None:
        """The optimizers, over ``self.model``'s parameters as ``distribute`` left them: by default one AdamW
        over all of them (weight decay on matrices only, ``parameter_groups``); phases 2 and 3 override it."""
        train = self.run.train
        self.trained = list(self.model.parameters())
        self.optimizer = torch.optim.AdamW(parameter_groups(self.model, train.weight_decay), lr=train.lr,
                                           betas=(train.beta1, train.beta2), eps=1e-8)

    def fsdp_roots(self) -> list[torch.nn.Module]:
        """The modules a training step calls (FSDP shards each as a unit after the transformer blocks)."""
        return [self.model]

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One optimisation step on this rank's part of the batch; its metrics."""
        raise NotImplementedError

    def evaluate(self) -> dict[str, float]:
        raise NotImplementedError

    def checkpoint_state(self) -> dict[str, Any]:
        """What this stage's checkpoint holds besides kind, phase, version, step, seed, config and data."""
        raise NotImplementedError

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore models, optimizers and normalisers from a checkpoint of this stage."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """Stage-specific facts for the ``start`` event."""
        return {}

    @property
    def frames_per_step(self) -> int:
        """Frames one step trains on (for the logged throughput)."""
        raise NotImplementedError

    # ---------------------------------------------------------------------------------------- shared parts

    def _resume_state(self) -> dict | None:
        existing = list_checkpoints(self.out)
        if not self.options.resume:
            if existing:
                raise ModelError(f"{self.out}: run already holds checkpoints (newest {existing[-1].name}); pass "
                                 f"--resume to continue it or choose another --out")
            return None
        if not existing:
            raise ModelError(f"{self.out}: --resume but the run has no checkpoint ({self.out}/checkpoints/step_*.pt)")
        state = load_checkpoint(existing[-1], self.kind)
        if self.phase is not None and state.get("phase") != self.phase:
            raise ModelError(f"{state['path']}: a phase-{state.get('phase')} {self.kind} checkpoint, not "
                             f"phase {self.phase}")
        return state

    def split_data(self, load: list[str] | tuple[str, ...] | str, context: int, everything: WindowDataset | None = None,
                   heldout_load: list[str] | None = None) -> None:
        """Training and held-out windows of ``context`` rows (a hash split of the episodes), and the fixed
        held-out batch every evaluation reads (``eval_batch``: up to ``train.eval_windows`` windows of the
        fields ``heldout_load``, default ``load``)."""
        store, train = self.options.data, self.run.train
        everything = everything or WindowDataset(store, length=context, load=load)
        train_ids, heldout_ids = split_episodes(everything.episode_ids, train.heldout_episodes, store)
        self.train_set = WindowDataset(store, length=context, load=load, episodes=train_ids)
        heldout = WindowDataset(store, length=context, load=heldout_load or load, episodes=heldout_ids)
        self.heldout_ids = heldout_ids
        picks = np.unique(np.linspace(0, len(heldout) - 1, min(train.eval_windows, len(heldout))).round().astype(int))
        items = [heldout[int(i)] for i in picks]
        self.eval_batch = {key: torch.stack([item[key] for item in items]) for key in items[0]}

    def batches(self) -> Iterator[dict[str, torch.Tensor]]:
        """This rank's training windows from step ``self.step`` on (window n depends only on (seed, n))."""
        sampler = WindowSampler(self.train_set, seed=self.seed, start=self.step * self.local_batch,
                                rank=self.dist.rank, world_size=self.dist.world_size,
                                start_share=self.run.train.start_share)
        workers = self.run.train.workers
        yield from DataLoader(self.train_set, batch_size=self.local_batch, sampler=sampler, num_workers=workers,
                              multiprocessing_context=self.train_set.multiprocessing_context if workers else None,
                              persistent_workers=workers > 0, pin_memory=self.device.type == "cuda")

    def distribute(self, module: torch.nn.Module) -> torch.nn.Module:
        """``module`` as the training step calls it: sharded in place (FSDP) or DDP-wrapped across ranks,
        compiled when asked (``train.compile``, CPU or CUDA)."""
        net = module
        if self.fsdp:
            shard(module, self.fsdp_roots(), self.device)
        elif self.dist.enabled and self.wrap_ddp:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            net = DistributedDataParallel(module, device_ids=device_ids)
        if self.run.train.compile:
            if self.device.type == "cpu":  # the C++ builder's "No CUDA runtime is found" line says nothing on a CPU
                logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
            net = torch.compile(net)
        return net

    def schedule(self, optimizer: torch.optim.Optimizer) -> None:
        """Set this step's learning rate (``learning_rate``) on every group of ``optimizer``."""
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(self.step, self.run.train)

    def update(self, optimizer: torch.optim.Optimizer, loss: torch.Tensor, parameters: list[torch.nn.Parameter],
               metrics: dict[str, float], norm_key: str = "grad_norm") -> None:
        """zero_grad, backward, (average over ranks), clip to ``train.grad_clip`` (its norm logged as
        ``norm_key``), step. ``parameters``: the optimizer's, listed before any forward (between a root's forward
        and backward FSDP registers its gathered parameters on the module, not the sharded ones that step)."""
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if not (self.wrap_ddp or self.fsdp):
            self.dist.average_gradients(parameters)
        if self.run.train.grad_clip > 0:
            metrics[norm_key] = float(torch.nn.utils.clip_grad_norm_(parameters, self.run.train.grad_clip))
        optimizer.step()

    def model_state(self, module: torch.nn.Module) -> dict[str, torch.Tensor]:
        """``module.state_dict()``; under FSDP gathered whole onto rank 0 (every rank calls it, the others get {})."""
        return full_model_state(module) if self.fsdp else module.state_dict()

    def optimizer_state(self, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        """``optimizer.state_dict()``, gathered whole under FSDP as ``model_state``."""
        return full_optimizer_state(optimizer) if self.fsdp else optimizer.state_dict()

    def load_model(self, module: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
        """``module.load_state_dict(state)``; under FSDP each rank keeps its shards of the full ``state``."""
        if self.fsdp:
            load_model_state(module, state)
        else:
            module.load_state_dict(state)

    def load_optimizer(self, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
        """``optimizer.load_state_dict(state)``, sharded under FSDP as ``load_model``."""
        if self.fsdp:
            load_optimizer_state(optimizer, state)
        else:
            optimizer.load_state_dict(state)

    def checkpoint(self) -> Path | None:
        """Save the run at this step (main process; under FSDP every rank first gathers its shards onto it); keep
        the newest ``train.keep_checkpoints``."""
        if not (self.dist.is_main or self.fsdp):
            return None
        extra = self.checkpoint_state()
        if not self.dist.is_main:
            return None
        state = {"kind": self.kind, **({"phase": self.phase} if self.phase is not None else {}), "version": 1,
                 "step": self.step, "seed": self.seed, "config": asdict(self.run), **extra,
                 "data": {"store": self.options.data, "heldout": self.heldout_ids}}
        path = save_checkpoint(self.out, self.step, state, keep=self.run.train.keep_checkpoints)
        self.report("checkpoint", {"path": str(path), "step": self.step})
        return path

    # ---------------------------------------------------------------------------------------- the loop

    def fit(self) -> dict:
        train, summary = self.run.train, {}
        if self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.yaml").write_text(yaml.safe_dump(asdict(self.run), sort_keys=False))
        self.report("start", {"step": self.step, "steps": self.steps, "device": str(self.device),
                              "resumed": self.resume_state is not None, "world_size": self.dist.world_size,
                              "fsdp": self.fsdp, "notes": self._notes(), "bf16": self.bf16,
                              "compile": self.run.train.compile,
                              "threads": "auto" if train.threads == AUTO else torch.get_num_threads(),
                              "preset": self.run.preset,
                              "parameters": sum(p.numel() for p in self.model.parameters()),
                              "trainable": sum(p.numel() for p in self.model.parameters() if p.requires_grad),
                              "train_windows": len(self.train_set), "heldout_episodes": len(self.heldout_ids),
                              **self.describe()})
        last_saved = self.step if self.resume_state is not None else None
        chooser = ThreadChooser() if train.threads == AUTO and self.device.type == "cpu" else None
        began = window_start = time.perf_counter()
        window_steps = 0
        self.model.train()
        try:
            with stop_on_sigint() as interrupt:
                batches = self.batches()
                while self.step < self.steps:
                    batch = next(batches)
                    if chooser is None:
                        metrics = self.train_step(batch)
                    else:
                        metrics = chooser.timed(lambda: self.train_step(batch))
                        metrics["threads"] = chooser.threads
                    self.step += 1
                    window_steps += 1
                    if self.step % train.log_every == 0 or self.step == self.steps:
                        metrics = self.dist.mean_metrics(metrics)
                        now = time.perf_counter()
                        metrics["frames_per_s"] = window_steps * self.frames_per_step / max(now - window_start, 1e-9)
                        metrics["seconds"] = now - began
                        window_start, window_steps = now, 0
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

    def _notes(self) -> list[str]:
        """Settings asked for that this run cannot honour, each a line the CLI prints before training."""
        notes = []
        if self.run.train.fsdp and not self.dist.enabled:
            notes.append("train.fsdp: one process, nothing to shard; training unsharded (FSDP shards over the "
                         "ranks of torchrun --nproc_per_node N)")
        if (note := precision_note(self.device, self.run.train)) is not None:
            notes.append(note)
        return notes

    def _stop_requested(self, interrupt: dict) -> bool:
        """Every rank stops at the same step when any rank got Ctrl-C."""
        flag = torch.tensor([1.0 if interrupt["stop"] else 0.0])
        return bool(self.dist.mean(flag) > 0) if self.dist.enabled else interrupt["stop"]

    def close(self) -> None:
        """Release the process group; the trainer is spent. Under FSDP it first drops and collects everything it
        built: sharded modules, optimizers and their DTensors hold the group in reference cycles, and when those are
        left to the collection at interpreter exit, freeing gloo's work objects then aborts the process (SIGABRT,
        'terminate called without an active exception')."""
        dist = self.dist
        if self.fsdp:
            vars(self).clear()
            gc.collect()
        dist.close()

    @classmethod
    def train(cls, options: TrainOptions, report: Report | None = None) -> dict:
        """Build the stage's trainer, fit it, release its process group; the last metrics."""
        trainer = cls(options, report)
        try:
            return trainer.fit()
        finally:
            trainer.close()
