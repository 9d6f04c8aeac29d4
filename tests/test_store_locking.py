"""One writer per store, across real processes: ``tokenize`` takes the same writer lock as ``ingest``.

A helper process (this interpreter running ``HELPER`` below) holds the lock through the library or runs
``tokenize_store`` with a tiny real tokenizer; the store is the real MinAtar breakout store of conftest.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr

from conftest import read_manifest, run_cli
from dreamer_data.store.verify import verify_store
from dreamer_model.configs import TokenizerConfig, TokenizerRun, TransformerConfig, to_dict
from dreamer_model.tokenizer import Tokenizer
from dreamer_model.checkpoint import model_hash, save_checkpoint

HELPER = r'''
import sys, time
from pathlib import Path

mode, store = sys.argv[1], sys.argv[2]
if mode == "hold":  # take the writer lock through the library, say so, then sleep until killed
    from dreamer_data.store.location import StoreLocation
    lock = StoreLocation(store).lock_for_writing()
    Path(sys.argv[3]).write_text("held")
    time.sleep(120)
    sys.exit(0)

import torch
from dreamer_data.errors import StoreError
from dreamer_data.tokenize import tokenize_store
from dreamer_model.configs import TokenizerConfig, TransformerConfig
from dreamer_model.tokenizer import Tokenizer
from dreamer_model.tokenizer.frame_encoder import TokenizerFrameEncoder

seed, go = int(sys.argv[3]), Path(sys.argv[4])
torch.set_num_threads(1)
mini = TransformerConfig(dim=32, depth=2, heads=2, kv_heads=1, head_dim=16, registers=1, time_every=2)
torch.manual_seed(seed)
model = Tokenizer(TokenizerConfig(height=20, width=20, patch=4, latent_tokens=4, latent_dim=8, context=3,
                                  encoder=mini, decoder=mini))


class Paced(TokenizerFrameEncoder):
    """The real encoder, a little slower per episode, so the race's loser arrives while the winner writes."""

    def reset(self):
        time.sleep(0.1)
        super().reset()


encoder = Paced(model, f"sha256:race-{seed}", {"checkpoint": f"race-{seed}"})
Path(f"{go}.ready-{seed}").write_text("ready")
while not go.exists():
    time.sleep(0.005)
try:
    report = tokenize_store(store, encoder, batch_frames=64)
except StoreError as error:
    print(error, file=sys.stderr)
    sys.exit(3)
print(f"encoded {report.frames} frames")
'''

MINI = TransformerConfig(dim=32, depth=2, heads=2, kv_heads=1, head_dim=16, registers=1, time_every=2)


def helper(tmp_path: Path, *args: str) -> subprocess.Popen:
    script = tmp_path / "lock_helper.py"
    script.write_text(HELPER)
    return subprocess.Popen([sys.executable, str(script), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def file_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (the lock file included: a refused writer touches nothing)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def tokenizer_checkpoint(run_dir: Path, seed: int) -> str:
    """A real tokenizer checkpoint for 20x20 frames, as ``dreamer-train tokenizer`` writes one."""
    torch.manual_seed(seed)
    run = TokenizerRun(tokenizer=TokenizerConfig(height=20, width=20, patch=4, latent_tokens=4, latent_dim=8,
                                                 context=3, encoder=MINI, decoder=MINI))
    model = Tokenizer(run.tokenizer)
    config = to_dict(run)
    state = {"kind": "tokenizer", "version": 1, "step": 1, "seed": seed, "config": config,
             "model": model.state_dict(), "model_hash": model_hash(model.state_dict(), config["tokenizer"])}
    save_checkpoint(run_dir, 1, state)
    return state["model_hash"]


@pytest.fixture
def store(breakout_store, tmp_path) -> Path:
    copy = tmp_path / "store"
    shutil.copytree(breakout_store, copy)
    return copy


def test_tokenize_is_refused_while_another_writer_holds_the_store(store, tmp_path):
    expected_hash = tokenizer_checkpoint(tmp_path / "tok", seed=0)
    holder = helper(tmp_path, "hold", store, tmp_path / "held")
    try:
        wait_for(tmp_path / "held", holder)
        before = file_hashes(store)
        refused = run_cli("tokenize", store, "--ckpt", tmp_path / "tok", "--device", "cpu")
        after = file_hashes(store)
    finally:
        holder.send_signal(signal.SIGKILL)  # dies holding the lock: what a kill -9 of ingest leaves
        holder.wait()
    assert refused.returncode != 0
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert str(store) in lines[0] and f"another writer (pid {holder.pid}) holds this store's write lock" in lines[0]
    assert after == before  # manifest, arrays and lock file byte for byte
    assert not any(name.startswith("data/latents/") for name in after)

    # the holder is dead: its lock went with it, and the next writer gets in
    done = run_cli("tokenize", store, "--ckpt", tmp_path / "tok", "--device", "cpu")
    assert done.returncode == 0, done.stderr
    assert read_manifest(store)["latents"]["checkpoint_hash"] == expected_hash
    assert verify_store(str(store)) == []
    assert not (store / ".write.lock").exists()  # released: the lock file goes with the lock


def test_two_tokenize_runs_at_once_one_wins_and_its_latents_are_the_ones_named(store, breakout_store, tmp_path):
    go = tmp_path / "go"
    runs = {seed: helper(tmp_path, "tokenize", store, seed, go) for seed in (1, 2)}
    try:
        for seed, process in runs.items():
            wait_for(Path(f"{go}.ready-{seed}"), process)
        go.write_text("go")
        results = {seed: (process.wait(timeout=120), *process.communicate()) for seed, process in runs.items()}
    finally:
        for process in runs.values():
            if process.poll() is None:
                process.kill()
    winners = [seed for seed, (code, _, _) in results.items() if code == 0]
    losers = [seed for seed, (code, _, _) in results.items() if code != 0]
    assert len(winners) == 1 and len(losers) == 1, results
    code, _, err = results[losers[0]]
    assert code == 3 and "another writer" in err and "holds this store's write lock" in err, err

    manifest = read_manifest(store)
    assert manifest["latents"]["checkpoint_hash"] == f"sha256:race-{winners[0]}"
    assert verify_store(str(store)) == []

    # the same checkpoint alone on a fresh copy: the stored rows are exactly its latents
    clean = tmp_path / "clean"
    shutil.copytree(breakout_store, clean)
    alone = helper(tmp_path, "tokenize", clean, winners[0], go)
    assert alone.wait(timeout=120) == 0, alone.communicate()
    stored = zarr.open_array(str(store / "data" / "latents"), mode="r")[:]
    reference = zarr.open_array(str(clean / "data" / "latents"), mode="r")[:]
    assert stored.shape[0] == manifest["totals"]["frames"] and np.array_equal(stored, reference)
    assert [e["checksums"]["latents"] for e in manifest["episodes"]] == \
        [e["checksums"]["latents"] for e in read_manifest(clean)["episodes"]]
    assert not os.path.exists(store / "tokenize-progress.json")
    assert json.loads((store / "manifest.json").read_text())["latents"]["tokenizer"] == \
        {"checkpoint": f"race-{winners[0]}"}
