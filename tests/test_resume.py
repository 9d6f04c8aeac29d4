"""Kill an ingest mid-run (SIGKILL of its whole process group, or Ctrl-C), rerun: same store as a clean run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import zarr

import makers
from conftest import assert_same_store, cli_command, leftovers, read_manifest, run_cli

N_EPISODES, N_FRAMES = 24, 40  # decoding left after the first commit to interrupt under load (12 was too few)


@pytest.fixture(scope="module")
def src(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("resume-src")
    for index in range(N_EPISODES):  # native size, so there is decoding work left when the first commit starts
        makers.write_vpt_episode(folder, f"ep{index}", N_FRAMES, seed=index, height=makers.VPT_HEIGHT,
                                 width=makers.VPT_WIDTH)
    return folder


def ingest_args(src: Path, out: Path) -> list[str]:
    return ["ingest", "vpt", str(src), "--out", str(out), "--resolution", "36x64", "--workers", "2",
            "--chunk-frames", "16"]


@pytest.fixture(scope="module")
def clean(src, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("resume-clean") / "store"
    result = run_cli(*ingest_args(src, out))
    assert result.returncode == 0, result.stderr
    return out


def rows_written(out: Path) -> int:
    try:
        return json.loads((out / "data" / "frames" / "zarr.json").read_text())["shape"][0]
    except (OSError, ValueError, KeyError):
        return 0


def interrupt_mid_run(src: Path, out: Path, how: str, attempts: int = 4) -> subprocess.CompletedProcess:
    """Interrupt an ingest mid-run; retry (fresh store) when a loaded machine let the run finish first."""
    for _ in range(attempts):
        result = interrupt_once(src, out, how)
        if result.returncode != 0:
            return result
        shutil.rmtree(out)
    pytest.fail(f"ingest finished before {how} could land in {attempts} attempts")


def interrupt_once(src: Path, out: Path, how: str) -> subprocess.CompletedProcess:
    """Start ingest in its own process group; once the committer has begun appending rows, kill it ``how``."""
    process = subprocess.Popen([*cli_command(), *ingest_args(src, out)], start_new_session=True, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while process.poll() is None and rows_written(out) == 0 and time.monotonic() < deadline:
        time.sleep(0.002)
    if process.poll() is not None:  # finished before any row was seen: let the caller retry
        stdout, stderr = process.communicate()
        return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    if how == "sigkill-group":
        os.killpg(process.pid, signal.SIGKILL)
    elif how == "ctrl-c":
        os.killpg(process.pid, signal.SIGINT)
    else:  # "sigkill-worker": what the OOM killer does to one decoding process
        workers = [child for child in psutil.Process(process.pid).children(recursive=True)
                   if child.ppid() != process.pid]  # forkserver children; the forkserver itself is a direct child
        assert workers, "no worker process found"
        workers[0].kill()
    try:
        stdout, stderr = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"ingest did not stop within 60 s of {how}")
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def assert_published_prefix_is_complete(out: Path, clean: Path) -> None:
    """Whatever the interrupted store publishes is whole episodes, equal to the clean run's."""
    manifest, reference = read_manifest(out), read_manifest(clean)
    published = manifest["episodes"]
    assert [e["checksums"] for e in published] == [e["checksums"] for e in reference["episodes"][:len(published)]]
    group, clean_group = zarr.open_group(str(out), mode="r"), zarr.open_group(str(clean), mode="r")
    ends = group["meta/episode_ends"][:]
    assert ends.tolist() == [e["end"] for e in published]
    end = int(ends[-1]) if len(ends) else 0
    np.testing.assert_array_equal(group["data/frames"][:end], clean_group["data/frames"][:end])


@pytest.mark.parametrize("how", ["sigkill-group", "ctrl-c", "sigkill-worker"])
def test_interrupted_ingest_resumes_to_the_clean_store(src, clean, tmp_path, how):
    out = tmp_path / "store"
    interrupted = interrupt_mid_run(src, out, how)
    if how == "sigkill-group":
        assert interrupted.returncode == -signal.SIGKILL
    else:
        expected = (130, "interrupted") if how == "ctrl-c" else (2, "a worker process died")
        assert (interrupted.returncode, expected[1] in interrupted.stderr) == (expected[0], True), interrupted.stderr
        assert "rerun the same command to resume" in interrupted.stderr.replace("\n", " ")
        assert "Traceback" not in interrupted.stderr
    assert_published_prefix_is_complete(out, clean)
    assert read_manifest(out)["totals"]["episodes"] < N_EPISODES

    resumed = run_cli(*ingest_args(src, out))
    assert resumed.returncode == 0, resumed.stderr
    assert_same_store(clean, out)
    assert leftovers(out) == []
    verify = run_cli("verify", out)
    assert verify.returncode == 0, verify.stderr


def test_rerun_of_a_finished_store_changes_nothing(src, clean, tmp_path):
    out = tmp_path / "store"
    assert run_cli(*ingest_args(src, out)).returncode == 0
    before = {p: p.stat().st_mtime_ns for p in (out / "data").rglob("*") if p.is_file()}
    again = run_cli(*ingest_args(src, out))
    assert again.returncode == 0 and f"0 episodes ingested (0 frames), {N_EPISODES} already there" in again.stderr
    assert {p: p.stat().st_mtime_ns for p in (out / "data").rglob("*") if p.is_file()} == before  # no row rewritten
    assert_same_store(clean, out)


def test_rows_written_past_the_manifest_are_cut_off_on_resume(src, clean, tmp_path):
    """A committer killed between appending rows and publishing them leaves rows no episode owns."""
    out = tmp_path / "store"
    assert run_cli(*ingest_args(src, out)).returncode == 0
    group = zarr.open_group(str(out), mode="r+")
    total = read_manifest(out)["totals"]["frames"]
    for name in ("frames", "actions/buttons", "rewards"):  # what a kill mid-commit leaves: longer arrays
        array = group[f"data/{name}"]
        array.resize((total + 7, *array.shape[1:]))
        array[total:] = 1
    resumed = run_cli(*ingest_args(src, out))
    assert resumed.returncode == 0, resumed.stderr
    assert_same_store(clean, out)


def test_resume_refuses_a_store_written_with_other_settings(src, clean, tmp_path):
    out = tmp_path / "store"
    os.system(f"cp -r '{clean}' '{out}'")
    result = run_cli("ingest", "vpt", str(src), "--out", str(out), "--resolution", "32x32")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "different" in result.stderr and "new --out" in result.stderr.replace("\n", " ")
