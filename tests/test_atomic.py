"""dreamer_data.atomic: the one temp-file-and-rename every small-file writer (checkpoints, manifests, rollouts,
images, recordings) goes through. A real process killed inside the block, and an exception, leave the old file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from dreamer_data.atomic import replacing, write_bytes_atomic
from dreamer_data.store.location import is_temp_file
from dreamer_model.checkpoint import save_checkpoint

KILLED_MID_WRITE = r'''
import sys, time
from dreamer_data.atomic import replacing
with replacing(sys.argv[1]) as tmp:
    with open(tmp, "wb") as handle:
        handle.write(b"half of the new")
        handle.flush()
        print("writing", flush=True)
        time.sleep(60)
'''


def test_a_writer_killed_mid_write_leaves_the_old_file_and_a_temp_the_store_cleans(tmp_path):
    target = tmp_path / "manifest.json"
    target.write_bytes(b"old")
    writer = subprocess.Popen([sys.executable, "-c", KILLED_MID_WRITE, str(target)], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "writing"
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)
    assert target.read_bytes() == b"old"
    left = [p.name for p in tmp_path.iterdir() if p != target]
    assert len(left) == 1 and is_temp_file(left[0]), left  # a store's next writer removes it


def test_an_error_in_the_block_leaves_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "summary.json"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with replacing(target) as tmp:
            tmp.write_bytes(b"new but unfinished")
            raise RuntimeError("the writer failed")
    assert target.read_bytes() == b"old" and sorted(tmp_path.iterdir()) == [target]


def test_files_get_the_mode_a_plain_open_gives_not_mkstemps_0600(tmp_path):
    """A checkpoint shared on a cluster must be readable by whoever the umask allows, as any other file."""
    old = os.umask(0o022)
    try:
        data = write_bytes_atomic(tmp_path / "data.bin", b"x")
        checkpoint = save_checkpoint(tmp_path / "run", 1, {"step": 1})
        with replacing(tmp_path / "frames.png", suffix=".png") as tmp:
            tmp.write_bytes(b"png")
    finally:
        os.umask(old)
    for path in (data, checkpoint, tmp_path / "frames.png"):
        assert path.stat().st_mode & 0o777 == 0o644, path
