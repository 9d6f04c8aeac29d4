"""Thin command-line front ends: argument parsing, progress, error reporting. No logic lives here.

One process-wide setting is made here, before any front end loads torch and with it the OpenMP runtime: idle
OpenMP threads sleep instead of spinning, unless the user chose a policy. On a CPU that other jobs keep busy,
spinning threads made a two-thread training step 4-10x slower than one thread (sleeping ones: 0.8x;
benchmarks/results/precision.md).
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
