"""``tokenize --ray`` on a real local Ray instance (2 CPUs): encoders on workers, one writer, the same latents."""

from __future__ import annotations

import shutil
import signal
import sys
import threading
import time
from functools import partial
from pathlib import Path

import numpy as np
import psutil
import pytest
import zarr
from typer.testing import CliRunner

from checkpoint_pipeline import build_store
from cli.data import app
from conftest import read_manifest
from dreamer_data.cluster.tokenize import tokenize_on_ray
from dreamer_data.store.location import StoreLocation
from dreamer_data.store.verify import verify_store
from dreamer_data.tokenize import PROGRESS_FILE, tokenize_store
from dreamer_model.tokenizer.frame_encoder import TokenizerFrameEncoder
from ray_cluster import ray_address  # noqa: F401 (the module's Ray instance)
from test_store_locking import tokenizer_checkpoint
from test_tokenize_store import FailingEncoder


@pytest.fixture(scope="module")
def store_and_checkpoint(tmp_path_factory) -> tuple[Path, Path]:
    """Five real breakout episodes at 20x20 and a real tokenizer checkpoint for them (shared read-only)."""
    root = tmp_path_factory.mktemp("ray-tokenize")
    store = build_store(root)
    tokenizer_checkpoint(root / "ckpt", seed=0)
    return store, root / "ckpt"


def copy_of(store: Path, path: Path) -> str:
    shutil.copytree(store, path)
    return str(path)


def invoke(*args):
    """``dreamer-data ARGS…`` in this process (``--ray`` joins the module's Ray session)."""
    return CliRunner().invoke(app, [str(arg) for arg in args])


def latents_of(store: str) -> np.ndarray:
    return zarr.open_group(store, mode="r")[read_manifest(Path(store))["latents"]["path"]][:]


def published_entry(store: str) -> tuple[dict, list[str]]:
    """The manifest's latents entry (less its time) and the per-episode latent checksums."""
    manifest = read_manifest(Path(store))
    entry = {key: value for key, value in manifest["latents"].items() if key != "created_at"}
    return entry, [episode["checksums"]["latents"] for episode in manifest["episodes"]]


def test_two_workers_write_the_latents_one_worker_and_one_process_write(ray_address, store_and_checkpoint, tmp_path):
    store, ckpt = store_and_checkpoint
    one_process = copy_of(store, tmp_path / "one-process")
    tokenize_store(one_process, TokenizerFrameEncoder.from_checkpoint(ckpt, device="cpu"))
    for workers in (1, 2):
        on_ray = copy_of(store, tmp_path / f"ray-{workers}")
        flags = ["--ckpt", ckpt, "--ray", "--workers", workers]
        # a bare --ray before the store argument leaves it the store (cli/cluster.py: only an address is taken)
        result = invoke("tokenize", on_ray, *flags) if workers == 1 else invoke("tokenize", "--ray", on_ray, *flags[:2],
                                                                               *flags[3:])
        assert result.exit_code == 0, result.output
        assert f"{read_manifest(store)['totals']['frames']} frames of 5 episodes" in result.output
        np.testing.assert_array_equal(latents_of(on_ray), latents_of(one_process))  # bit for bit
        assert published_entry(on_ray) == published_entry(one_process)
        assert verify_store(on_ray) == [] and not StoreLocation(on_ray).exists(PROGRESS_FILE)


def test_an_interrupted_tokenize_resumes_on_ray(ray_address, store_and_checkpoint, tmp_path):
    store, ckpt = store_and_checkpoint
    clean = copy_of(store, tmp_path / "clean")
    tokenize_store(clean, TokenizerFrameEncoder.from_checkpoint(ckpt, device="cpu"))
    interrupted = copy_of(store, tmp_path / "interrupted")
    with pytest.raises(KeyboardInterrupt):  # dies before its third episode, like a killed process
        tokenize_store(interrupted, FailingEncoder(TokenizerFrameEncoder.from_checkpoint(ckpt, device="cpu"), 2))
    assert "latents" not in read_manifest(Path(interrupted))["fields"]  # nothing published yet

    resumed = invoke("tokenize", interrupted, "--ckpt", ckpt, "--ray", ray_address)
    assert resumed.exit_code == 0, resumed.output
    assert "resumed after 2 finished episodes" in resumed.output
    np.testing.assert_array_equal(latents_of(interrupted), latents_of(clean))
    assert published_entry(interrupted) == published_entry(clean)
    assert verify_store(interrupted) == []


def test_a_killed_encoder_worker_is_restarted_and_its_episode_retried(ray_address, store_and_checkpoint, tmp_path):
    store, ckpt = store_and_checkpoint
    clean = copy_of(store, tmp_path / "clean")
    tokenize_store(clean, TokenizerFrameEncoder.from_checkpoint(ckpt, device="cpu"), batch_frames=1)
    target = copy_of(store, tmp_path / "store")
    make = partial(TokenizerFrameEncoder.from_checkpoint, str(ckpt), device="cpu")
    outcome: dict = {}
    run = threading.Thread(target=lambda: outcome.update(report=tokenize_on_ray(
        target, make(), make, ray_address, workers=2, batch_frames=1)))  # one frame per pass: episodes take a while
    run.start()
    killed = None
    while killed is None and run.is_alive():
        for process in psutil.Process().children(recursive=True):
            try:
                if process.cmdline()[:1] == ["ray::EncoderWorker.encode"]:  # an actor encoding an episode now
                    process.send_signal(signal.SIGKILL)
                    killed = process
                    break
            except psutil.Error:
                pass
        time.sleep(0.002)
    run.join(timeout=120)
    assert killed is not None, "no encoder was seen encoding"
    assert psutil.wait_procs([killed], timeout=10)[1] == []
    assert outcome["report"].episodes == 5
    np.testing.assert_array_equal(latents_of(target), latents_of(clean))
    assert verify_store(target) == []


def test_ray_flags_without_ray(monkeypatch, store_and_checkpoint, tmp_path):
    store, ckpt = store_and_checkpoint
    target = copy_of(store, tmp_path / "store")
    workers = invoke("tokenize", target, "--ckpt", ckpt, "--workers", "2")
    assert workers.exit_code == 2 and workers.output.splitlines() == [
        "dreamer-data tokenize: error: --workers and --gpus-per-worker choose Ray workers: add --ray [ADDRESS]"]
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as it does where it is not installed
    missing = invoke("tokenize", target, "--ckpt", ckpt, "--ray")
    assert missing.exit_code == 2 and missing.output.splitlines() == [
        'dreamer-data tokenize: error: --ray needs Ray, which is not installed here: pip install -e ".[ray]" '
        '(or pip install "ray>=2.40")']
    assert "latents" not in read_manifest(Path(target))["fields"]
