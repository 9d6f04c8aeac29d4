"""Checkpoints: the file format of every stage, and the loaders that rebuild each stage's model from one.

A run keeps ``RUN/checkpoints/step_00001000.pt``, written atomically (temp + rename).

A checkpoint holds everything a bit-exact resume needs (model, optimizer, loss normalisers, step,
config; the data order and the patch masks are pure functions of (seed, step), see the trainer)
plus ``model_hash``, the identity of the weights that ``tokenize`` records in a store's manifest.

Checkpoints are loaded with ``torch.load(weights_only=True)``: a ``.pt`` file is a pickle, and a full
unpickle runs whatever code the file names, so a checkpoint from someone else could run code before any
check of ours. What we save is plain data only (dicts, lists, tuples, str/int/float/bool/None, tensors,
``state_dict()`` OrderedDicts of models and optimizers), which ``weights_only`` accepts with no allow-list;
``save_checkpoint`` checks that by loading the bytes back before it writes, so no run can write a
checkpoint that its own resume would refuse. A file that ``weights_only`` refuses is reported as such,
and nothing in it has run.

Kinds: ``tokenizer``; ``dynamics`` (phase 1: the world model, its action fields and the store's latents entry);
``agent`` (phase 2 or 3: the agent's description, and the tokenizer that made the store's latents, config and
weights, because at evaluation the agent sees real frames through that same encoder). The loaders
(``load_tokenizer``, ``load_world_model``, ``load_agent``) are the one place a model is rebuilt from a file.
This module sits above the model packages (it builds their models) and below train/, eval/ and the CLI.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import re
from pathlib import Path
from typing import Any, Mapping

import torch

from dreamer_data.atomic import write_bytes_atomic
from dreamer_data.store.manifest import load_manifest

from .agent.model import Agent
from .dynamics.actions import fields_from_dicts
from .dynamics.model import DynamicsModel
from .errors import ModelError
from .presets import run_from_dict
from .tokenizer import Tokenizer

CHECKPOINT_DIR = "checkpoints"
TOKENIZER, WORLD_MODEL, AGENT = "tokenizer", "dynamics", "agent"  # the ``kind`` of each stage's checkpoints
_NAME = re.compile(r"step_(\d{8,})\.pt$")


def model_hash(state_dict: dict[str, torch.Tensor], config: dict) -> str:
    """sha256 over the config and every tensor (sorted by name): same weights → same hash."""
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode() + str(tensor.dtype).encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return f"sha256:{digest.hexdigest()}"


def checkpoint_path(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"step_{step:08d}.pt"


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.search(p.name))]
    return [p for _, p in sorted(found)]


def save_checkpoint(run_dir: str | Path, step: int, state: dict[str, Any], keep: int = 3) -> Path:
    """Write ``state`` for ``step`` atomically, then drop all but the newest ``keep`` checkpoints."""
    path = checkpoint_path(run_dir, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    try:  # the check load_checkpoint makes, here so that a non-plain value fails the saver, not a resume
        torch.load(buffer, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise TypeError(f"checkpoint state for {path} holds a value that weights_only loading refuses; "
                        f"save plain types (dict, list, str, int, float, tensor) instead: {error}") from None
    write_bytes_atomic(path, buffer.getvalue())
    for old in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
    return path


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or a run directory (→ its newest checkpoint)."""
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        found = list_checkpoints(path)
        if not found:
            raise ModelError(f"{path}: run directory has no checkpoints (expected {CHECKPOINT_DIR}/step_*.pt)")
        return found[-1]
    raise ModelError(f"{path}: no such checkpoint file or run directory")


def load_checkpoint(path: str | Path, kind: str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and check a checkpoint written by the ``kind`` trainer (e.g. "tokenizer").

    ``weights_only=True`` (see the module docstring): a file holding anything but plain data and tensors
    is refused with a ``ModelError`` before any object in it is built.
    """
    path = resolve_checkpoint(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:  # weights_only refused an object before constructing it
        named = re.search(r"GLOBAL (\S+)", str(error))
        what = f" ({named.group(1)})" if named else ""
        raise ModelError(f"{path}: refused, not loaded: it holds objects a checkpoint may not contain{what}, "
                         "which would run code when loaded; nothing in it was run") from None
    except Exception as error:  # torch.load raises many types for a torn or foreign file
        raise ModelError(f"{path}: unreadable checkpoint ({type(error).__name__}: {error})") from None
    if not isinstance(state, dict) or state.get("kind") != kind:
        found = state.get("kind") if isinstance(state, dict) else type(state).__name__
        raise ModelError(f"{path}: not a {kind} checkpoint (found {found!r})")
    state["path"] = str(path)
    return state


# ------------------------------------------------------------------------------------------------ loaders

def tokenizer_from_record(record: Mapping, source: str) -> Tokenizer:
    """A tokenizer (eval mode) from its config and weights: a tokenizer checkpoint, or the record in an agent's."""
    run = run_from_dict("tokenizer", record["config"], source)
    model = Tokenizer(run.tokenizer)
    model.load_state_dict(record["model"])
    return model.eval()


def load_tokenizer(path: str | Path, device: str | torch.device = "cpu") -> tuple[Tokenizer, dict]:
    """A trained tokenizer (eval mode) and its checkpoint state, from a run directory or file."""
    state = load_checkpoint(path, TOKENIZER)
    return tokenizer_from_record(state, state["path"]).to(device), state


def tokenizer_record(latents: Mapping, store: str) -> dict:
    """The tokenizer that produced the store's latents: config, weights and hash (checked), as an agent keeps it."""
    path = ((latents.get("tokenizer") or {}).get("checkpoint"))
    if not path:
        raise ModelError(f"{store}: the manifest's latents entry names no tokenizer checkpoint")
    if not Path(path).exists():
        raise ModelError(f"{path}: tokenizer checkpoint that made {store}'s latents is missing (the agent "
                         f"needs it to see real frames at evaluation)")
    state = load_checkpoint(path, TOKENIZER)
    if state.get("model_hash") != latents.get("checkpoint_hash"):
        raise ModelError(f"{path}: tokenizer weights (hash {state.get('model_hash')}) are not the ones that made "
                         f"{store}'s latents ({latents.get('checkpoint_hash')})")
    return {"config": state["config"], "model": state["model"], "model_hash": state["model_hash"], "path": path}


def load_store_tokenizer(store: str, override: str | None = None, device: str | torch.device = "cpu") -> Tokenizer:
    """The tokenizer whose encoder produced ``store``'s latents (eval mode), checked by weight hash; ``override``
    names another checkpoint of the same weights."""
    entry = load_manifest(store).get("latents") or {}
    path = override or (entry.get("tokenizer") or {}).get("checkpoint")
    if not path:
        raise ModelError(f"{store}: the manifest names no tokenizer checkpoint for its latents; pass --tokenizer CKPT")
    tokenizer, state = load_tokenizer(path, device)
    recorded = entry.get("checkpoint_hash")
    if recorded and state.get("model_hash") != recorded:
        raise ModelError(f"{state['path']}: tokenizer weights {state.get('model_hash')} are not the ones that "
                         f"produced {store}'s latents ({recorded})")
    return tokenizer


def load_world_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[DynamicsModel, dict]:
    """A trained dynamics model (eval mode) and its checkpoint state, from a run directory or file."""
    state = load_checkpoint(path, WORLD_MODEL)
    run = run_from_dict("phase1", state["config"], state["path"])
    model = DynamicsModel(run.dynamics, fields_from_dicts(state["action_fields"]))
    model.load_state_dict(state["model"])
    return model.to(device).eval(), state


def load_agent(path: str | Path, device: str | torch.device = "cpu") -> tuple[Agent, dict]:
    """A phase-2 or phase-3 agent (eval mode) and its checkpoint state."""
    state = load_checkpoint(path, AGENT)
    agent = Agent.from_description(state["agent"], state["path"])
    agent.load_state_dict(state["model"])
    return agent.to(device).eval(), state
