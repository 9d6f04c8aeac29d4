"""Run logs: one JSON line per logged step in ``RUN/metrics.jsonl`` and TensorBoard scalars in ``RUN/tb``."""

from __future__ import annotations

import json
import math
from pathlib import Path


class RunLog:
    """Append-only metrics of the main process (other ranks get a RunLog that writes nothing)."""

    def __init__(self, run_dir: str | Path, enabled: bool = True):
        self.enabled = enabled
        self.path = Path(run_dir) / "metrics.jsonl"
        self.tb = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(Path(run_dir) / "tb"))

    def write(self, step: int, metrics: dict[str, float], prefix: str = "train") -> None:
        if not self.enabled:
            return
        clean = {k: (float(v) if math.isfinite(float(v)) else None) for k, v in metrics.items()}
        with open(self.path, "a") as handle:
            handle.write(json.dumps({"step": step, "split": prefix, **clean}) + "\n")
        for key, value in clean.items():
            if value is not None:
                self.tb.add_scalar(f"{prefix}/{key}", value, step)
        self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def read_metrics(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
