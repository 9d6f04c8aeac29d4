"""Checkpoints load with ``weights_only=True``: a hostile ``.pt`` is refused before any code in it runs.

The hostile file is a real ``torch.save`` of an object whose ``__reduce__`` creates a marker file when
unpickled; the test first shows that a full unpickle does create the marker (so the file really is
hostile), then that ``load_checkpoint`` refuses it in one line naming the file and the marker stays absent.
"""

from __future__ import annotations

import pathlib

import pytest
import torch

from dreamer_model.errors import ModelError
from dreamer_model.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint


class _TouchOnLoad:
    """Unpickling this calls ``pathlib.Path.touch(marker)``: code run by merely loading the file."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def _hostile_checkpoint(run_dir: pathlib.Path, marker: pathlib.Path) -> pathlib.Path:
    """A file where a checkpoint belongs, shaped like one, with the hostile object inside its config."""
    path = checkpoint_path(run_dir, 1)
    path.parent.mkdir(parents=True)
    torch.save({"kind": "tokenizer", "step": 1, "model": {"w": torch.zeros(2)},
                "config": {"tokenizer": _TouchOnLoad(marker)}}, path)
    return path


def test_hostile_checkpoint_is_refused_and_runs_nothing(tmp_path):
    # The same kind of file does run code under a full unpickle: the test is about a real threat.
    probe_marker = tmp_path / "probe_marker"
    probe = _hostile_checkpoint(tmp_path / "probe", probe_marker)
    torch.load(probe, weights_only=False)
    assert probe_marker.exists()

    marker = tmp_path / "marker"
    path = _hostile_checkpoint(tmp_path / "run", marker)
    for target in (path, tmp_path / "run"):  # the file itself, or its run directory (→ newest checkpoint)
        with pytest.raises(ModelError) as caught:
            load_checkpoint(target, "tokenizer")
        message = str(caught.value)
        assert "\n" not in message
        assert message.startswith(f"{path}: refused, not loaded")
        assert "objects a checkpoint may not contain" in message and "run code" in message
        assert "may not contain (" in message  # names the first global it refused (here getattr or touch)
        assert caught.value.__cause__ is None and caught.value.__suppress_context__
        assert not marker.exists()


def test_every_plain_type_we_save_round_trips(tmp_path):
    """What the trainers save: nested dicts/lists of plain values, model and optimizer state dicts,
    a generator state (ByteTensor), loss-normaliser state; all of it loads under weights_only."""
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95))
    model(torch.ones(4, 3)).sum().backward()
    optimizer.step()
    state = {"kind": "dynamics", "version": 1, "step": 7, "seed": 3, "model_hash": "sha256:00",
             "config": {"train": {"lr": 1e-3, "sets": ["a=1"], "size": (64, 64), "none": None, "on": True}},
             "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "rng": torch.Generator().manual_seed(5).get_state(),
             "loss_norm": {"mean": torch.tensor(0.5, dtype=torch.float64), "count": 12},
             "data": {"store": str(tmp_path / "store"), "heldout": ["ep_0001", "ep_0002"]}}
    save_checkpoint(tmp_path, 7, state)
    loaded = load_checkpoint(tmp_path, "dynamics")
    assert loaded["config"] == state["config"] and loaded["data"] == state["data"]
    assert torch.equal(loaded["rng"], state["rng"]) and loaded["rng"].dtype == torch.uint8
    for name, tensor in state["model"].items():
        assert torch.equal(loaded["model"][name], tensor)
    restored = torch.optim.AdamW(torch.nn.Linear(3, 2).parameters())
    restored.load_state_dict(loaded["optimizer"])
    assert restored.state_dict()["param_groups"] == optimizer.state_dict()["param_groups"]


def test_saver_refuses_a_value_that_loading_would_refuse(tmp_path):
    """A saver that put a non-plain object in a checkpoint fails at save time and writes no file,
    rather than producing a checkpoint its own resume cannot read."""
    with pytest.raises(TypeError, match="weights_only"):
        save_checkpoint(tmp_path, 1, {"kind": "tokenizer", "data": {"store": pathlib.Path("store")}})
    assert not (tmp_path / "checkpoints").exists() or not any((tmp_path / "checkpoints").iterdir())
