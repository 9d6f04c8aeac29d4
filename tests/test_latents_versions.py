"""Latents are atomic for readers: ``tokenize --overwrite`` writes a new version beside the published one.

Real processes: a reader process (``READER``: a ``WindowDataset`` with a chunk cache smaller than the
store's latents, a second one built but first read later, and a plain ``StoreReader``) opened on a
tokenized store, and writers that are the real CLI or ``WRITER`` (the checkpoint's own encoder, which
stops midway through its episodes until told to go on). The store is conftest's real breakout store.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

from conftest import read_manifest, run_cli
from dreamer_data import WindowDataset
from dreamer_data.errors import StoreError
from dreamer_data.store.reader import StoreReader
from dreamer_data.store.verify import verify_store
from dreamer_data.tokenize import tokenize_store
from test_store_locking import tokenizer_checkpoint
from test_tokenize_store import FailingEncoder, make_frame_store, mini_encoder

LENGTH = 8  # window length and stride of the reader's datasets
CACHE_BYTES = 64 * 1024  # one latents chunk (1024 rows x 4 x 8 float16): the store's latents are larger

READER = r'''
import json, sys
import numpy as np
from dreamer_data import WindowDataset
from dreamer_data.errors import StoreError
from dreamer_data.store.reader import StoreReader

store, saved, length, cache_bytes = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
window = WindowDataset(store, length, stride=length, load=["latents"], cache_bytes=cache_bytes)
late = WindowDataset(store, length, stride=length, load=["latents"], cache_bytes=cache_bytes)  # read later
plain = StoreReader(store)


def windows(dataset):
    for index in range(len(dataset)):
        yield dataset[index]["latents"].numpy()


def blocks():
    array = plain.array("latents")
    for start in range(0, plain.total_frames, 100):
        yield array[start:start + 100]


readers = {"window": lambda: windows(window), "late": lambda: windows(late), "plain": blocks}
before = {"window": list(windows(window)), "plain": list(blocks())}
before["late"] = before["window"]
starts = {episode["id"]: episode["start"] for episode in plain.episodes}
np.savez(saved, windows=np.stack(before["window"]), plain=np.concatenate(before["plain"]),
         first_rows=np.array([starts[ep] + offset for ep, offset in map(window.locate, range(len(window)))]))
print("ready", flush=True)
for line in sys.stdin:  # each line names the readers to run over everything once
    report = {}
    for name in line.split():
        read = same = 0
        error = None
        try:
            for got, expected in zip(readers[name](), before[name]):
                read += 1
                same += bool(np.array_equal(got, expected))
        except StoreError as caught:
            error = str(caught)
        report[name] = {"read": read, "same": same, "of": len(before[name]), "error": error}
    print(json.dumps(report), flush=True)
'''

WRITER = r'''
import sys
from dreamer_data.tokenize import tokenize_store
from dreamer_model.tokenizer.frame_encoder import TokenizerFrameEncoder

store, ckpt, pause_at = sys.argv[1], sys.argv[2], int(sys.argv[3])


class Gated(TokenizerFrameEncoder):
    """The checkpoint's own encoder; before episode ``pause_at`` it says so and waits for a line on stdin."""

    def reset(self):
        if self.episodes == pause_at:
            print("midway", flush=True)
            sys.stdin.readline()
        self.episodes += 1
        super().reset()


encoder = Gated.__new__(Gated)
encoder.__dict__.update(TokenizerFrameEncoder.from_checkpoint(ckpt, device="cpu").__dict__, episodes=0)
report = tokenize_store(store, encoder, overwrite=True)
print(f"done {report.frames} {report.path}", flush=True)
'''


def start(tmp_path: Path, name: str, script: str, *args) -> subprocess.Popen:
    path = tmp_path / f"{name}.py"
    path.write_text(script)
    return subprocess.Popen([sys.executable, str(path), *map(str, args)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=(tmp_path / f"{name}.err").open("w"), text=True)


def expect(process: subprocess.Popen, word: str) -> str:
    line = process.stdout.readline()
    assert line.startswith(word), f"expected {word!r}, got {line!r} (exit {process.poll()})"
    return line


def ask(reader: subprocess.Popen, *names: str) -> dict:
    reader.stdin.write(" ".join(names) + "\n")
    reader.stdin.flush()
    line = reader.stdout.readline()
    assert line, f"reader died (exit {reader.poll()})"
    return json.loads(line)


def published(store: Path) -> tuple[str, np.ndarray]:
    """The path the manifest publishes and the latents there, read with plain zarr."""
    manifest = read_manifest(store)
    path = manifest["latents"]["path"]
    assert manifest["fields"]["latents"]["path"] == path
    return path, zarr.open_group(str(store), mode="r")[path][:]


def latent_arrays(store: Path) -> list[str]:
    return sorted(f"data/{p.name}" for p in (store / "data").iterdir() if p.name.startswith("latents"))


def short(checkpoint_hash: str) -> str:
    return checkpoint_hash.removeprefix("sha256:")[:12]


def copy_of(breakout_store: Path, path: Path) -> Path:
    shutil.copytree(breakout_store, path)
    return path


def tokenize_cli(store: Path, ckpt: Path, *flags: str) -> str:
    done = run_cli("tokenize", store, "--ckpt", ckpt, "--device", "cpu", *flags)
    assert done.returncode == 0, done.stderr
    return done.stderr


def assert_reader_saw(saved: Path, latents: np.ndarray) -> None:
    """What the reader read when it opened is exactly ``latents`` (windows restated from their first rows)."""
    before = np.load(saved)
    assert np.array_equal(before["plain"], latents)
    assert np.array_equal(before["windows"], np.stack([latents[row:row + LENGTH] for row in before["first_rows"]]))


def test_a_reader_opened_before_an_overwrite_reads_its_latents_during_and_after(breakout_store, tmp_path):
    store = copy_of(breakout_store, tmp_path / "store")
    old_hash = tokenizer_checkpoint(tmp_path / "tok-a", seed=0)
    new_hash = tokenizer_checkpoint(tmp_path / "tok-b", seed=1)
    tokenize_cli(store, tmp_path / "tok-a")
    old_path, old = published(store)
    assert old_path == "data/latents" and old.nbytes > CACHE_BYTES and old.any()

    reader = start(tmp_path, "reader", READER, store, tmp_path / "before.npz", LENGTH, CACHE_BYTES)
    writer = None
    try:
        expect(reader, "ready")
        assert_reader_saw(tmp_path / "before.npz", old)

        writer = start(tmp_path, "writer", WRITER, store, tmp_path / "tok-b", 5)
        expect(writer, "midway")  # five episodes of the new checkpoint written, the manifest not yet swapped
        new_path = f"data/latents-v2-{short(new_hash)}"
        assert latent_arrays(store) == [old_path, new_path]
        assert read_manifest(store)["latents"]["checkpoint_hash"] == old_hash
        during = ask(reader, "window", "plain")
        for name, result in during.items():
            assert result["error"] is None and result["read"] == result["same"] == result["of"], (name, result)

        writer.stdin.write("go\n")
        writer.stdin.flush()
        assert expect(writer, "done").split()[2] == new_path
        assert writer.wait() == 0
        assert published(store)[0] == new_path and latent_arrays(store) == [old_path, new_path]
        after = ask(reader, "window", "plain", "late")  # "late" opens its arrays only now
        for name, result in after.items():
            assert result["error"] is None and result["read"] == result["same"] == result["of"], (name, result)
    finally:
        reader.stdin.close()
        reader.wait()
        if writer is not None and writer.poll() is None:
            writer.kill()
            writer.wait()

    # the new latents are exactly the checkpoint's (the same writer alone on a fresh copy), and verified
    clean = copy_of(breakout_store, tmp_path / "clean")
    alone = start(tmp_path, "alone", WRITER, clean, tmp_path / "tok-b", -1)
    expect(alone, "done")
    assert alone.wait() == 0
    _, new = published(store)
    assert np.array_equal(new, published(clean)[1]) and not np.array_equal(new, old)
    assert verify_store(str(store)) == []

    # a reader opened after the swap reads exactly the new latents
    opened_after = WindowDataset(str(store), LENGTH, stride=LENGTH, load=["latents"], cache_bytes=CACHE_BYTES)
    starts = {episode["id"]: episode["start"] for episode in read_manifest(store)["episodes"]}
    for index in range(len(opened_after)):
        episode, offset = opened_after.locate(index)
        row = starts[episode] + offset
        assert np.array_equal(opened_after[index]["latents"].numpy(), new[row:row + LENGTH])
    assert np.array_equal(StoreReader(str(store)).array("latents")[:], new)


def test_a_reader_whose_version_was_removed_gets_one_clear_error(breakout_store, tmp_path):
    store = copy_of(breakout_store, tmp_path / "store")
    hashes = [tokenizer_checkpoint(tmp_path / f"tok-{seed}", seed=seed) for seed in range(3)]
    tokenize_cli(store, tmp_path / "tok-0")
    _, first = published(store)
    reader = start(tmp_path, "reader", READER, store, tmp_path / "before.npz", LENGTH, CACHE_BYTES)
    try:
        expect(reader, "ready")
        assert_reader_saw(tmp_path / "before.npz", first)

        tokenize_cli(store, tmp_path / "tok-1", "--overwrite")  # the reader's version is kept: it was replaced
        second = f"data/latents-v2-{short(hashes[1])}"
        assert latent_arrays(store) == ["data/latents", second]
        for name, result in ask(reader, "window", "plain").items():
            assert result["error"] is None and result["read"] == result["same"] == result["of"], (name, result)

        said = tokenize_cli(store, tmp_path / "tok-2", "--overwrite")  # publishing v3 removes v1, the reader's
        third = f"data/latents-v3-{short(hashes[2])}"
        assert f"→ {third} (4x8 float16)" in said, said
        assert latent_arrays(store) == [second, third] and published(store)[0] == third
        removed = ask(reader, "window", "plain", "late")
    finally:
        reader.stdin.close()
        reader.wait()
    for name, result in removed.items():
        error = result["error"]
        assert error is not None and "\n" not in error, (name, result)
        assert str(store) in error and "(data/latents)" in error and "removed" in error, error
        assert result["same"] == result["read"] < result["of"], (name, result)  # what it read first: its own
    assert verify_store(str(store)) == []
    assert read_manifest(store)["latents"]["version"] == 3


def test_an_interrupted_overwrite_keeps_the_published_latents_and_resumes_bitwise(tmp_path):
    store = make_frame_store(tmp_path / "store", episodes=4)
    clean = make_frame_store(tmp_path / "clean", episodes=4)
    tokenize_store(store, mini_encoder(seed=0), batch_frames=5)
    tokenize_store(clean, mini_encoder(seed=1), batch_frames=5)
    old = zarr.open_group(store, mode="r")["data/latents"][:]
    with pytest.raises(KeyboardInterrupt):
        tokenize_store(store, FailingEncoder(mini_encoder(seed=1), fail_at=2), batch_frames=5, overwrite=True)
    manifest = read_manifest(store)
    assert manifest["latents"]["checkpoint_hash"] == "sha256:test-0" and manifest["latents"]["path"] == "data/latents"
    assert np.array_equal(StoreReader(store).array("latents")[:], old) and verify_store(store) == []

    report = tokenize_store(store, mini_encoder(seed=1), batch_frames=5, overwrite=True)
    assert (report.resumed_from, report.episodes, report.path) == (2, 2, "data/latents-v2-test1")
    assert np.array_equal(zarr.open_group(store, mode="r")["data/latents-v2-test1"][:],
                          zarr.open_group(clean, mode="r")["data/latents"][:])
    assert [e["checksums"] for e in read_manifest(store)["episodes"]] == \
        [e["checksums"] for e in read_manifest(clean)["episodes"]]
    assert np.array_equal(zarr.open_group(store, mode="r")["data/latents"][:], old)  # still there for readers
    assert verify_store(store) == []


def test_versions_are_never_rewritten_and_only_the_published_and_replaced_ones_stay(tmp_path):
    store = make_frame_store(tmp_path / "store")
    tokenize_store(store, mini_encoder(seed=0))
    first = zarr.open_group(store, mode="r")["data/latents"][:]
    tokenize_store(store, mini_encoder(seed=1), overwrite=True)
    with pytest.raises(KeyboardInterrupt):  # an abandoned run leaves an unpublished version behind
        tokenize_store(store, FailingEncoder(mini_encoder(seed=2), fail_at=1), overwrite=True)
    assert latent_arrays(Path(store)) == ["data/latents", "data/latents-v2-test1", "data/latents-v3-test2"]

    report = tokenize_store(store, mini_encoder(seed=0), overwrite=True)  # back to the first checkpoint
    assert report.path == "data/latents-v3-test0"  # a new path: readers of v1 must never see it rewritten
    assert latent_arrays(Path(store)) == ["data/latents-v2-test1", "data/latents-v3-test0"]
    assert np.array_equal(zarr.open_group(store, mode="r")["data/latents-v3-test0"][:], first)
    assert verify_store(store) == []

    # verify checks the published version's checksums, not the replaced one's (which it does not vouch for)
    zarr.open_group(store, mode="r+")["data/latents-v2-test1"][3] = 0
    assert verify_store(store) == []
    zarr.open_group(store, mode="r+")["data/latents-v3-test0"][3] = 0
    problems = verify_store(store)
    assert len(problems) == 1 and "data/latents-v3-test0 of episode ep0" in problems[0]


def test_a_published_version_missing_by_other_hands_is_named_as_missing(tmp_path):
    store = make_frame_store(tmp_path / "store")
    tokenize_store(store, mini_encoder(seed=0))
    tokenize_store(store, mini_encoder(seed=1), overwrite=True)
    shutil.rmtree(Path(store) / "data" / "latents-v2-test1")
    with pytest.raises(StoreError, match=r"manifest lists 'latents' but data/latents-v2-test1 is missing"):
        StoreReader(store).array("latents")


def test_shards_holding_another_checkpoints_latents_are_refused_not_streamed(tmp_path):
    """Shards copy the latents published when they were written; after ``--overwrite`` streaming them would
    train on the old checkpoint's latents with no error. Their manifest entry names the checkpoint."""
    from dreamer_data.loaders import StreamDataset
    from dreamer_data.store.wds import add_shards

    store = make_frame_store(tmp_path / "store")
    tokenize_store(store, mini_encoder(seed=0))
    add_shards(store, clip_length=4)
    assert {shard["latents"] for shard in read_manifest(Path(store))["wds"]["shards"]} == {"sha256:test-0"}
    streamed = np.concatenate([item["latents"].numpy() for item in StreamDataset(store, 4, load=["latents"],
                                                                                 shuffle=0)])
    reader = StoreReader(store)
    windowed = np.concatenate([reader.array("latents")[e["start"]:e["start"] + (e["length"] // 4) * 4]
                               for e in reader.episodes])
    assert np.array_equal(streamed, windowed)

    tokenize_store(store, mini_encoder(seed=1), overwrite=True)
    with pytest.raises(StoreError, match=r"shard-000000.tar: holds latents of checkpoint sha256:test-0, the store's "
                                         r"are of checkpoint sha256:test-1"):
        StreamDataset(store, 4, load=["latents"])
    assert len(list(StreamDataset(store, 4, load=["frames"], shuffle=0))) > 0  # frames still stream
