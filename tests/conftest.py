"""Shared pytest fixtures: the real CLI as a subprocess, and small raw VPT folders + stores."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr

import makers


def cli_command(program: str = "dreamer-data") -> list[str]:
    """The installed console script of this interpreter's environment (what a user runs)."""
    script = Path(sys.executable).parent / program
    if script.exists():
        return [str(script)]
    found = shutil.which(program)
    if found is None:
        raise RuntimeError(f"console script {program} not installed; run pip install -e .")
    return [found]


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``dreamer-data ARGS…`` in a fresh process; returns the completed process (text output)."""
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run([*cli_command(), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd, env=env)


def read_manifest(store: Path) -> dict:
    return json.loads((Path(store) / "manifest.json").read_text())


def read_arrays(store: str | Path) -> dict[str, np.ndarray]:
    """Every array of a store's zarr group, read with plain zarr (name → numpy array)."""
    group = zarr.open_group(str(store), mode="r")
    with warnings.catch_warnings():  # zarr notes manifest.json (not a zarr node) while listing the root
        warnings.simplefilter("ignore")
        members = group.members(max_depth=None)
    return {name: member[:] for name, member in members if isinstance(member, zarr.Array)}


def assert_same_store(a: str | Path, b: str | Path) -> None:
    """Two stores hold the same episodes (ids, offsets, checksums, notes) and equal arrays."""
    ma, mb = read_manifest(a), read_manifest(b)
    keys = ("id", "length", "start", "end", "checksums", "notes", "source_index")
    assert [{k: e[k] for k in keys} for e in ma["episodes"]] == [{k: e[k] for k in keys} for e in mb["episodes"]]
    assert ma["totals"] == mb["totals"]
    arrays_a, arrays_b = read_arrays(a), read_arrays(b)
    assert sorted(arrays_a) == sorted(arrays_b)
    for name in arrays_a:
        assert arrays_a[name].dtype == arrays_b[name].dtype, name
        np.testing.assert_array_equal(arrays_a[name], arrays_b[name], err_msg=name)


def leftovers(root: Path) -> list[str]:
    """Temp files or directories anywhere under ``root`` (half-written things a user would see)."""
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*")
                  if ".tmp" in p.name or p.name.endswith(".partial") or p.name == ".staging")


@pytest.fixture(scope="session")
def vpt_src(tmp_path_factory) -> Path:
    """Three small VPT episodes (NAME.mp4 + NAME.jsonl), different lengths, shared read-only."""
    folder = tmp_path_factory.mktemp("vpt-src")
    for index, frames in enumerate((30, 41, 25)):
        makers.write_vpt_episode(folder, f"player-{index}-2022.06.01", frames, seed=index)
    return folder


@pytest.fixture(scope="session")
def vpt_store(vpt_src, tmp_path_factory) -> Path:
    """``vpt_src`` ingested once at 36x64 with two workers (shared read-only)."""
    out = tmp_path_factory.mktemp("vpt-store") / "store"
    result = run_cli("ingest", "vpt", vpt_src, "--out", out, "--resolution", "36x64", "--workers", "2",
                     "--chunk-frames", "16")
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="session")
def breakout_store(tmp_path_factory) -> Path:
    """16 real noisy-scripted MinAtar breakout episodes (≤ 300 steps) ingested at the quickstart's 20x20
    (shared read-only: copy it before writing latents)."""
    from dreamer_data.collect.collector import CollectConfig, collect
    from dreamer_data.ingest import IngestPlan, ingest
    from dreamer_data.sources import ReadOptions, source_class

    root = tmp_path_factory.mktemp("breakout")
    collect(CollectConfig("minatar", "noisy-scripted", seed=0, game="breakout", max_steps=300), root / "raw", episodes=16)
    source = source_class("minatar")(str(root / "raw"), ReadOptions(resolution=(20, 20)))
    report = ingest(source, str(root / "store"), IngestPlan(workers=0))
    assert not report.failed
    return root / "store"


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module of small tensors (they run fastest on one, and 2 shared cores thrash with
    more); restored after. Modules ask for it with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
