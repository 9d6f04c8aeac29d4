"""How a benchmark hands over its results: a markdown block ending with the command that produced it."""

from __future__ import annotations

import platform
import sys
from pathlib import Path


def publish(lines: list[str], results: str | None, note: str = "") -> None:
    """Print ``lines`` plus the exact command line (and ``note``), and write them to ``results`` if given."""
    script = Path(sys.argv[0]).name
    text = "\n".join([*lines, "", f"Command: `python benchmarks/{script} {' '.join(sys.argv[1:])}`{note}"])
    print(text)
    if results:
        Path(results).write_text(text + "\n")


def cpu_model() -> str:
    """The CPU's model name (e.g. "AMD EPYC (x86_64)"): the machine a table was measured on."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({platform.machine()})"
    except OSError:
        pass
    return f"{platform.machine()} {platform.processor() or ''}".strip()
