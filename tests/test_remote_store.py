"""Stores and sources behind fsspec URLs: `memory://` (in this process) and `file://`."""

from __future__ import annotations

import json
import uuid

import fsspec
import numpy as np
import pytest
import zarr
from typer.testing import CliRunner

from cli.data import app
from conftest import assert_same_store, read_arrays, read_manifest, run_cli
from dreamer_data.ingest import IngestPlan, ingest
from dreamer_data.sources import ReadOptions, source_class
from dreamer_data.store.reader import StoreReader
from dreamer_data.store.verify import verify_store

SETTINGS = ["--resolution", "36x64", "--chunk-frames", "16"]  # as the vpt_store fixture


def invoke(*args: str):
    """The CLI in this process (the only way a memory:// store outlives the command)."""
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture
def memory_url():
    url = f"memory://stores/{uuid.uuid4().hex}"
    yield url
    fs = fsspec.filesystem("memory")
    if fs.exists(url):
        fs.rm(url, recursive=True)


def memory_arrays(url: str) -> dict[str, np.ndarray]:
    reader = StoreReader(url)
    arrays = {f"data/{name}": reader.array(name)[:] for name in reader.fields}
    return arrays | {"meta/episode_ends": reader.group["meta/episode_ends"][:]}


def assert_equal_to_local(url: str, local) -> None:
    arrays, local_arrays = memory_arrays(url), read_arrays(local)
    assert sorted(arrays) == sorted(local_arrays)
    for name, array in arrays.items():
        np.testing.assert_array_equal(array, local_arrays[name], err_msg=name)
    remote_manifest, local_manifest = StoreReader(url).manifest, read_manifest(local)
    assert [e["checksums"] for e in remote_manifest["episodes"]] == \
        [e["checksums"] for e in local_manifest["episodes"]]


def test_store_on_memory_url(vpt_src, vpt_store, memory_url):
    result = invoke("ingest", "vpt", vpt_src, "--out", memory_url, *SETTINGS, "--workers", "2",
                    "--format", "both")
    assert result.exit_code == 0, result.output
    fs = fsspec.filesystem("memory")
    assert fs.exists(f"{memory_url}/manifest.json") and fs.exists(f"{memory_url}/data/frames/zarr.json")
    assert not fs.glob(f"{memory_url}/**/*.tmp*") and not fs.exists(f"{memory_url}/.staging")
    assert_equal_to_local(memory_url, vpt_store)
    assert verify_store(memory_url) == []
    shards = StoreReader(memory_url).manifest["wds"]["shards"]
    assert shards and all(fs.exists(f"{memory_url}/{shard['name']}") for shard in shards)
    # plain zarr opens the URL too
    group = zarr.open_group(memory_url, mode="r")
    assert group["meta/episode_ends"][:].tolist() == [30, 71, 96]
    inspected = invoke("inspect", memory_url, "--json")
    assert inspected.exit_code == 0 and json.loads(inspected.stdout)["totals"]["frames"] == 96
    checked = invoke("verify", memory_url)
    assert checked.exit_code == 0, checked.output


def test_verify_on_memory_url_catches_a_flipped_byte(vpt_src, memory_url):
    assert invoke("ingest", "vpt", vpt_src, "--out", memory_url, *SETTINGS).exit_code == 0
    fs = fsspec.filesystem("memory")
    chunk = f"{memory_url}/data/frames/c/3/0/0/0"
    data = bytearray(fs.cat_file(chunk))
    data[len(data) // 2] ^= 0x04
    fs.pipe_file(chunk, bytes(data))
    result = invoke("verify", memory_url)
    assert result.exit_code == 1 and "data/frames" in result.output


def test_source_on_memory_url(vpt_src, vpt_store, memory_url):
    source_url = f"{memory_url}-src"
    fs = fsspec.filesystem("memory")
    for path in sorted(vpt_src.iterdir()):
        fs.pipe_file(f"{source_url}/{path.name}", path.read_bytes())
    try:
        source = source_class("vpt")(source_url, ReadOptions(resolution=(36, 64), frame_chunk_rows=16))
        assert [ref.id for ref in source.list_episodes()] == [f"player-{i}-2022_06_01" for i in range(3)]
        report = ingest(source, memory_url, IngestPlan(workers=0))  # memory:// lives in this process only
        assert report.ingested == 3 and report.failed == []
        assert_equal_to_local(memory_url, vpt_store)
        assert StoreReader(memory_url).manifest["source"]["uri"] == source_url
    finally:
        fs.rm(source_url, recursive=True)


def test_source_and_store_on_file_urls(vpt_src, vpt_store, tmp_path):
    out = tmp_path / "store"
    result = run_cli("ingest", "vpt", f"file://{vpt_src}", "--out", f"file://{out}", *SETTINGS, "--workers", "2")
    assert result.returncode == 0, result.stderr
    assert (out / "manifest.json").exists()  # a file:// URL is the local directory
    assert_same_store(vpt_store, out)
    assert run_cli("verify", f"file://{out}").returncode == 0
    assert json.loads(run_cli("inspect", f"file://{out}", "--json").stdout)["totals"]["episodes"] == 3
