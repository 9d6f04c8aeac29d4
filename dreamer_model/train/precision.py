"""When ``train.bf16`` runs the transformers under bfloat16 autocast.

On CUDA always. On a CPU only where it has native bf16 matrix instructions (x86 AVX512-BF16 or AMX-BF16):
there autocast made a phase-1 step 1.4x and larger models ~1.8x faster (``benchmarks/bench_precision.py``);
elsewhere bf16 is emulated and slower than float32, so the setting is ignored there.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch

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


def bf16_wins(device: torch.device) -> bool:
    """Whether bfloat16 autocast speeds training up on ``device``."""
    return device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())
