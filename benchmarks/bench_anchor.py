"""Ours against lucidrains/dreamer4 0.20.2 (the "anchor"), side by side on the CPU (issue 19): tokenizer
training step, dynamics training step from cached latents, and K = 4 generation of 16 frames at batch 1
with each side's K/V cache, at equal parameter count and equal tokens per frame.

The anchor is never a dependency of this project: it lives in this benchmark's own environment, which
also holds this project (editable) and the same torch:

    python3 -m venv /work/anchor-venv
    /work/anchor-venv/bin/pip install torch==2.14.1 dreamer4==0.20.2 -e /work/main
    cd /work/main && nice -n 10 /work/anchor-venv/bin/python benchmarks/bench_anchor.py

(about 2 minutes at the default 1 torch thread on an idle 2-core machine, 3 with ``--threads 1 2``; a busy
machine stretches it several times, and makes the 2-thread table meaningless). Any other Python is refused
in one line. GPU rows: ``--device cuda --bf16`` with larger batches (``benchmarks/device_h200.sh``); they add
achieved TFLOP/s and MFU.

Every measurement is paired interleaved rounds (ours then the anchor, the anchor then ours,
alternating), so load from other jobs on a shared machine falls on both;
the tables give each side's median wall-clock time per round, the median of the per-round ratios
ours ÷ anchor, and the same ratio of CPU time (which other jobs do not stretch). Results are printed as
markdown (benchmarks/results/anchor.md collects them).

Settings, read from the anchor's source (site-packages/dreamer4/dreamer4.py) and kept to its defaults
where the comparison allows: tokenizer ``VideoTokenizer`` (dim 256, 4 encoder + 4 decoder layers of
8 heads × 64, every 4th temporal, 64 latent tokens, patch 8, MAE drop ~ U(0, 0.9), its default
one-step flow decoder, loss normalisation on); dynamics ``DynamicsWorldModel`` (dim 256, depth 4, 8 × 64
heads, 64 latents pooled into 4 spatial tokens by learned-query attention, 8 registers, one agent and
one action token, K_max 64, shortcut training with its own probability 1 − 1/log2(K_max)). Both sides:
the perceptual (LPIPS) term off (neither side can load its pretrained backbone here, and it is a frozen
network outside the models compared), AdamW with gradient clipping (the anchor's trainers default to
MuonAdamAtan2: we time the models, not the optimisers), float32, random frames and latents (speed does
not depend on content), 17 discrete actions. Ours is sized to the same parameter count (tokenizer 12.0M
vs 12.7M; dynamics 7.27M vs the 7.31M its world-model loss trains) and laid out to the same tokens per
frame (tokenizer 132 vs 128: our 4 registers; dynamics 15 vs 15: 64 latents packed 16 to a token,
8 registers, one agent token, beside the action and shortcut tokens).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

ANCHOR = "dreamer4"
ANCHOR_VERSION = "0.20.2"
REPO = Path(__file__).resolve().parents[1]
VENV_COMMAND = ("python3 -m venv /work/anchor-venv && /work/anchor-venv/bin/pip install torch==2.14.1 "
                f"{ANCHOR}=={ANCHOR_VERSION} -e {REPO}")
ACTIONS = 17  # discrete actions (Crafter's count)
PEAK_BF16 = 989e12  # dense bf16 FLOP/s of an H100/H200 SXM (datasheet): the MFU denominator of GPU rows


def require_anchor() -> str:
    """The anchor's version, or exit with one line saying how to make the benchmark's environment."""
    from importlib import metadata

    try:
        import dreamer4  # noqa: F401

        version = metadata.version(ANCHOR)
    except Exception as error:  # ImportError, or a dependency of the anchor failing to import
        sys.exit(f"bench_anchor: lucidrains' {ANCHOR} {ANCHOR_VERSION} is not importable in {sys.executable} "
                 f"({type(error).__name__}: {error}); run this benchmark in its own environment: {VENV_COMMAND}")
    if version != ANCHOR_VERSION:
        sys.exit(f"bench_anchor: found {ANCHOR} {version}; the settings here were read from {ANCHOR_VERSION}'s "
                 f"source: pip install {ANCHOR}=={ANCHOR_VERSION} in the benchmark's environment")
    return version


# ---------------------------------------------------------------------------------------------- timing

@dataclass
class Paired:
    """Per-round seconds of both sides (wall and CPU), in round order."""

    ours: list[float]
    theirs: list[float]
    ours_cpu: list[float]
    theirs_cpu: list[float]

    @staticmethod
    def ratio(a: list[float], b: list[float]) -> float:
        return statistics.median(x / y for x, y in zip(a, b))

    @property
    def wall_ratio(self) -> float:
        """Median over rounds of ours ÷ anchor (wall-clock)."""
        return self.ratio(self.ours, self.theirs)

    @property
    def cpu_ratio(self) -> float:
        return self.ratio(self.ours_cpu, self.theirs_cpu)


def paired_rounds(ours: Callable[[], None], theirs: Callable[[], None], rounds: int, warmup: int = 1,
                  on_round: Callable[[int, float, float], None] | None = None,
                  sync: Callable[[], None] = lambda: None) -> Paired:
    """Warm both up, then ``rounds`` rounds of one call each, the order alternating every round. ``sync`` waits
    for queued GPU work, so a call's time is its own (CUDA launches return before the kernels finish)."""
    for _ in range(warmup):
        ours()
        theirs()
    result = Paired([], [], [], [])
    for r in range(rounds):
        order = [("ours", ours), ("theirs", theirs)]
        for side, call in order if r % 2 == 0 else order[::-1]:
            sync()
            wall, cpu = time.perf_counter(), time.process_time()
            call()
            sync()
            getattr(result, side).append(time.perf_counter() - wall)
            getattr(result, f"{side}_cpu").append(time.process_time() - cpu)
        if on_round:
            on_round(r, result.ours[-1], result.theirs[-1])
    return result


def trained_parameters(model: torch.nn.Module) -> int:
    """Parameters that received a gradient in the last backward pass (what a training step updates)."""
    return sum(p.numel() for p in model.parameters() if p.grad is not None)


def total_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------------------------- the two sides

@dataclass
class Sizes:
    image: int = 64
    patch: int = 8
    latents: int = 64  # latent tokens per frame, both tokenizers
    latent_dim: int = 16  # dims per latent token
    tok_batch: int = 2
    tok_frames: int = 8
    dyn_batch: int = 8
    dyn_frames: int = 16
    pack: int = 16  # ours: latents per dynamics token (64 / 16 = 4 tokens, the anchor's 4 spatial tokens)
    context: int = 1  # real frames before the 16 generated ones
    horizon: int = 16
    steps: int = 4  # K
    device: str = "cpu"
    bf16: bool = False  # both sides' steps under bf16 autocast (the GPU rows)

    def autocast(self):
        return torch.autocast(torch.device(self.device).type, dtype=torch.bfloat16, enabled=self.bf16)


def our_tokenizer(s: Sizes):
    from dreamer_model.configs import TokenizerConfig, TransformerConfig
    from dreamer_model.tokenizer import Tokenizer

    net = TransformerConfig(dim=256, depth=8, heads=8, kv_heads=4, head_dim=32, registers=4)
    cfg = TokenizerConfig(height=s.image, width=s.image, patch=s.patch, latent_tokens=s.latents,
                          latent_dim=s.latent_dim, context=s.tok_frames, lpips_weight=0.0, encoder=net, decoder=net)
    return Tokenizer(cfg).to(s.device), cfg


def their_tokenizer(s: Sizes):
    from dreamer4 import VideoTokenizer

    return VideoTokenizer(dim=256, dim_latent=s.latent_dim, patch_size=s.patch, image_height=s.image,
                          image_width=s.image, num_latent_tokens=s.latents, encoder_depth=4, decoder_depth=4,
                          attn_heads=8, attn_dim_head=64, lpips_loss_weight=0.0).to(s.device)


def our_dynamics(s: Sizes):
    from dreamer_model.configs import TransformerConfig
    from dreamer_model.dynamics import DynamicsConfig, DynamicsModel, action_fields

    net = TransformerConfig(dim=280, depth=8, heads=8, kv_heads=4, head_dim=36, registers=8, time_every=4,
                            time_window=s.dyn_frames)
    cfg = DynamicsConfig(latent_tokens=s.latents, latent_dim=s.latent_dim, pack=s.pack, context=s.dyn_frames,
                         agent_tokens=1, action_to_latents=True, sample_steps=s.steps, transformer=net)
    return DynamicsModel(cfg, action_fields({"discrete": {"kind": "categorical", "size": ACTIONS}})).to(s.device), cfg


def their_dynamics(s: Sizes):
    from dreamer4 import DynamicsWorldModel

    return DynamicsWorldModel(dim=256, dim_latent=s.latent_dim, num_latent_tokens=s.latents, num_spatial_tokens=4,
                              num_register_tokens=8, depth=4, attn_heads=8, attn_dim_head=64, max_steps=64,
                              num_discrete_actions=ACTIONS).to(s.device)


def adamw(model: torch.nn.Module) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.01)


def descend(model: torch.nn.Module, optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()


@dataclass
class Bench:
    """One measurement: a step of each side plus what the table says about them."""

    name: str
    ours: Callable[[], None]
    theirs: Callable[[], None]
    unit: str
    ours_params: str
    theirs_params: str
    ours_tokens: int
    theirs_tokens: int
    ours_flops: float = 0.0  # per call (forward + backward), counted by torch's FlopCounterMode
    theirs_flops: float = 0.0


def flops(call: Callable[[], None]) -> float:
    """Floating-point operations of one ``call()`` by torch's own per-op formulas (matmuls and attention, forward
    and backward): the numerator of the achieved TFLOP/s and of MFU. Counted in a dispatch mode of its own:
    ``FlopCounterMode``'s module tracker fails on a forward pass that mixes grad and no-grad calls (the
    shortcut teacher's)."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import flop_registry

    class Count(TorchDispatchMode):
        total = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            formula = flop_registry.get(func._overloadpacket)
            if formula is not None:
                self.total += formula(*args, **(kwargs or {}), out_val=out)
            return out

    with Count() as counter:
        call()
    return float(counter.total)


def tokenizer_bench(s: Sizes, steps: int) -> Bench:
    from dreamer_model.tokenizer.loss import TokenizerLoss

    torch.manual_seed(0)
    ours, cfg = our_tokenizer(s)
    theirs = their_tokenizer(s)
    ours.train(), theirs.train()
    loss_fn = TokenizerLoss(lpips_weight=0.0, rms_decay=cfg.rms_decay).to(s.device)  # its running RMS buffer
    frames = torch.randint(0, 256, (s.tok_batch, s.tok_frames, s.image, s.image, 3), dtype=torch.uint8,
                           device=s.device)
    video = frames.permute(0, 4, 1, 2, 3).float() / 255.0  # the anchor's (B, C, T, H, W) in [0, 1]
    our_opt, their_opt = adamw(ours), adamw(theirs)
    draws = torch.Generator(s.device).manual_seed(0)  # sample_drop draws on the frames' device

    def our_steps(steps: int = steps):
        for _ in range(steps):
            drop = ours.sample_drop(s.tok_batch, s.tok_frames, draws, device=s.device)
            with s.autocast():
                recon, _ = ours(frames, drop)
                loss, _ = loss_fn(recon, frames.float() / 255.0)
            descend(ours, our_opt, loss)

    def their_steps(steps: int = steps):
        for _ in range(steps):
            with s.autocast():
                loss = theirs(video)
            descend(theirs, their_opt, loss)

    ours_flops, theirs_flops = flops(lambda: our_steps(1)), flops(lambda: their_steps(1))  # gradients exist now
    patches = (s.image // s.patch) ** 2
    return Bench("tokenizer training step", our_steps, their_steps, f"s per step ({steps} steps a round)",
                 f"{trained_parameters(ours) / 1e6:.2f}M", f"{trained_parameters(theirs) / 1e6:.2f}M",
                 patches + s.latents + cfg.encoder.registers, patches + s.latents, ours_flops, theirs_flops)


def random_actions(s: Sizes, batch: int, frames: int) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """Our (action_in, has_action_in) (first frame: no action) and the anchor's raw actions (it shifts them)."""
    actions = torch.randint(0, ACTIONS, (batch, frames), device=s.device)
    action_in = {"discrete": torch.cat((torch.zeros_like(actions[:, :1]), actions[:, :-1]), dim=1)}
    has_in = torch.ones(batch, frames, dtype=torch.bool, device=s.device)
    has_in[:, 0] = False
    return action_in, has_in, actions


def dynamics_bench(s: Sizes, steps: int) -> Bench:
    from dreamer_model.dynamics import ShortcutForcingLoss

    torch.manual_seed(0)
    ours, cfg = our_dynamics(s)
    theirs = their_dynamics(s)
    ours.train(), theirs.train()
    loss_fn = ShortcutForcingLoss.from_config(cfg).to(s.device)
    latents = torch.rand(s.dyn_batch, s.dyn_frames, s.latents, s.latent_dim, device=s.device) * 2 - 1  # cached tanh
    action_in, has_in, actions = random_actions(s, s.dyn_batch, s.dyn_frames)
    our_opt, their_opt = adamw(ours), adamw(theirs)
    draws = torch.Generator().manual_seed(0)

    def our_steps(steps: int = steps):
        for _ in range(steps):
            f = lambda z, tau, d: ours(z, tau, d, action_in, has_in).x_pred  # noqa: E731
            with s.autocast():
                loss, _ = loss_fn(f, latents, draws)
            descend(ours, our_opt, loss)

    def their_steps(steps: int = steps):
        for _ in range(steps):
            with s.autocast():
                loss = theirs(latents=latents, discrete_actions=actions, add_autoregressive_action_loss=False)
            descend(theirs, their_opt, loss)

    ours_flops, theirs_flops = flops(lambda: our_steps(1)), flops(lambda: their_steps(1))
    their_tokens = 1 + 4 + theirs.num_register_tokens + 1 + theirs.num_agents  # flow, spatial, registers, action, agent
    return Bench("dynamics training step (from latents)", our_steps, their_steps, f"s per step ({steps} steps a round)",
                 f"{trained_parameters(ours) / 1e6:.2f}M", f"{trained_parameters(theirs) / 1e6:.2f}M "
                 f"({total_parameters(theirs) / 1e6:.1f}M with its agent heads)", ours.layout.size, their_tokens,
                 ours_flops, theirs_flops)


def generation_bench(s: Sizes) -> Bench:
    from dreamer_model.dynamics import Sampler

    torch.manual_seed(0)
    ours, cfg = our_dynamics(s)
    theirs = their_dynamics(s)
    total = s.context + s.horizon
    latents = torch.rand(1, total, s.latents, s.latent_dim, device=s.device) * 2 - 1
    theirs(latents=latents, discrete_actions=torch.randint(0, ACTIONS, (1, total), device=s.device),
           add_autoregressive_action_loss=False).backward()  # marks the parameters its world model uses
    their_params = (f"{trained_parameters(theirs) / 1e6:.2f}M ({total_parameters(theirs) / 1e6:.1f}M with its "
                    "agent heads)")
    ours.eval(), theirs.eval()
    context = torch.rand(1, s.context, s.latents, s.latent_dim, device=s.device) * 2 - 1
    action_in, has_in, actions = random_actions(s, 1, total)
    sampler = Sampler(ours, steps=s.steps)

    def our_rollout():
        with s.autocast():
            out = sampler.generate(context, action_in, has_in, s.horizon, torch.Generator().manual_seed(0),
                                   use_cache=True)
        assert out.shape[1] == s.horizon

    def their_rollout():
        with s.autocast():
            out = theirs.generate(total, num_steps=s.steps, batch_size=1, prompt_latents=context,
                                  prompt_discrete_actions=actions, use_time_cache=True, return_decoded_video=False)
        assert out.shape[1] == total

    return Bench(f"generation, K = {s.steps}, {s.horizon} frames, batch 1, K/V cache", our_rollout, their_rollout,
                 f"s per {s.horizon} frames", f"{total_parameters(ours) / 1e6:.2f}M", their_params, ours.layout.size,
                 1 + 4 + theirs.num_register_tokens + 1 + theirs.num_agents)


# ---------------------------------------------------------------------------------------------- report

def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor() or "unknown CPU"


def markdown(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def settings(s: Sizes, version: str) -> str:
    patches = (s.image // s.patch) ** 2
    return "\n".join([
        f"- Frames {s.image}x{s.image}x3, patch {s.patch} ({patches} patches), {s.latents} latent tokens x "
        f"{s.latent_dim} dims per frame on both sides; {ACTIONS} discrete actions; "
        f"{'bf16 autocast' if s.bf16 else 'float32'} on {s.device}; AdamW + clip 1.0; "
        "LPIPS off on both sides.",
        f"- Tokenizer step: {s.tok_batch} windows x {s.tok_frames} frames. Ours: `Tokenizer`, encoder and decoder "
        "each 8 layers, dim 256, 8 query / 4 K/V heads of 32, 4 registers, a temporal layer every 4th, MAE drop "
        "U(0, 0.9), MSE / running RMS. Anchor "
        f"{ANCHOR} {version}: `VideoTokenizer(dim=256, dim_latent={s.latent_dim}, patch_size={s.patch}, "
        f"num_latent_tokens={s.latents}, encoder_depth=4, decoder_depth=4, attn_heads=8, attn_dim_head=64, "
        "lpips_loss_weight=0)`, everything else its default (time block every 4th, value residual, attention "
        "pooling, one-step flow decoder, loss normalisation).",
        f"- Dynamics step: {s.dyn_batch} windows x {s.dyn_frames} frames of cached latents. Ours: `DynamicsModel`, "
        f"8 layers, dim 280, 8 query / 4 K/V heads of 36, a temporal layer every 4th, latents packed {s.pack} to a "
        "token, 8 registers, 1 agent token, shortcut forcing with bootstrap fraction 0.25 (the teacher's two "
        "half steps run every step). Anchor: `DynamicsWorldModel(dim=256, depth=4, attn_heads=8, attn_dim_head=64, "
        f"num_latent_tokens={s.latents}, num_spatial_tokens=4, num_register_tokens=8, max_steps=64, "
        f"num_discrete_actions={ACTIONS})`, trained by `model(latents=…, discrete_actions=…, "
        "add_autoregressive_action_loss=False)`: flow + shortcut losses only, its shortcut branch (two extra "
        "no-grad passes) on a random 5/6 of the steps.",
        f"- Generation: the same two world models (random weights), eval mode, {s.context} real frame of context "
        f"then {s.horizon} generated, K = {s.steps}; ours `Sampler.generate(..., use_cache=True)` (K denoising "
        f"calls + 1 commit per frame), the anchor's `generate(time_steps={s.context + s.horizon}, num_steps={s.steps}, "
        "prompt_latents=…, prompt_discrete_actions=…, use_time_cache=True)` (K calls + 1 cache step per frame).",
    ])


def machine(device: str) -> str:
    """The CPU, and the GPU when the benchmark runs on one."""
    where = f"{cpu_model()}, {os.cpu_count()} logical CPUs"
    if torch.device(device).type == "cuda":
        where += f"; GPU {torch.cuda.get_device_name(device)}"
    return where


def run(args) -> str:
    version = require_anchor()
    s = Sizes(tok_batch=args.tokenizer_batch, tok_frames=args.tokenizer_frames, dyn_batch=args.dynamics_batch,
              pack=args.pack, device=args.device, bf16=args.bf16)
    cuda = torch.device(args.device).type == "cuda"
    if cuda:  # 0.20.2's flex-attention path (CUDA only) passes flex_attention a `causal` argument torch refuses
        import dreamer4.dreamer4 as anchor_module

        anchor_module.flex_attention = None  # its own fallback: the attention it runs on a CPU (SDPA where it can)
    sync = (lambda: torch.cuda.synchronize(args.device)) if cuda else (lambda: None)
    wanted = {"tokenizer": lambda: tokenizer_bench(s, args.steps_per_round),
              "dynamics": lambda: dynamics_bench(s, args.steps_per_round),
              "generation": lambda: generation_bench(s)}
    benches = [wanted[name]() for name in args.only]
    began = time.perf_counter()
    sections = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        rows = []
        for bench in benches:
            per = 1 if bench.name.startswith("generation") else args.steps_per_round
            print(f"[{threads} thread(s)] {bench.name}", file=sys.stderr, flush=True)
            paired = paired_rounds(bench.ours, bench.theirs, args.rounds, sync=sync,
                                   on_round=lambda r, a, b: print(f"  round {r}: ours {a / per:.3f} s, anchor "
                                                                  f"{b / per:.3f} s", file=sys.stderr, flush=True))
            ratio = paired.wall_ratio
            ours_s, theirs_s = statistics.median(paired.ours) / per, statistics.median(paired.theirs) / per
            row = [bench.name, f"{bench.ours_params} / {bench.theirs_params}",
                   f"{bench.ours_tokens} / {bench.theirs_tokens}", f"{ours_s:.4f}", f"{theirs_s:.4f}",
                   f"{ratio:.2f}", f"{1 / ratio:.2f}x", f"{paired.cpu_ratio:.2f}", args.rounds]
            if cuda:  # achieved TFLOP/s (torch's count) and MFU against the dense bf16 peak
                row[-1:-1] = [f"{bench.ours_flops / ours_s / 1e12:.1f} / {bench.theirs_flops / theirs_s / 1e12:.1f}"
                              if bench.ours_flops else "-",
                              f"{bench.ours_flops / ours_s / PEAK_BF16:.1%} / {bench.theirs_flops / theirs_s / PEAK_BF16:.1%}"
                              if bench.ours_flops else "-"]
            rows.append(row)
        header = ["measurement", "parameters (ours / anchor)", "tokens per frame (ours / anchor)", "ours, s (median)",
                  "anchor, s (median)", "ours ÷ anchor (wall)", "ours faster by", "ours ÷ anchor (CPU time)", "rounds"]
        if cuda:
            header[-1:-1] = ["TFLOP/s (ours / anchor)", "MFU (ours / anchor)"]
        sections.append(f"### {threads} torch thread(s)\n\n" + markdown(header, rows))
    elapsed = time.perf_counter() - began
    header = (f"Machine: {machine(args.device)}; torch {torch.__version__}; "
              f"{ANCHOR} {version}; Python {platform.python_version()}; {'bf16 autocast' if s.bf16 else 'float32'}; "
              f"timed rounds took {elapsed:.0f} s.\nSeconds are per training step (each round times "
              f"{args.steps_per_round} steps) or per generated rollout; ratios are medians of the per-round ratios.")
    if cuda:
        header += (f"\nTFLOP/s: one step's FLOPs by torch's per-op formulas (torch.utils.flop_counter: forward + "
                   "backward matmuls and attention) "
                   f"÷ its median time; MFU against {PEAK_BF16 / 1e12:.0f} TFLOP/s, the H100/H200 SXM datasheet's dense "
                   "bf16 peak.")
    return "\n\n".join([header, "Settings:\n\n" + settings(s, version), *sections])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1], help="torch thread counts, one table each")
    parser.add_argument("--rounds", type=int, default=5, help="paired rounds per measurement")
    parser.add_argument("--steps-per-round", type=int, default=2, help="training steps timed in one round")
    parser.add_argument("--only", nargs="+", choices=("tokenizer", "dynamics", "generation"),
                        default=["tokenizer", "dynamics", "generation"])
    parser.add_argument("--tokenizer-batch", type=int, default=2)
    parser.add_argument("--tokenizer-frames", type=int, default=8)
    parser.add_argument("--dynamics-batch", type=int, default=8)
    parser.add_argument("--pack", type=int, default=16, help="ours: latents per dynamics token (16: 15 tokens a frame)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (GPU rows: add --bf16 and larger batches)")
    parser.add_argument("--bf16", action="store_true", help="both sides' steps under bf16 autocast")
    parser.add_argument("--out", type=Path, help="also write the markdown here")
    args = parser.parse_args(argv)
    report = run(args)
    print(report)
    if args.out:
        args.out.write_text(report + "\n")


if __name__ == "__main__":
    main()
