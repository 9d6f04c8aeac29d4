"""What the play server loads once: the world model, the decoder of the store's latents, and the store,
checked against each other before any page is served.

Each mismatch is one ``ModelError`` naming the file and the difference: a store whose latents have
another shape than the world model reads, or were made by another tokenizer than the one the world
model was trained on, whose actions differ, or whose frames have another size than the decoder draws.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import torch

from ..checkpoint import load_store_tokenizer, load_world_model
from ..dynamics import DynamicsModel
from ..errors import ModelError
from ..nn.transformer import use_bf16
from ..stores import latents_entry, read_manifest, store_action_fields
from ..tokenizer import Tokenizer
from .controls import Controls, controls_for


@dataclass
class World:
    """A checked (world model, decoder, store) triple and what the page shows about it."""

    model: DynamicsModel
    tokenizer: Tokenizer
    store: str
    manifest: dict
    controls: Controls
    checkpoint: str
    step: int
    heldout: list[str]
    device: torch.device
    lock: threading.Lock = field(default_factory=threading.Lock)  # one generation at a time on the device

    def __post_init__(self) -> None:
        # On CUDA both transformers generate under bf16 autocast, as the trainers train them there (train.bf16's
        # default); on a CPU in float32 (emulated bf16 is slower there).
        on_cuda = self.device.type == "cuda"
        use_bf16(self.model, on_cuda)
        use_bf16(self.tokenizer, on_cuda)

    @property
    def fps(self) -> float:
        return float(self.manifest.get("observation", {}).get("fps") or 20)

    def episodes(self, context: int) -> list[dict]:
        """The store's episodes long enough for ``context`` real frames: [{id, length}] in store order."""
        return [{"id": e["id"], "length": int(e["length"])} for e in self.manifest["episodes"]
                if int(e["length"]) >= context]


def _check_store(model: DynamicsModel, state: dict, store: str, manifest: dict) -> None:
    latents = latents_entry(manifest, store)
    shape = tuple(latents.get("shape") or ())
    if shape != tuple(model.latent_shape):
        raise ModelError(f"{store}: latents are {shape} per frame but the world model {state['path']} reads "
                         f"{tuple(model.latent_shape)}")
    trained_on = (state.get("latents") or {}).get("checkpoint_hash")
    if trained_on and latents.get("checkpoint_hash") != trained_on:
        raise ModelError(f"{store}: latents were made by tokenizer {latents.get('checkpoint_hash')}, but the world "
                         f"model {state['path']} was trained on latents of {trained_on}")
    fields, _ = store_action_fields(manifest, store)
    ours = sorted((f.name, f.kind, f.size) for f in fields)
    theirs = sorted((f.name, f.kind, f.size) for f in model.action_fields)
    if ours != theirs:
        raise ModelError(f"{store}: actions {ours} differ from the world model's {theirs} ({state['path']})")


def load_world(ckpt: str, store: str | None, device: torch.device) -> World:
    """The world model of ``ckpt`` with the store it plays in (default: the store it was trained on)."""
    model, state = load_world_model(ckpt, device)
    store = store or (state.get("data") or {}).get("store")
    if not store:
        raise ModelError(f"{state['path']}: the checkpoint names no store; pass --data STORE")
    manifest = read_manifest(store)
    _check_store(model, state, store, manifest)
    tokenizer = load_store_tokenizer(store, None, device)
    observation = manifest.get("observation", {})
    size = (observation.get("height"), observation.get("width"))
    if size != (tokenizer.cfg.height, tokenizer.cfg.width):
        raise ModelError(f"{store}: frames are {size[0]}x{size[1]} but its tokenizer draws "
                         f"{tokenizer.cfg.height}x{tokenizer.cfg.width}")
    controls = controls_for(manifest.get("actions"), model.action_fields)
    heldout = list((state.get("data") or {}).get("heldout") or [])
    return World(model, tokenizer, store, manifest, controls, state["path"], int(state["step"]), heldout,
                 torch.device(device))
