"""`--format both`: webdataset shards that plain `webdataset.WebDataset(...)` iterates, equal to the zarr rows."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest
import webdataset
import zarr

import makers
from conftest import read_manifest, run_cli

CLIP = 16
LENGTHS = {"6_10/alpha": 40, "6_10/beta": 16, "7_1/gamma": 21}  # 3 clips (16+16+8), 1 clip, 2 clips (16+5)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    src = tmp_path_factory.mktemp("wds-src")
    for seed, (episode_id, frames) in enumerate(LENGTHS.items()):
        folder, name = episode_id.replace("_", ".").split("/")
        makers.write_vpt_episode(src / folder, name, frames, seed=seed)
    out = tmp_path_factory.mktemp("wds-store") / "store"
    result = run_cli("ingest", "vpt", src, "--out", out, "--resolution", "32x32", "--format", "both",
                     "--clip-length", str(CLIP))
    assert result.returncode == 0, result.stderr
    return out


def shard_urls(store) -> list[str]:
    return [str(store / shard["name"]) for shard in read_manifest(store)["wds"]["shards"]]


def expected_clips() -> list[tuple[str, int, int]]:
    return [(episode_id, start, min(CLIP, length - start))
            for episode_id, length in LENGTHS.items() for start in range(0, length, CLIP)]


def test_plain_webdataset_iterates_every_clip_in_order(store):
    samples = list(webdataset.WebDataset(shard_urls(store), shardshuffle=False))
    assert [s["__key__"] for s in samples] == [f"{e}/{start:08d}" for e, start, _ in expected_clips()]
    fields = read_manifest(store)["fields"]
    members = {f"{name.replace('/', '.')}.npy" for name in fields} | {"json"}
    for sample in samples:
        assert set(sample) - {"__key__", "__url__", "__local_path__"} == members


def test_members_equal_the_zarr_rows(store):
    group = zarr.open_group(str(store), mode="r")
    manifest = read_manifest(store)
    starts = {e["id"]: e["start"] for e in manifest["episodes"]}
    samples = webdataset.WebDataset(shard_urls(store), shardshuffle=False)
    for sample, (episode_id, start, length) in zip(samples, expected_clips(), strict=True):
        meta = json.loads(sample["json"])
        assert meta == {"episode": episode_id, "start": start, "length": length, "is_first": start == 0,
                        "is_last": start + length == LENGTHS[episode_id]}
        row = starts[episode_id] + start
        for name in manifest["fields"]:
            array = np.load(io.BytesIO(sample[f"{name.replace('/', '.')}.npy"]), allow_pickle=False)
            np.testing.assert_array_equal(array, group[f"data/{name}"][row:row + length], err_msg=name)
            assert array.dtype == group[f"data/{name}"].dtype


def test_webdataset_default_decoders_give_numpy(store):
    sample = next(iter(webdataset.WebDataset(shard_urls(store), shardshuffle=False).decode()))
    assert sample["frames.npy"].shape == (CLIP, 32, 32, 3) and sample["frames.npy"].dtype == np.uint8
    assert [makers.pattern_index(f) for f in sample["frames.npy"]] == list(range(CLIP))
    assert sample["actions.buttons.npy"].shape == (CLIP, 23)
    assert sample["json"]["episode"] == "6_10/alpha"


def test_manifest_describes_the_shards(store):
    manifest = read_manifest(store)
    wds = manifest["wds"]
    assert wds["clip_length"] == CLIP
    assert sum(shard["clips"] for shard in wds["shards"]) == len(expected_clips())
    assert sum(shard["frames"] for shard in wds["shards"]) == sum(LENGTHS.values())
    assert [e for shard in wds["shards"] for e in shard["episodes"]] == list(LENGTHS)
    for shard in wds["shards"]:
        with tarfile.open(store / shard["name"]) as tar:
            assert all(member.isfile() for member in tar.getmembers())


def test_verify_checks_shards(store, tmp_path):
    import shutil

    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    assert run_cli("verify", copy).returncode == 0
    shard = copy / read_manifest(copy)["wds"]["shards"][0]["name"]
    data = bytearray(shard.read_bytes())
    data[len(data) // 3] ^= 0x10
    shard.write_bytes(bytes(data))
    result = run_cli("verify", copy)
    assert result.returncode == 1 and "fails its checksum" in result.stderr and shard.name in result.stderr
