"""``dreamer-train quickstart --out DIR``: the whole pipeline on data it makes itself (no download).

collect (noisy-scripted) → ingest → tokenizer → tokenize → phase 1 → rollout GIF → phase 2 → phase 3 →
evaluate the behaviour policy, uniform random, BC (phase 2) and Dreamer (phase 3) in the real environment on the
same seeds, the agents both sampling their policy and greedily (its mode) → ``DIR/summary.json``.

A thin composition: every stage calls the function (or trainer class) its own command calls —
``collect``, ``ingest``, ``TokenizerTrainer``, ``tokenize_store``, ``Phase1Trainer``, ``rollout_video``,
``Phase2Trainer``, ``Phase3Trainer``, ``Evaluation`` — with settings from one plan.

Budget. ``--minutes M`` sets the plan: how many episodes are collected and evaluated, the episode
time limit, and the wall-clock budget of each training stage. A training stage gets its share of
the time left when it starts (so slow data stages shrink training instead of overrunning M) and
stops at the first logged step past its deadline, where the trainer evaluates and checkpoints as at
a normal end; a step cap bounds it on fast machines.

Resume. ``DIR/quickstart.json`` records the settings and, per stage, what it was built from and
what it produced. A rerun skips every stage whose artefact is there and was built from the current
upstream artefacts; an interrupted training stage resumes from its checkpoint (the trainers turn
Ctrl-C into a checkpoint at a step boundary) with the rest of its budget; collect, ingest and
tokenize resume episode by episode on their own. A stage whose upstream changed is rebuilt from
scratch, and so is everything after it.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import yaml

from dreamer_data.atomic import replacing, write_bytes_atomic
from dreamer_data.collect.collector import CollectConfig, collect
from dreamer_data.collect.minatar_env import GAMES
from dreamer_data.collect.raw import EPISODE_DIR, episode_name
from dreamer_data.errors import DreamerDataError
from dreamer_data.ingest import IngestPlan, ingest
from dreamer_data.sources import ReadOptions, source_class
from dreamer_data.store.manifest import load_manifest

from .errors import ModelError
from .checkpoint import list_checkpoints
from .eval.ranking import IMAGINED, imagination_ranking
from .eval.report import paired_difference
from .train.threads import AUTO

ENVS = ("minatar", "crafter")
DEFAULT_GAME = "breakout"
DEFAULT_MINUTES = 15.0
POLICY = "noisy-scripted"  # the behaviour policy that records the data (and the first row of the table)
STATE_FILE = "quickstart.json"
SUMMARY_FILE = "summary.json"
STAGES = ("collect", "ingest", "tokenizer", "tokenize", "phase1", "rollout", "phase2", "phase3",
          "eval_behaviour", "eval_random", "eval_bc", "eval_dreamer", "eval_bc_greedy", "eval_dreamer_greedy")
TRAINED = ("tokenizer", "phase1", "phase2", "phase3")
LABELS = {"collect": "collect", "ingest": "ingest", "tokenizer": "tokenizer", "tokenize": "tokenize",
          "phase1": "phase 1 (world model)", "rollout": "rollout GIF", "phase2": "phase 2 (BC + reward)",
          "phase3": "phase 3 (imagination RL)", "eval_behaviour": "eval behaviour", "eval_random": "eval random",
          "eval_bc": "eval BC", "eval_dreamer": "eval Dreamer", "eval_bc_greedy": "eval BC, greedy",
          "eval_dreamer_greedy": "eval Dreamer, greedy"}
# The rows of the final table. The agents play twice: sampling their policy (the paper's evaluation) and greedily. The
# behaviour policy takes a random action one step in ten; a sampled clone copies that noise, the mode drops it.
ROWS = (("behaviour", "eval_behaviour"), ("random", "eval_random"), ("bc", "eval_bc"), ("dreamer", "eval_dreamer"),
        ("bc_greedy", "eval_bc_greedy"), ("dreamer_greedy", "eval_dreamer_greedy"))
# Dreamer beats BC when its paired return difference over the same evaluation seeds exceeds this many standard errors.
BEAT_Z = 2.0

# Shares of the training time, and the step caps that bound a stage on a fast machine. Until the tokenizer
# draws MinAtar's one-cell ball and paddle no later stage can see them: with focal weighting it does by
# ~4,000 steps (held-out ball recall 0.98 at 3,500, 0.99 at 5,000), so a quarter of the time is enough.
# The world model needs its share too: at the old 15 % (1,075 steps) its 1-step latent error was worse than
# copying the last frame (0.109 vs 0.095) and its imagined frames lost the ball; resumed to 2,000 / 3,000
# steps it reached 0.065 / 0.042. BC needs steps (breakout BC checkpoints at 1,000 / 2,000 / 3,000 steps
# returned 0.58 / 0.54 / 0.90 in the real game, random 0.42), so phase 2 keeps its 40 %.
SHARES = {"tokenizer": 0.25, "phase1": 0.25, "phase2": 0.4, "phase3": 0.1}
CAPS = {"tokenizer": 20_000, "phase1": 10_000, "phase2": 5_000, "phase3": 2_000}
MIN_STAGE_SECONDS = 5.0
# torch.compile on a CPU, per stage: (steady speed-up, seconds of compiling), float32 on one thread. The tokenizer's
# as measured inside a 15-minute quickstart (its whole loop: data, logging and evaluations are not compiled; the
# step alone gained 1.67x in benchmarks/bench_precision.py), phase 1's for the step alone (BENCHMARKS.md: precision).
# A stage compiles when its budget is long enough for the compiled run to make 10 % more steps than the eager one:
# the tokenizer from ~4 minutes, phase 1 from ~4.5 (so at --minutes 15 neither, at 60 both).
COMPILE = {"tokenizer": (1.35, 45.0), "phase1": (1.26, 33.0)}
COMPILE_MARGIN = 1.1

MINATAR_SIZE = 20  # pixels per side of MinAtar frames: 2 per grid cell (the quickstart preset's tokenizer)

PRESET = "quickstart"  # every stage's sizes (presets.py: what each was measured against)


def compiles(stage: str, budget: float, cpu: bool) -> bool:
    """Whether a CPU training stage of ``budget`` seconds makes more steps compiled than eager (``COMPILE``); only
    where a C++ compiler is installed (torch.compile's CPU backend generates C++)."""
    if not cpu or stage not in COMPILE or not (shutil.which(os.environ.get("CXX", "g++")) or shutil.which("clang++")):
        return False
    speedup, seconds = COMPILE[stage]
    return (budget - seconds) * speedup > COMPILE_MARGIN * budget


def configs(env: str, cpu: bool) -> dict[str, dict]:
    """What each trainer gets on top of the ``quickstart`` preset; written to DIR/configs/. The preset draws
    MinAtar's 10x10 grid at 2 pixels per cell with 4-pixel patches (every patch exactly 2x2 cells); Crafter keeps
    its native 64x64 with 8-pixel patches. On a CPU each trainer times its own steps to choose its intra-op thread
    count (``train.threads: -1``, train/threads.py): a second thread is 1.2-1.6x faster on an idle 2-core machine
    and several times slower when another process holds the second core."""
    out: dict[str, dict] = {stage: {"train": {"threads": AUTO}} if cpu else {} for stage in TRAINED}
    if env == "crafter":
        out["tokenizer"]["tokenizer"] = {"height": 64, "width": 64, "patch": 8}
    return out


@dataclass(frozen=True)
class QuickstartOptions:
    out: str
    env: str = "minatar"
    game: str | None = None  # MinAtar game (default breakout)
    minutes: float = DEFAULT_MINUTES
    device: str = "auto"  # auto: cuda when present, else cpu
    seed: int = 0

    def checked(self) -> "QuickstartOptions":
        if self.env not in ENVS:
            raise ModelError(f"--env must be one of {', '.join(ENVS)}, got {self.env!r}")
        game = self.game
        if self.env == "minatar":
            game = game or DEFAULT_GAME
            if game not in GAMES:
                raise ModelError(f"--game must be one of {', '.join(GAMES)}, got {game!r}")
        elif game is not None:
            raise ModelError("--game is for --env minatar only")
        if not (math.isfinite(self.minutes) and self.minutes > 0):
            raise ModelError(f"--minutes must be a positive number, got {self.minutes}")
        device = self.device
        if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
            raise ModelError(f"--device must be cpu, cuda or auto, got {device!r}")
        if device != "cpu":
            import torch

            if device == "auto":
                device = "cuda" if torch.cuda.is_available() else "cpu"
            elif not torch.cuda.is_available():
                raise ModelError(f"--device {device}: CUDA is not available on this machine (use --device cpu)")
        if self.seed < 0:
            raise ModelError(f"--seed must be >= 0, got {self.seed}")
        return QuickstartOptions(self.out, self.env, game, float(self.minutes), device, self.seed)

    def settings(self) -> dict:
        """What a rerun into the same DIR must repeat (the device may change)."""
        return {"env": self.env, "game": self.game, "minutes": self.minutes, "seed": self.seed}


@dataclass(frozen=True)
class Plan:
    """Sizes derived from ``--minutes``."""

    seconds: float  # the overall budget
    episodes: int  # collected with the behaviour policy
    max_steps: int  # episode time limit, when collecting and when evaluating
    eval_episodes: int  # per policy, the same seeds for all three
    resolution: tuple[int, int] | None
    collect_workers: int
    reserve: float  # part of the budget kept for the three evaluations after training
    rollout_context: int = 8
    rollout_frames: int = 32


def make_plan(options: QuickstartOptions) -> Plan:
    m = options.minutes
    clip = lambda v, lo, hi: int(min(hi, max(lo, round(v))))  # noqa: E731
    if options.env == "minatar":
        return Plan(seconds=60.0 * m, episodes=clip(4 * m, 6, 1000), max_steps=clip(100 * m, 100, 1000),
                    eval_episodes=clip(100 * m / 15, 4, 100), resolution=(MINATAR_SIZE, MINATAR_SIZE), collect_workers=1, reserve=0.12)
    # A Crafter step costs ~100x a MinAtar one (world simulation, 64x64 frames): fewer episodes, more time to play
    return Plan(seconds=60.0 * m, episodes=clip(2 * m, 4, 500), max_steps=clip(100 * m, 100, 1000),
                eval_episodes=clip(2 * m, 4, 100), resolution=None, collect_workers=min(2, os.cpu_count() or 1),
                reserve=0.3)


Emit = Callable[[str, str, dict], None]  # (stage, event, info): events plan, skip, start, update, note, done


@dataclass
class Paths:
    root: Path

    def __post_init__(self):
        r = self.root
        self.raw, self.store, self.configs = r / "raw", r / "store", r / "configs"
        self.runs = {name: r / name for name in TRAINED}
        self.gif = r / "rollout.gif"
        self.eval = {row: r / "eval" / row for row, _ in ROWS}
        self.comparison = r / "eval" / "comparison.png"
        self.summary, self.state = r / SUMMARY_FILE, r / STATE_FILE


def _write_json(path: Path, data: dict) -> None:
    """Atomic (temp + rename): a Ctrl-C never leaves a torn state or summary file."""
    write_bytes_atomic(path, (json.dumps(data, indent=1) + "\n").encode())


def _newest(run: Path) -> str | None:
    found = list_checkpoints(run)
    return str(found[-1]) if found else None


class BudgetClock:
    """Stops a trainer at the first logged step past its deadline: ``trainer.steps = step`` makes the
    trainer's loop end there exactly as at a planned end (held-out eval, samples, checkpoint)."""

    def __init__(self, seconds: float, forward: Callable[[str, dict], None]):
        self.deadline = time.monotonic() + seconds
        self.forward = forward
        self.trainer = None

    def __call__(self, event: str, info: dict) -> None:
        if event == "step" and self.trainer is not None and time.monotonic() >= self.deadline:
            self.trainer.steps = min(self.trainer.steps, int(info["step"]))
        self.forward(event, info)


class Quickstart:
    def __init__(self, options: QuickstartOptions, emit: Emit | None = None):
        self.options = options.checked()
        self.plan = make_plan(self.options)
        self.paths = Paths(Path(self.options.out))
        self.emit = emit or (lambda stage, event, info: None)
        self.cpu = self.options.device == "cpu"
        self.state = self._load_state()

    # ------------------------------------------------------------------------------------------ state

    def _load_state(self) -> dict:
        root, settings = self.paths.root, self.options.settings()
        if root.exists() and not root.is_dir():
            raise ModelError(f"{root}: exists and is not a folder")
        if self.paths.state.exists():
            try:
                state = json.loads(self.paths.state.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise ModelError(f"{self.paths.state}: unreadable quickstart state; choose another --out") from None
            if state.get("settings") != settings:
                was = " ".join(f"--{k} {v}" for k, v in (state.get("settings") or {}).items() if v is not None)
                raise ModelError(f"{root}: holds a quickstart started with other settings ({was}); rerun with "
                                 f"those to resume, or choose another --out")
            return state
        if root.is_dir() and any(root.iterdir()):
            raise ModelError(f"{root}: folder is not empty and holds no {STATE_FILE}; choose a new or empty --out")
        root.mkdir(parents=True, exist_ok=True)
        state = {"settings": settings, "plan": asdict(self.plan), "stages": {}}
        _write_json(self.paths.state, state)
        return state

    def _save(self) -> None:
        _write_json(self.paths.state, self.state)

    def _record(self, stage: str) -> dict:
        return self.state["stages"].setdefault(stage, {})

    def spent(self, before: str | None = None) -> float:
        """Seconds spent in stages (those before ``before`` only, when given), over every run into this DIR."""
        names = STAGES[:STAGES.index(before)] if before else STAGES
        return sum(self.state["stages"].get(name, {}).get("seconds", 0.0) for name in names)

    # ------------------------------------------------------------------------------------------ run

    def run(self) -> dict:
        self.emit("", "plan", {"stages": [(s, LABELS[s]) for s in STAGES], "plan": asdict(self.plan),
                               "settings": self.options.settings(), "out": str(self.paths.root)})
        began = time.monotonic()
        for stage in STAGES:
            inputs = self._inputs(stage)
            record = self.state["stages"].get(stage, {})
            if record.get("done") and record.get("inputs") == inputs and self._present(stage):
                self.emit(stage, "skip", {"detail": record.get("detail", ""), "seconds": record.get("seconds", 0.0)})
                continue
            if record.get("done") or record.get("inputs") != inputs:  # stale, or built from something else:
                self._clear(stage)  # start this stage over (collect, ingest, tokenize resume on their own)
            record = self._record(stage)
            record.update(inputs=inputs, done=False)
            self._save()
            started = time.monotonic()
            try:
                detail = getattr(self, f"_{stage}")(record)
            finally:
                record["seconds"] = record.get("seconds", 0.0) + time.monotonic() - started
                self._save()
            record.update(done=True, detail=detail, outputs=self._outputs(stage))
            self._save()
            self.emit(stage, "done", {"detail": detail, "seconds": record["seconds"]})
        summary = self._summary(time.monotonic() - began)
        _write_json(self.paths.summary, summary)
        return summary

    def _inputs(self, stage: str) -> dict:
        """What a stage is built from: if this changed since it was built, it is rebuilt."""
        stages = self.state["stages"]
        upstream = {"collect": None, "ingest": "collect", "tokenizer": "ingest", "tokenize": "tokenizer",
                    "phase1": "tokenize", "rollout": "phase1", "phase2": "phase1", "phase3": "phase2",
                    "eval_behaviour": "ingest", "eval_random": "ingest", "eval_bc": "phase2",
                    "eval_dreamer": "phase3", "eval_bc_greedy": "phase2", "eval_dreamer_greedy": "phase3"}[stage]
        inputs = {"plan": asdict(self.plan)} if stage == "collect" else {}
        if upstream:
            inputs["from"] = (stages.get(upstream) or {}).get("outputs")
        return json.loads(json.dumps(inputs))  # as recorded in the state file (tuples → lists)

    def _outputs(self, stage: str) -> dict:
        p = self.paths
        if stage == "collect":
            return {"raw": str(p.raw), "episodes": sum((p.raw / EPISODE_DIR / episode_name(i)).exists()
                                                       for i in range(self.plan.episodes))}
        if stage == "ingest":
            totals = load_manifest(str(p.store))["totals"]
            return {"store": str(p.store), "episodes": totals["episodes"], "frames": totals["frames"]}
        if stage in TRAINED:
            newest = _newest(p.runs[stage])
            return {"checkpoint": newest, "mtime": Path(newest).stat().st_mtime if newest else None}
        if stage == "tokenize":
            return {"latents": (load_manifest(str(p.store)).get("latents") or {}).get("checkpoint_hash")}
        if stage == "rollout":
            return {"gif": str(p.gif), "bytes": p.gif.stat().st_size}
        row = stage.removeprefix("eval_")
        report = p.eval[row] / "report.json"
        return {"report": str(report), "mtime": report.stat().st_mtime}

    def _present(self, stage: str) -> bool:
        """The stage's recorded artefact is still on disk, unchanged."""
        outputs = self.state["stages"][stage].get("outputs") or {}
        try:
            return outputs == self._outputs(stage) and (stage not in TRAINED or Path(outputs["checkpoint"]).is_file())
        except (OSError, KeyError, TypeError, ValueError, DreamerDataError):
            return False

    def _clear(self, stage: str) -> None:
        """Remove what an earlier run of ``stage`` built from other inputs (collect/ingest resume instead)."""
        p = self.paths
        targets = {"rollout": [p.gif], **{name: [p.runs[name]] for name in TRAINED},
                   **{name: [p.eval[row]] for row, name in ROWS}}.get(stage, [])
        for target in targets:
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
        self.state["stages"].pop(stage, None)

    # ------------------------------------------------------------------------------------------ stages

    def _collect(self, record: dict) -> str:
        o, plan = self.options, self.plan
        config = CollectConfig(env=o.env, policy=POLICY, seed=o.seed, game=o.game, max_steps=plan.max_steps)
        self.emit("collect", "start", {"total": plan.episodes, "unit": "episodes"})
        report = collect(config, self.paths.raw, plan.episodes, plan.collect_workers,
                         progress=lambda done, steps: self.emit("collect", "update", {
                             "completed": done, "detail": f"{steps:,} steps"}))
        missing = [i for i in range(plan.episodes) if not (self.paths.raw / EPISODE_DIR / episode_name(i)).exists()]
        if missing:
            raise ModelError(f"{self.paths.raw}: episodes {missing[:5]} were not written")
        return f"{plan.episodes} {POLICY} episodes ({report.steps:,} new steps)"

    def _ingest(self, record: dict) -> str:
        options = ReadOptions(resolution=self.plan.resolution)
        source = source_class(self.options.env)(str(self.paths.raw), options)
        self.emit("ingest", "start", {"total": self.plan.episodes, "unit": "episodes"})
        if self._stored_episodes() == self.plan.episodes:  # complete already (its raw folder was re-collected)
            return f"{load_manifest(str(self.paths.store))['totals']['frames']:,} frames at {self._resolution()}"
        report = ingest(source, str(self.paths.store), IngestPlan(workers=0),
                        progress=lambda e: self.emit("ingest", "update", {
                            "completed": e.done, "total": e.total, "detail": f"{e.frames:,} frames"}))
        if report.failed:
            first = report.failed[0]
            raise ModelError(f"{self.paths.store}: {len(report.failed)} episode(s) failed to ingest, e.g. "
                             f"{first.get('file')}: {first.get('reason')}")
        frames = load_manifest(str(self.paths.store))["totals"]["frames"]
        return f"{frames:,} frames at {self._resolution()}"

    def _stored_episodes(self) -> int:
        try:
            return len(load_manifest(str(self.paths.store))["episodes"])
        except (OSError, ValueError, KeyError, DreamerDataError):
            return 0

    def _resolution(self) -> str:
        observation = load_manifest(str(self.paths.store)).get("observation", {})
        return f"{observation.get('height')}x{observation.get('width')}"

    def _config_file(self, stage: str) -> str:
        self.paths.configs.mkdir(exist_ok=True)
        path = self.paths.configs / f"{stage}.yaml"
        path.write_text(yaml.safe_dump(configs(self.options.env, self.cpu)[stage], sort_keys=False))
        return str(path)

    def _budget(self, stage: str, record: dict) -> float:
        """Seconds this training stage may still use: fixed at its first start as its share of the time
        left for training, minus what an interrupted earlier run of it already used."""
        if "budget" not in record:
            later = TRAINED[TRAINED.index(stage):]
            left = self.plan.seconds * (1 - self.plan.reserve) - self.spent(before=stage)
            record["budget"] = max(MIN_STAGE_SECONDS, left * SHARES[stage] / sum(SHARES[s] for s in later))
            self._save()
        return max(0.0, record["budget"] - record.get("seconds", 0.0))

    def _train(self, stage: str, trainer_class, options, record: dict, describe: Callable[[dict], str]) -> str:
        budget = self._budget(stage, record)
        if compiles(stage, budget, self.cpu):
            options = replace(options, sets=[*options.sets, "train.compile=true"])
        emit = lambda event, info: self.emit(stage, event, info)  # noqa: E731
        clock = BudgetClock(budget, lambda event, info: self._trainer_event(stage, clock, event, info))
        emit("start", {"total": round(budget), "unit": "s", "detail": "building"})
        trainer = trainer_class(options, clock)
        clock.trainer = trainer
        try:
            result = trainer.fit()
        finally:
            trainer.close()
        record["step"] = int(result["step"])
        record["result"] = {k: v for k, v in result.items() if isinstance(v, (int, float))}
        return describe(result)

    def _trainer_event(self, stage: str, clock: BudgetClock, event: str, info: dict) -> None:
        if event == "start":
            size = info.get("parameters", info.get("trainable", 0)) / 1e6
            self.emit(stage, "note", {"text": f"{LABELS[stage]}: {size:.2f}M parameters on {info['device']}, "
                                              f"{info['train_windows']} training windows, from step {info['step']}"
                                              + (" (torch.compile: the first steps compile)" if info.get("compile")
                                                 else "")})
        elif event == "step":
            shown = [f"step {info['step']}"]
            for key, name in (("loss", "loss"), ("psnr", "PSNR"), ("bc_nll", "bc"), ("bc_accuracy", "acc"),
                              ("policy_loss", "policy"), ("value_loss", "value"), ("kl_prior", "KL")):
                if key in info and isinstance(info[key], float):
                    shown.append(f"{name} {info[key]:.3f}")
            self.emit(stage, "update", {"left": max(0.0, clock.deadline - time.monotonic()),
                                        "detail": " · ".join(shown)})
        elif event == "eval":
            shown = ", ".join(f"{k} {v:.3f}" for k, v in info.items() if isinstance(v, float)
                              and k in ("psnr", "rollout_mse_1", "copy_mse_1", "bc_accuracy", "reward_nll",
                                        "imagined_return_policy", "imagined_return_prior"))
            if recall := object_recall(info):
                shown += f"; {recall}"
            if shown:
                self.emit(stage, "note", {"text": f"{LABELS[stage]} step {info['step']}: held-out {shown}"})

    def _trainer_options(self, stage: str, options_class, **extra):
        run = self.paths.runs[stage]
        return options_class(out=str(run), preset=PRESET, steps=CAPS[stage], config=self._config_file(stage),
                             resume=bool(list_checkpoints(run)), seed=self.options.seed, device=self.options.device,
                             **extra)

    def _tokenizer(self, record: dict) -> str:
        from .train.tokenizer import TokenizerTrainer, TokenizerTrainOptions

        options = self._trainer_options("tokenizer", TokenizerTrainOptions, data=str(self.paths.store))
        return self._train("tokenizer", TokenizerTrainer, options, record,
                           lambda r: f"step {r['step']}" + (f", held-out PSNR {r['psnr']:.2f} dB"
                                                            if "psnr" in r else "")
                           + (f", {recall}" if (recall := object_recall(r)) else ""))

    def _tokenize(self, record: dict) -> str:
        from dreamer_data.tokenize import tokenize_store

        from .tokenizer.frame_encoder import TokenizerFrameEncoder
        from .train.distributed import pick_device

        encoder = TokenizerFrameEncoder.from_checkpoint(str(self.paths.runs["tokenizer"]),
                                                        device=pick_device(self.options.device))
        self.emit("tokenize", "start", {"total": self.plan.episodes, "unit": "episodes"})
        report = tokenize_store(str(self.paths.store), encoder, overwrite=True,
                                progress=lambda done, total, frames: self.emit("tokenize", "update", {
                                    "completed": done, "total": total, "detail": f"{frames:,} frames"}))
        shape = "x".join(map(str, encoder.latent_shape))
        return f"{shape} latents per frame" + (f" ({report.frames_per_second:.0f} frames/s)" if report.frames else "")

    def _phase1(self, record: dict) -> str:
        from .train.phase1 import Phase1Trainer, Phase1TrainOptions

        options = self._trainer_options("phase1", Phase1TrainOptions, data=str(self.paths.store))
        return self._train("phase1", Phase1Trainer, options, record,
                           lambda r: f"step {r['step']}" + (f", held-out 1-step latent MSE {r['rollout_mse_1']:.4f} "
                                                            f"(copy-last {r['copy_mse_1']:.4f})"
                                                            if "rollout_mse_1" in r else ""))

    def _rollout(self, record: dict) -> str:
        import numpy as np

        from .checkpoint import load_store_tokenizer, load_world_model
        from .rollout import rollout_video
        from .train.distributed import pick_device

        self.emit("rollout", "start", {"total": None, "unit": "", "detail": "imagining"})
        device = pick_device(self.options.device)
        model, state = load_world_model(str(self.paths.runs["phase1"]), device)
        decoder = load_store_tokenizer(str(self.paths.store), None, device)
        episode, frames = self._rollout_episode(state)
        report = rollout_video(model, decoder, str(self.paths.store), episode, str(self.paths.gif),
                               self.plan.rollout_context, frames, seed=self.options.seed)
        psnr = np.array(report.psnr)
        record["result"] = {"episode": episode, "context": report.context, "horizon": report.horizon,
                            "psnr_first": float(psnr[0]), "psnr_last": float(psnr[-1]),
                            "psnr_tokenizer": float(np.mean(report.psnr_tokenizer))}
        return (f"episode {episode}: {report.context} real + {report.horizon} imagined frames, PSNR "
                f"{psnr[0]:.1f} dB at 1 step, {psnr[-1]:.1f} dB at {len(psnr)}")

    def _rollout_episode(self, world_state: dict) -> tuple[str, int]:
        """The longest held-out episode of phase 1 (never trained on), and how many frames it allows."""
        episodes = {e["id"]: e["length"] for e in load_manifest(str(self.paths.store))["episodes"]}
        heldout = [e for e in (world_state.get("data") or {}).get("heldout", []) if e in episodes] or list(episodes)
        episode = max(heldout, key=lambda e: (episodes[e], e))
        frames = min(self.plan.rollout_frames, episodes[episode] - self.plan.rollout_context)
        if frames < 1:
            raise ModelError(f"{self.paths.store}: no episode is longer than {self.plan.rollout_context} frames")
        return episode, frames

    def _phase2(self, record: dict) -> str:
        from .train.phase2 import Phase2Trainer, Phase2TrainOptions

        options = self._trainer_options("phase2", Phase2TrainOptions, data=str(self.paths.store),
                                        wm=str(self.paths.runs["phase1"]), tasks=["reward"])
        return self._train("phase2", Phase2Trainer, options, record,
                           lambda r: f"step {r['step']}" + (f", held-out BC accuracy {r['bc_accuracy']:.3f}"
                                                            if "bc_accuracy" in r else ""))

    def _phase3(self, record: dict) -> str:
        from .train.phase3 import Phase3Trainer, Phase3TrainOptions

        options = self._trainer_options("phase3", Phase3TrainOptions, data=str(self.paths.store),
                                        agent=str(self.paths.runs["phase2"]))
        return self._train("phase3", Phase3Trainer, options, record,
                           lambda r: f"step {r['step']}" + (f", imagined return {r['imagined_return_policy']:.3f} "
                                                            f"(BC prior {r['imagined_return_prior']:.3f})"
                                                            if "imagined_return_policy" in r else ""))

    def _evaluate(self, stage: str, row: str, **who) -> str:
        from .eval.evaluate import EvalOptions, Evaluation

        plan = self.plan
        options = EvalOptions(env=self.options.env, episodes=plan.eval_episodes, seed=self.options.seed,
                              max_steps=plan.max_steps, record=2, batch=min(32, plan.eval_episodes),
                              out=str(self.paths.eval[row]), device=self.options.device, **who)
        evaluation = Evaluation(options)
        self.emit(stage, "start", {"total": plan.eval_episodes, "unit": "episodes"})
        report, _, _ = evaluation.run(lambda done, total: self.emit(stage, "update", {"completed": done}))
        score = f", Crafter score {report['crafter_score']:.2f}%" if "crafter_score" in report else ""
        return f"return {report['return_mean']:.2f} ± {report['return_stderr']:.2f}{score}"

    def _eval_behaviour(self, record: dict) -> str:
        return self._evaluate("eval_behaviour", "behaviour", policy=POLICY, data=str(self.paths.store))

    def _eval_random(self, record: dict) -> str:
        return self._evaluate("eval_random", "random", policy="random", data=str(self.paths.store))

    def _eval_bc(self, record: dict) -> str:
        return self._evaluate("eval_bc", "bc", ckpt=str(self.paths.runs["phase2"]))

    def _eval_dreamer(self, record: dict) -> str:
        return self._evaluate("eval_dreamer", "dreamer", ckpt=str(self.paths.runs["phase3"]))

    def _eval_bc_greedy(self, record: dict) -> str:
        return self._evaluate("eval_bc_greedy", "bc_greedy", ckpt=str(self.paths.runs["phase2"]), greedy=True)

    def _eval_dreamer_greedy(self, record: dict) -> str:
        return self._evaluate("eval_dreamer_greedy", "dreamer_greedy", ckpt=str(self.paths.runs["phase3"]),
                              greedy=True)

    # ------------------------------------------------------------------------------------------ summary

    def _summary(self, wall_this_run: float) -> dict:
        p, stages = self.paths, self.state["stages"]
        rows, reports = {}, {}
        for row, stage in ROWS:
            report = reports[row] = json.loads((p.eval[row] / "report.json").read_text())
            entry = {"policy": report["policy"], "return_mean": report["return_mean"],
                     "return_stderr": report["return_stderr"], "episodes": report["episodes"],
                     "length_mean": report["length_mean"], "report": str(p.eval[row] / "report.json"),
                     "chart": str(p.eval[row] / report["files"]["chart"]),
                     "videos": [str(p.eval[row] / v) for v in report["files"]["videos"]]}
            if "crafter_score" in report:
                entry["crafter_score"] = report["crafter_score"]
            if "checkpoint" in report:
                entry["checkpoint"] = report["checkpoint"]
                entry["greedy"] = report["greedy"]
            rows[row] = entry
        write_comparison(rows, p.comparison, self._where())
        dreamer_minus_bc = paired_difference(reports["dreamer"], reports["bc"], str(p.eval["dreamer"]))
        greedy_minus_bc = paired_difference(reports["dreamer_greedy"], reports["bc_greedy"],
                                            str(p.eval["dreamer_greedy"]))
        # issue 20's longer target: does the agent improve on the player whose data taught it (either way of playing)?
        minus_behaviour = {row: paired_difference(reports[row], reports["behaviour"], str(p.eval[row]))
                           for row in ("dreamer", "dreamer_greedy")}
        imagined = stages["phase3"].get("result") or {}
        ranking = (imagination_ranking(imagined, reports, BEAT_Z) if all(k in imagined for k in IMAGINED.values())
                   else None)  # None: a phase 3 reused from a run made before its evaluation imagined random play
        tokenizer_samples = p.runs["tokenizer"] / "samples" / "latest.png"
        return {
            "settings": self.options.settings(), "device": self.options.device, "plan": asdict(self.plan),
            "env": self._where(), "eval_seed": self.options.seed,
            **rows,
            "dreamer_minus_bc": dreamer_minus_bc,  # paired over the same evaluation seeds
            "dreamer_beat_bc": dreamer_minus_bc["mean"] > BEAT_Z * dreamer_minus_bc["stderr"],
            "greedy_dreamer_minus_bc": greedy_minus_bc,
            "dreamer_minus_behaviour": minus_behaviour,  # sampled and greedy, paired over the same seeds
            "imagination_ranking": ranking,  # does phase 3's imagination order random / BC / Dreamer as the game?
            "artefacts": {
                "raw": str(p.raw), "store": str(p.store), "tokenizer": stages["tokenizer"]["outputs"]["checkpoint"],
                "reconstruction_grid": str(tokenizer_samples) if tokenizer_samples.exists() else None,
                "world_model": stages["phase1"]["outputs"]["checkpoint"], "rollout_gif": str(p.gif),
                "bc_agent": stages["phase2"]["outputs"]["checkpoint"],
                "dreamer_agent": stages["phase3"]["outputs"]["checkpoint"],
                "eval_reports": {row: rows[row]["report"] for row, _ in ROWS},
                "comparison_plot": str(p.comparison), "configs": str(p.configs), "summary": str(p.summary),
            },
            "stages": {name: {"seconds": round(stages[name].get("seconds", 0.0), 1),
                              "detail": stages[name].get("detail"),
                              **{k: stages[name][k] for k in ("step", "budget", "result") if k in stages[name]}}
                       for name in STAGES},
            "seconds_in_stages": round(self.spent(), 1),
            "seconds_this_run": round(wall_this_run, 1),
        }

    def _where(self) -> str:
        return self.options.env + (f" {self.options.game}" if self.options.game else "")


def object_recall(metrics: dict) -> str:
    """'object cell recall paddle 1.00, ball 0.97, …' from a tokenizer's held-out metrics ('' without any)."""
    recall = ", ".join(f"{k.removeprefix('recall/')} {v:.2f}" for k, v in metrics.items()
                       if k.startswith("recall/") and isinstance(v, float) and math.isfinite(v))
    return f"object cell recall {recall}" if recall else ""


COLOURS = ["tab:gray", "tab:olive", "tab:blue", "tab:green", "lightsteelblue", "lightgreen"]  # the rows of ROWS


def write_comparison(rows: dict[str, dict], path: Path, where: str) -> None:
    """Bar chart of the policies' mean return ± s.e. (and Crafter score when there is one)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rows)
    labels = [n.replace("_greedy", "\ngreedy") for n in names]
    crafter = all("crafter_score" in rows[n] for n in names)
    fig, axes = plt.subplots(1, 2 if crafter else 1, figsize=(11 if crafter else 6.5, 4), squeeze=False)
    ax = axes[0][0]
    ax.bar(labels, [rows[n]["return_mean"] for n in names], yerr=[rows[n]["return_stderr"] for n in names],
           capsize=6, color=COLOURS[:len(names)])
    ax.set_ylabel("mean return ± s.e.")
    ax.set_title(f"{where}: {rows[names[0]]['episodes']} episodes each, same seeds")
    if crafter:
        axes[0][1].bar(labels, [rows[n]["crafter_score"] for n in names], color=COLOURS[:len(names)])
        axes[0][1].set_ylabel("Crafter score (%)")
    fig.tight_layout()
    try:
        with replacing(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=100)
    finally:
        plt.close(fig)

