"""When the trainers run the transformers under bfloat16 autocast.

On CUDA with ``train.bf16`` (the default). On a CPU only with ``train.cpu_bf16`` and only where the CPU has native
bf16 matrix instructions (x86 AVX512-BF16 or AMX-BF16; elsewhere bf16 is emulated and slower than float32). It is
off by default there: at the quickstart's sizes it made phase 1 and 2 steps ~1.25x faster in CPU time, the
tokenizer and phase 3 not at all, and the world model's held-out one-step error 25-50 % worse after the same 1,500
steps on two seeds (``benchmarks/bench_precision.py``, BENCHMARKS.md: precision).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch

from ..configs import TrainConfig

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether /proc/cpuinfo lists a native bf16 instruction set (False where it cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return any(flag in flags for flag in NATIVE_BF16_FLAGS)


def autocasts_bf16(device: torch.device, cfg: TrainConfig) -> bool:
    """Whether a run with ``cfg`` trains its transformers under bfloat16 autocast on ``device``."""
    if device.type == "cuda":
        return cfg.bf16
    return device.type == "cpu" and cfg.cpu_bf16 and cpu_has_native_bf16()


def precision_note(device: torch.device, cfg: TrainConfig) -> str | None:
    """A line for the user when ``train.cpu_bf16`` asked for what this CPU cannot do natively (else None)."""
    if device.type == "cpu" and cfg.cpu_bf16 and not cpu_has_native_bf16():
        return (f"train.cpu_bf16: this CPU has no native bf16 instructions ({', '.join(NATIVE_BF16_FLAGS)} not in "
                f"/proc/cpuinfo; emulated bf16 is slower than float32): training in float32")
    return None
