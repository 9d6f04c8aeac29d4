"""Store creation survives an interrupt at any instant, leaves no disk behind, and never touches a user's folder.

Real ``dreamer-data ingest`` processes are killed (SIGKILL of the process group, or Ctrl-C's SIGINT) in the
first instants of a new store, then rerun; leftovers of a run killed between publishing and cleaning up are
made with the library's own stager and lock; a full disk is a real tmpfs in a user namespace.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import makers
from conftest import assert_same_store, cli_command, leftovers, read_manifest, run_cli
from dreamer_data.ingest import source_fingerprint, stage_episode
from dreamer_data.sources import ReadOptions, source_class
from dreamer_data.store.staging import staging_key
from dreamer_data.tokenize import tokenize_store
from test_resume import ingest_args

N_EPISODES, N_FRAMES = 4, 20
# (path inside --out whose appearance starts the clock, extra seconds before the signal): every step of
# creation (directory, lock, group zarr.json, arrays, manifest), then instants later in the first second
INSTANTS = [("", 0), (".write.lock", 0), ("", 0.003), ("zarr.json", 0), ("data", 0), ("", 0.02), ("meta", 0),
            ("", 0.045), ("manifest.json", 0), ("", 0.1), ("", 0.3), ("", 0.6)]


@pytest.fixture(scope="module")
def src(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("creation-src")
    for index in range(N_EPISODES):
        makers.write_vpt_episode(folder, f"ep{index}", N_FRAMES, seed=index)
    return folder


@pytest.fixture(scope="module")
def clean(src, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("creation-clean") / "store"
    result = run_cli(*ingest_args(src, out))
    assert result.returncode == 0, result.stderr
    return out


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under ``root`` (hidden ones too) with its bytes' hash, mode and mtime; the root's own mtime."""
    entries = {".": ("dir", root.stat().st_mode, root.stat().st_mtime_ns)}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        content = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        entries[str(path.relative_to(root))] = (content, info.st_mode, info.st_mtime_ns)
    return entries


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "error" in line]


def interrupt_at(src: Path, out: Path, signum: int, trigger: str, delay: float) -> tuple[int, bool]:
    """Start ingest; once ``out/trigger`` exists, wait ``delay`` s and signal its process group.

    Returns (exit status, whether a manifest existed when the run ended)."""
    process = subprocess.Popen([*cli_command(), *ingest_args(src, out)], start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    watched = out / trigger
    deadline = time.monotonic() + 120
    while not watched.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.0002)  # creation takes tens of milliseconds; a busy wait would take a core from the child
    if delay:
        time.sleep(delay)
    if process.poll() is None:
        os.killpg(process.pid, signum)
    try:
        _, stderr = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"ingest did not stop within 60 s of signal {signum}")
    if signum == signal.SIGINT and process.returncode == 130:
        assert "rerun the same command to resume" in stderr.replace("\n", " ") and "Traceback" not in stderr
    return process.returncode, (out / "manifest.json").exists()


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_an_interrupt_at_any_instant_of_creation_leaves_a_resumable_store(src, clean, tmp_path, signum):
    unfinished = 0
    for index, (trigger, delay) in enumerate(INSTANTS):
        out = tmp_path / f"store-{index}"
        code, has_manifest = interrupt_at(src, out, signum, trigger, delay)
        interrupted = code != 0
        if interrupted and not has_manifest and out.exists() and any(out.iterdir()):
            unfinished += 1  # the state that used to make --out unusable: our files, no manifest
        resumed = run_cli(*ingest_args(src, out))
        where = f"{trigger or '--out'} + {delay} s (exit {code}, manifest {has_manifest})"
        assert resumed.returncode == 0, (where, resumed.stderr)
        assert_same_store(clean, out)
        assert read_manifest(out)["totals"]["episodes"] == N_EPISODES
        assert leftovers(out) == [], where
        assert not (out / ".write.lock").exists(), where
    assert unfinished > 0, "no interrupt landed between the first file and the manifest"


def test_leftovers_of_a_run_killed_before_cleanup_are_removed_by_the_next_run(src, clean, tmp_path):
    out = tmp_path / "store"
    assert run_cli(*ingest_args(src, out)).returncode == 0
    published = {path: path.read_bytes() for path in out.rglob("*") if path.is_file()}
    # what a kill between the manifest save and the clean-up leaves: the dead writer's lock, a staged copy of
    # a committed episode, a worker's half-staged episode, temp files of the manifest and of a chunk
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\n"
                               "from dreamer_data.store.location import StoreLocation\n"
                               "lock = StoreLocation(sys.argv[1]).lock_for_writing()\n"
                               "print('held', flush=True)\ntime.sleep(120)", str(out)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "held\n"
    holder.kill()
    holder.wait()
    assert (out / ".write.lock").read_text() == f"{holder.pid}\n"
    source = source_class("vpt")(str(src), ReadOptions(resolution=(36, 64), frame_chunk_rows=16))
    refs = source.list_episodes()
    staging = out / ".staging" / source_fingerprint(source)
    assert stage_episode(source, refs[1], str(staging), 1) == (refs[1].id, None, None)
    half = staging / f".tmp-{staging_key(refs[2].id)}-4194300"
    (half / "frames").mkdir(parents=True)
    (half / "frames" / "000000.npy").write_bytes(b"\x93NUMPY half")
    (out / ".manifest.json.k2j4_x8q.tmp").write_text('{"format": "dreamer-st')
    chunk = next(path for path in (out / "data" / "frames").rglob("*") if path.is_file() and path.name != "zarr.json")
    (chunk.parent / f"{chunk.name}.{'ab' * 16}.partial").write_bytes(b"half a chunk")
    assert (staging / staging_key(refs[1].id) / "episode.json").exists()
    assert len(leftovers(out)) == 4  # .staging, the half, the manifest's and the chunk's temp files

    again = run_cli(*ingest_args(src, out))
    assert again.returncode == 0, again.stderr
    assert f"0 episodes ingested (0 frames), {N_EPISODES} already there" in again.stderr
    assert leftovers(out) == [] and not staging.parent.exists() and not (out / ".write.lock").exists()
    assert {path: path.read_bytes() for path in out.rglob("*") if path.is_file()} == published
    assert_same_store(clean, out)


def test_a_shared_staging_folder_loses_only_copies_of_committed_episodes(src, clean, tmp_path):
    out = tmp_path / "store"
    staging = tmp_path / "scratch"
    args = [*ingest_args(src, out), "--staging", str(staging)]
    assert run_cli(*args).returncode == 0
    assert not staging.exists()  # emptied and removed after the run
    ours = source_class("vpt")(str(src), ReadOptions(resolution=(36, 64), frame_chunk_rows=16))
    other = source_class("vpt")(str(src), ReadOptions(resolution=(18, 32), frame_chunk_rows=16))
    refs = ours.list_episodes()
    mine, theirs = staging / source_fingerprint(ours), staging / source_fingerprint(other)
    stage_episode(ours, refs[0], str(mine), 0)  # identical to the committed episode: a leftover
    stage_episode(other, refs[1], str(theirs), 1)  # another store's settings, same id: not ours to delete
    (staging / "notes.txt").write_text("someone else's file")
    kept = snapshot(theirs)

    assert run_cli(*args).returncode == 0
    assert not mine.exists()
    assert snapshot(theirs) == kept
    assert (staging / "notes.txt").read_text() == "someone else's file"
    assert_same_store(clean, out)


def test_a_shared_staging_folder_never_hands_one_sources_episode_to_another(tmp_path):
    """Two collect runs both have episodes/000000 (ids repeat across sources). A run of A killed after staging
    left A's episode in --staging; ingesting B with the same --staging must store B's episode, not A's."""
    for name, seed in (("a", 1), ("b", 2)):
        result = run_cli("collect", "minatar", "--game", "breakout", "--episodes", "2", "--seed", str(seed),
                         "--max-steps", "40", "--out", tmp_path / name)
        assert result.returncode == 0, result.stderr
    staging = tmp_path / "scratch"
    source_a = source_class("minatar")(str(tmp_path / "a"), ReadOptions(resolution=(20, 20)))
    ref_a = source_a.list_episodes()[0]
    assert stage_episode(source_a, ref_a, str(staging / source_fingerprint(source_a)), 0) == (ref_a.id, None, None)
    args = ("ingest", "minatar", tmp_path / "b", "--resolution", "20x20")
    assert run_cli(*args, "--out", tmp_path / "b-store", "--staging", staging).returncode == 0
    assert run_cli(*args, "--out", tmp_path / "b-clean").returncode == 0
    assert_same_store(tmp_path / "b-clean", tmp_path / "b-store")
    assert (staging / source_fingerprint(source_a) / staging_key(ref_a.id)).exists()  # A's copy is left alone


def plain_zarr_group(folder: Path) -> None:
    import zarr

    group = zarr.open_group(str(folder), mode="w")
    group.create_array("data/frames", shape=(4, 2), dtype="uint8")[:] = 7


def store_without_manifest(folder: Path, clean: Path) -> None:
    os.system(f"cp -r '{clean}' '{folder}'")
    (folder / "manifest.json").unlink()


@pytest.mark.parametrize("kind", ["user-files", "plain-zarr", "store-without-manifest"])
def test_a_refused_folder_is_left_byte_identical(src, clean, tmp_path, kind):
    out = tmp_path / "theirs"
    if kind == "user-files":
        (out / "sub").mkdir(parents=True)
        (out / "sub" / "photo.bin").write_bytes(np.arange(256, dtype=np.uint8).tobytes())
        (out / ".hidden").write_text("keep me")
    elif kind == "plain-zarr":
        plain_zarr_group(out)
    else:
        store_without_manifest(out, clean)
    time.sleep(0.01)  # a write by the refused run would give the folder a newer mtime than this
    before = snapshot(out)
    result = run_cli(*ingest_args(src, out))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and str(out) in lines[0] and "refusing" in lines[0], result.stderr
    words = {"user-files": "not a dreamer store", "plain-zarr": "not a dreamer store",
             "store-without-manifest": "no manifest.json (deleted?)"}[kind]
    assert words in lines[0]
    assert snapshot(out) == before


def test_out_that_is_a_file_is_one_line(src, tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("not a folder")
    for out, words in ((target, "is a file, not a store directory"), (target / "store", "Not a directory")):
        result = run_cli(*ingest_args(src, out))
        assert result.returncode == 2 and "Traceback" not in result.stderr
        lines = error_lines(result.stderr)
        assert len(lines) == 1 and str(out) in lines[0] and words in lines[0], result.stderr
        assert "FileExistsError" not in result.stderr
    assert target.read_text() == "not a folder"


class MeanEncoder:
    """A small real encoder: each frame's 4 quadrant means per channel (enough to tokenize a store)."""

    image_size = (20, 20)
    patch_size = 10
    latent_shape = (4, 3)
    checkpoint_hash = "sha256:quadrant-means"
    description = {"checkpoint": "quadrant means"}

    def reset(self) -> None:
        pass

    def encode(self, frames: np.ndarray) -> np.ndarray:
        n = len(frames)
        quads = frames.reshape(n, 2, 10, 2, 10, 3).mean(axis=(2, 4)) / 255.0
        return quads.reshape(n, 4, 3)


def test_growing_a_tokenized_store_or_changing_settings_is_one_short_line(breakout_store, clean, src, tmp_path):
    store = tmp_path / "tokenized"
    os.system(f"cp -r '{breakout_store}' '{store}'")
    tokenize_store(str(store), MeanEncoder())
    before = snapshot(store)
    result = run_cli("ingest", "minatar", breakout_store.parent / "raw", "--out", store, "--resolution", "20x20",
                     "--workers", "0")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and len(lines[0]) < 300, result.stderr
    assert str(store) in lines[0] and "tokenized" in lines[0] and "new --out" in lines[0]
    assert {k: v for k, v in snapshot(store).items() if k != "."} == {k: v for k, v in before.items() if k != "."}

    copy = tmp_path / "store"
    os.system(f"cp -r '{clean}' '{copy}'")
    other = run_cli("ingest", "vpt", src, "--out", copy, "--resolution", "32x32", "--chunk-frames", "16")
    lines = error_lines(other.stderr)
    assert other.returncode == 2 and len(lines) == 1 and len(lines[0]) < 300, other.stderr
    assert str(copy) in lines[0] and "different observation (height): 36 there, 32 in this run" in lines[0]


FULL_DISK = r'''
set -u
mount -t tmpfs -o size=100k tmpfs "$WORK/small-store" || exit 99
mount -t tmpfs -o size=100k tmpfs "$WORK/small-staging" || exit 99
"$CLI" "$@" --out "$WORK/small-store/store" --staging "$WORK/staging" > /dev/null 2> "$WORK/full.err"
echo $? > "$WORK/full.rc"
"$CLI" "$@" --out "$WORK/store2" --staging "$WORK/small-staging/staging" > /dev/null 2> "$WORK/staging.err"
echo $? > "$WORK/staging.rc"
mount -o remount,size=64m "$WORK/small-store"
"$CLI" "$@" --out "$WORK/small-store/store" --staging "$WORK/staging" > /dev/null 2> "$WORK/resumed.err"
echo $? > "$WORK/resumed.rc"
cp -r "$WORK/small-store/store" "$WORK/resumed"
'''


def test_a_full_disk_is_one_line_naming_the_path_and_a_rerun_resumes(src, clean, tmp_path):
    """ENOSPC for real: 100 KiB tmpfs mounts in a user namespace hold the store, then the staging folder."""
    if subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"], capture_output=True).returncode:
        pytest.skip("this machine does not allow unprivileged user namespaces (needed to mount a small tmpfs)")
    for name in ("small-store", "small-staging"):
        (tmp_path / name).mkdir()
    script = tmp_path / "full_disk.sh"
    script.write_text(FULL_DISK)
    env = {**os.environ, "WORK": str(tmp_path), "CLI": cli_command()[0], "COLUMNS": "200"}
    flags = ingest_args(src, Path("unused"))[:3] + ingest_args(src, Path("unused"))[5:]
    done = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", str(script), *flags],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr

    for name, where in (("full", tmp_path / "small-store" / "store"),
                        ("staging", tmp_path / "small-staging" / "staging")):
        assert (tmp_path / f"{name}.rc").read_text().strip() == "2", name
        stderr = (tmp_path / f"{name}.err").read_text()
        lines = error_lines(stderr)
        assert len(lines) == 1 and "Traceback" not in stderr, stderr
        # the store, or the staging folder's sub-folder of this source (<staging>/<fingerprint>)
        assert re.search(rf"{re.escape(str(where))}(/[0-9a-f]{{16}})?: cannot write \(No space left on device\)",
                         lines[0]) and "rerun" in lines[0], lines[0]
        assert "failed:" not in stderr  # a full disk stops the run; it fails no episode
    assert read_manifest(tmp_path / "store2")["failed"] == []

    assert (tmp_path / "resumed.rc").read_text().strip() == "0", (tmp_path / "resumed.err").read_text()
    assert_same_store(clean, tmp_path / "resumed")
    assert leftovers(tmp_path / "resumed") == [] and not (tmp_path / "resumed" / ".write.lock").exists()


RACER = r'''
import os, random, sys, time
from dreamer_data.errors import StoreError
from dreamer_data.store.location import StoreLocation

store, rounds = sys.argv[1], int(sys.argv[2])
location, inside = StoreLocation(store), os.path.join(store, "inside")
held = 0
while held < rounds:
    try:
        lock = location.lock_for_writing()
    except StoreError:  # back off a little: four spinners on two busy cores can starve a preempted holder
        time.sleep(random.uniform(0, 0.001))
        continue
    os.close(os.open(inside, os.O_CREAT | os.O_EXCL | os.O_WRONLY))  # FileExistsError: two holders at once
    os.unlink(inside)
    lock.release()
    held += 1
'''


def test_deleting_the_lock_file_on_release_never_lets_two_writers_in(tmp_path):
    """Four processes take and release the lock as fast as they can; each marks its turn with an O_EXCL file."""
    store = tmp_path / "store"
    store.mkdir()
    script = tmp_path / "racer.py"
    script.write_text(RACER)
    racers = [subprocess.Popen([sys.executable, str(script), str(store), "300"], stderr=subprocess.PIPE, text=True)
              for _ in range(4)]
    results = [(racer.wait(timeout=300), racer.stderr.read()) for racer in racers]
    assert all(code == 0 for code, _ in results), [err for code, err in results if code][:1]
    assert sorted(os.listdir(store)) == []
