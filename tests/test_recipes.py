"""Dataset recipes (manifests/*.json) and VPT's index-file layout as a source."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import fsspec
import pytest

import makers
from conftest import assert_same_store, read_manifest, run_cli
from dreamer_data.errors import DreamerDataError
from dreamer_data.ingest import IngestPlan, ingest
from dreamer_data.recipes import load_recipe
from dreamer_data.sources import SOURCES, ReadOptions, source_class

MANIFESTS = Path(__file__).resolve().parent.parent / "manifests"
NAMES = ["cheeky-cornflower-setter-02e496ce4abb-20220421-092639", "lovely-persimmon-angora-4b4f3b4c1b9a-20220422",
         "squeaky-ultramarine-ox-1c0a7d3e2f11-20220423"]  # VPT-style names, listed out of order below


@pytest.fixture(scope="module")
def vpt_index(tmp_path_factory) -> Path:
    """VPT's layout: {"basedir": URL, "relpaths": ["data/6.10/NAME.mp4", …]}, files under basedir."""
    base = tmp_path_factory.mktemp("vpt-base")
    for seed, (version, name) in enumerate(zip(("6.10", "6.13", "6.10"), NAMES)):
        makers.write_vpt_episode(base / "data" / version, name, 12 + seed, seed=seed)
    relpaths = [f"data/6.13/{NAMES[1]}.mp4", f"data/6.10/{NAMES[2]}.mp4", f"data/6.10/{NAMES[0]}.mp4",
                "data/6.10/missing-episode-000000000000-20220424.mp4"]
    index = base / "all_6xx_test.json"
    index.write_text(json.dumps({"basedir": f"{base}/", "relpaths": relpaths}))
    return index


def test_shipped_recipes_load():
    recipes = sorted(MANIFESTS.glob("*.json"))
    assert recipes, "manifests/ holds no recipe"
    for path in recipes:
        recipe = load_recipe(path)
        assert recipe.kind in SOURCES and recipe.name == path.stem and recipe.version
    vpt = [load_recipe(p) for p in recipes if load_recipe(p).kind == "vpt"]
    assert vpt and all(r.location.endswith(".json") for r in vpt)  # VPT's published index files
    assert any(r.resolution == (64, 64) for r in vpt)


def test_index_file_lists_episodes_by_basename_id(vpt_index):
    refs = source_class("vpt")(str(vpt_index), ReadOptions()).list_episodes()
    assert [ref.id for ref in refs] == sorted([*NAMES, "missing-episode-000000000000-20220424"])
    first = refs[0]
    assert first.files["video"] == f"{vpt_index.parent}/data/6.10/{NAMES[0]}.mp4"
    assert first.files["actions"] == f"{vpt_index.parent}/data/6.10/{NAMES[0]}.jsonl"


def test_ingest_from_an_index_file(vpt_index, tmp_path):
    result = run_cli("ingest", "vpt", vpt_index, "--out", tmp_path / "store", "--resolution", "32x32")
    assert result.returncode == 1  # the listed episode that is not there
    manifest = read_manifest(tmp_path / "store")
    assert [e["id"] for e in manifest["episodes"]] == NAMES
    assert [e["length"] for e in manifest["episodes"]] == [12, 13, 14]
    assert [f["id"] for f in manifest["failed"]] == ["missing-episode-000000000000-20220424"]
    assert "missing partner file" in manifest["failed"][0]["reason"]
    assert manifest["source"]["uri"] == str(vpt_index)


def test_index_with_a_url_basedir(vpt_index):
    """The real index files name an https:// basedir; any fsspec URL works the same way."""
    url = f"memory://vpt-index-{uuid.uuid4().hex}"
    fs = fsspec.filesystem("memory")
    for path in (p for p in vpt_index.parent.rglob("*") if p.is_file()):
        fs.pipe_file(f"{url}/{path.relative_to(vpt_index.parent)}", path.read_bytes())
    index = json.loads(vpt_index.read_text())
    fs.pipe_file(f"{url}/index.json", json.dumps({"basedir": f"{url}/", "relpaths": index["relpaths"]}).encode())
    try:
        source = source_class("vpt")(f"{url}/index.json", ReadOptions(resolution=(32, 32)))
        assert source.list_episodes()[0].files["video"] == f"{url}/data/6.10/{NAMES[0]}.mp4"
        report = ingest(source, f"{url}/store", IngestPlan(workers=0))
        assert report.ingested == 3 and [f["id"] for f in report.failed] == ["missing-episode-000000000000-20220424"]
    finally:
        fs.rm(url, recursive=True)


@pytest.mark.parametrize("content, words", [
    ("{not json", "not a VPT index file"),
    (json.dumps({"relpaths": []}), "not a VPT index file"),
    (json.dumps({"basedir": "/x", "relpaths": ["a/ep.mp4", "b/ep.mp4"]}), "appears twice"),
])
def test_bad_index_files(tmp_path, content, words):
    index = tmp_path / "index.json"
    index.write_text(content)
    with pytest.raises(DreamerDataError, match=words):
        source_class("vpt")(str(index), ReadOptions()).list_episodes()
    result = run_cli("ingest", "vpt", index, "--out", tmp_path / "store")
    assert result.returncode == 2 and words in result.stderr and "Traceback" not in result.stderr


def write_recipe(path: Path, index: Path, **overrides) -> Path:
    recipe = {"name": path.stem, "version": "3", "description": "test recipe", "fps": 20,
              "source": {"kind": "vpt", "index": str(index)}, "resolution": "32x32", "format": "both",
              "clip_length": 8, "chunk_frames": 8, "video_backend": "pyav", "limit": 2, "length_tolerance": 1,
              **overrides}
    path.write_text(json.dumps(recipe))
    return path


def test_recipe_reproduces_a_store_exactly(vpt_index, tmp_path):
    recipe = write_recipe(tmp_path / "vpt-test.json", vpt_index)
    for out in ("a", "b"):
        result = run_cli("ingest", "vpt", "--manifest", recipe, "--out", tmp_path / out, "--workers", "2")
        assert result.returncode == 0, result.stderr
    assert_same_store(tmp_path / "a", tmp_path / "b")
    manifest = read_manifest(tmp_path / "a")
    assert [e["id"] for e in manifest["episodes"]] == NAMES[:2]  # limit 2 of the index's id order
    assert manifest["source"]["recipe"] == json.loads(recipe.read_text())
    assert manifest["source"]["settings"] == {"resolution": [32, 32], "video_backend": "pyav", "length_tolerance": 1}
    assert manifest["fields"]["frames"]["chunk_rows"] == 8 and manifest["wds"]["clip_length"] == 8

    def digests(store):
        return [hashlib.sha256((store / s["name"]).read_bytes()).hexdigest()
                for s in read_manifest(store)["wds"]["shards"]]

    assert digests(tmp_path / "a") == digests(tmp_path / "b")


def test_flags_override_the_recipe(vpt_index, tmp_path):
    recipe = write_recipe(tmp_path / "vpt-test.json", vpt_index)
    result = run_cli("ingest", "vpt", "--manifest", recipe, "--out", tmp_path / "s", "--limit", "1",
                     "--resolution", "16x16", "--format", "zarr")
    assert result.returncode == 0, result.stderr
    manifest = read_manifest(tmp_path / "s")
    assert [e["id"] for e in manifest["episodes"]] == NAMES[:1]
    assert manifest["observation"]["height"] == 16 and manifest.get("wds") is None


@pytest.mark.parametrize("overrides, kind, words", [
    ({"resolution": "big"}, "vpt", "resolution must look like 64x64"),
    ({"colour": "yes"}, "vpt", "unknown recipe keys ['colour']"),
    ({"source": {"kind": "vpt"}}, "vpt", "needs source.kind and source.index or source.path"),
    ({}, "minerl", "recipe is for 'vpt', not 'minerl'"),
])
def test_bad_recipes_are_one_line(vpt_index, tmp_path, overrides, kind, words):
    recipe = write_recipe(tmp_path / "bad.json", vpt_index, **overrides)
    result = run_cli("ingest", kind, "--manifest", recipe, "--out", tmp_path / "s")
    assert result.returncode == 2 and words in result.stderr and "Traceback" not in result.stderr


def test_unreachable_index_url_is_one_line(tmp_path):
    """No network (or no http backend) must still end in one line, not a traceback."""
    result = run_cli("ingest", "vpt", "http://127.0.0.1:9/all_6xx_Jun_29.json", "--out", tmp_path / "s")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len([line for line in result.stderr.splitlines() if "error" in line]) == 1
