"""``ingest --ray`` on a real local Ray instance (2 CPUs): the same store as one machine writes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

import makers
from cli.data import app
from conftest import assert_same_store, cli_command, leftovers, read_manifest, run_cli
from dreamer_data.cluster.ingest import ingest_on_ray
from dreamer_data.collect.collector import CollectConfig, collect
from dreamer_data.ingest import IngestPlan, ingest
from dreamer_data.sources import ReadOptions, source_class
from dreamer_data.store.verify import verify_store
from ray_cluster import ray_address  # noqa: F401 (the module's Ray instance)
from test_resume import rows_written

SMALL_FLAGS = ["--resolution", "36x64", "--chunk-frames", "16"]
NATIVE_EPISODES, NATIVE_FRAMES = 8, 48  # 640x360: decoding left to interrupt after the first commit


def invoke(*args):
    """``dreamer-data ARGS…`` in this process (a ``--ray`` run joins the module's Ray session)."""
    return CliRunner().invoke(app, [str(arg) for arg in args])


@pytest.fixture(scope="module")
def vpt_src(tmp_path_factory) -> Path:
    """Five small VPT episodes and one whose video is not a video."""
    folder = tmp_path_factory.mktemp("ray-vpt")
    for index, frames in enumerate((14, 23, 9, 17, 12)):
        makers.write_vpt_episode(folder, f"ep{index}", frames, seed=index)
    video, _ = makers.write_vpt_episode(folder, "ep5_broken", 8)
    video.write_bytes(b"not a video")
    return folder


@pytest.fixture(scope="module")
def native_src(tmp_path_factory) -> tuple[Path, Path]:
    """VPT episodes at 640x360 (decoding takes long enough to interrupt) and their one-process store."""
    folder = tmp_path_factory.mktemp("ray-native")
    for index in range(NATIVE_EPISODES):
        makers.write_vpt_episode(folder, f"ep{index}", NATIVE_FRAMES, seed=index, height=makers.VPT_HEIGHT,
                                 width=makers.VPT_WIDTH)
    clean = tmp_path_factory.mktemp("ray-native-clean") / "store"
    assert invoke("ingest", "vpt", folder, "--out", clean, *SMALL_FLAGS, "--workers", "0").exit_code == 0
    return folder, clean


def test_ray_ingest_is_the_one_machine_store(ray_address, vpt_src, tmp_path):
    flags = [*SMALL_FLAGS, "--format", "both", "--clip-length", "8"]  # webdataset shards too
    plain = invoke("ingest", "vpt", vpt_src, "--out", tmp_path / "plain", *flags, "--workers", "2")
    on_ray = invoke("ingest", "vpt", vpt_src, "--out", tmp_path / "ray", *flags, "--ray")  # bare --ray, last
    assert (plain.exit_code, on_ray.exit_code) == (1, 1), on_ray.output  # the broken episode, listed by both
    assert "failed: " in on_ray.output and "ep5_broken.mp4" in on_ray.output and "Traceback" not in on_ray.output
    assert_same_store(tmp_path / "plain", tmp_path / "ray")
    manifest, reference = read_manifest(tmp_path / "ray"), read_manifest(tmp_path / "plain")
    assert manifest["failed"] == reference["failed"] and [f["id"] for f in manifest["failed"]] == ["ep5_broken"]
    assert manifest["wds"]["shards"] and manifest["wds"] == reference["wds"]  # shard names, sizes, checksums
    assert {k: v for k, v in manifest.items() if k != "created_at"} == \
        {k: v for k, v in reference.items() if k != "created_at"}
    assert verify_store(str(tmp_path / "ray")) == []
    assert leftovers(tmp_path / "ray") == []

    again = invoke("ingest", "vpt", vpt_src, "--out", tmp_path / "ray", "--ray", "--workers", "1", *flags)
    assert again.exit_code == 1 and "0 episodes ingested (0 frames), 5 already there, 1 failed" in again.output
    assert_same_store(tmp_path / "plain", tmp_path / "ray")


def test_ray_ingest_of_minatar_is_the_one_machine_store(ray_address, tmp_path):
    raw = tmp_path / "raw"
    collect(CollectConfig("minatar", "noisy-scripted", seed=3, game="breakout", max_steps=60), raw, episodes=4)
    source = source_class("minatar")(str(raw), ReadOptions(resolution=(20, 20)))
    assert not ingest(source, str(tmp_path / "plain"), IngestPlan(workers=0)).failed
    on_ray = invoke("ingest", "minatar", raw, "--out", tmp_path / "ray", "--resolution", "20x20", "--ray", "local",
                    "--workers", "2")
    assert on_ray.exit_code == 0, on_ray.output
    assert_same_store(tmp_path / "plain", tmp_path / "ray")
    assert read_manifest(tmp_path / "ray")["source"] == read_manifest(tmp_path / "plain")["source"]


def our_stage_tasks() -> list[psutil.Process]:
    """Ray workers of this test's instance (our descendants) running the staging task now."""
    found = []
    for process in psutil.Process().children(recursive=True):
        try:
            if process.cmdline()[:1] == ["ray::stage_and_ship"]:
                found.append(process)
        except psutil.Error:
            pass
    return found


def test_a_killed_worker_is_retried_and_the_store_verifies(ray_address, native_src, tmp_path):
    src, clean = native_src
    source = source_class("vpt")(str(src), ReadOptions(resolution=(36, 64), frame_chunk_rows=16))
    outcome: dict = {}
    run = threading.Thread(target=lambda: outcome.update(report=ingest_on_ray(
        source, str(tmp_path / "store"), IngestPlan(workers=2), ray_address)))
    run.start()
    killed = None
    while killed is None and run.is_alive():
        for process in our_stage_tasks():
            process.send_signal(signal.SIGKILL)  # what the OOM killer does to one decoding process
            killed = process
            break
        time.sleep(0.002)
    run.join(timeout=120)
    assert killed is not None, "no staging task was seen running"
    assert psutil.wait_procs([killed], timeout=10)[1] == []  # gone: the episode it was staging came from a retry
    report = outcome["report"]
    assert (report.ingested, report.failed) == (NATIVE_EPISODES, [])
    assert_same_store(clean, tmp_path / "store")
    assert verify_store(str(tmp_path / "store")) == []


def test_rerun_after_the_driver_is_killed_resumes_to_the_same_store(ray_address, native_src, tmp_path):
    src, clean = native_src
    out = tmp_path / "store"
    args = ["ingest", "vpt", str(src), "--out", str(out), *SMALL_FLAGS, "--ray", ray_address, "--workers", "2"]
    for _ in range(4):  # a loaded machine may let the run finish first: then try again on a fresh store
        driver = subprocess.Popen([*cli_command(), *args], start_new_session=True, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        while driver.poll() is None and rows_written(out) == 0:
            time.sleep(0.002)
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            assert driver.wait(timeout=30) == -signal.SIGKILL
            break
        subprocess.run(["rm", "-rf", str(out)], check=True)
    else:
        pytest.fail("ingest finished before the driver could be killed, 4 times")
    assert read_manifest(out)["totals"]["episodes"] < NATIVE_EPISODES

    resumed = run_cli(*args)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_store(clean, out)
    assert leftovers(out) == []


def test_without_ray_installed_the_flag_says_how_to_install_it(monkeypatch, vpt_src, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as it does where it is not installed
    result = invoke("ingest", "vpt", vpt_src, "--out", tmp_path / "store", "--ray")
    assert result.exit_code == 2
    assert result.output.splitlines() == ['dreamer-data ingest: error: --ray needs Ray, which is not installed here: '
                                          'pip install -e ".[ray]" (or pip install "ray>=2.40")']
    assert not (tmp_path / "store").exists()
