"""What the model side reads from a store's manifest (docs/FORMAT.md), with one clear error each: the latents
entry, the action fields, the fields a training window loads, and the environment the data was recorded in."""

from __future__ import annotations

from typing import Mapping

from dreamer_data.collect.minatar_render import LEGACY_DRAW_ORDER
from dreamer_data.errors import DreamerDataError
from dreamer_data.store.fields import HAS_ACTION, LATENTS
from dreamer_data.store.manifest import load_manifest

from .dynamics.actions import ActionField, action_fields
from .errors import ModelError


def read_manifest(store: str) -> dict:
    try:
        return load_manifest(store)
    except DreamerDataError as error:
        raise ModelError(str(error)) from None


def latents_entry(manifest: Mapping, store: str) -> dict:
    """The manifest's ``latents`` entry (shape, tokenizer checkpoint and hash); phases 1-3 train on them."""
    entry = manifest.get("latents")
    if LATENTS not in manifest.get("fields", {}) or not entry:
        raise ModelError(f"{store}: store has no latents; run `dreamer-data tokenize {store} --ckpt TOKENIZER_RUN` "
                         f"first (phases 1-3 train on cached latents only)")
    return entry


def store_action_fields(manifest: Mapping, store: str) -> tuple[list[ActionField], bool]:
    """(the action fields the world model reads, whether the store has a ``has_action`` field)."""
    fields = action_fields(manifest.get("actions"), f"{store}/manifest.json")
    missing = [f.store_field for f in fields if f.store_field not in manifest["fields"]]
    if missing:
        raise ModelError(f"{store}: manifest describes actions {', '.join(missing)} but the store has no such field")
    return fields, HAS_ACTION in manifest["fields"]


def world_model_fields(fields: list[ActionField], has_action: bool) -> tuple[str, ...]:
    """The store fields of a world model's training window: latents, the action fields, ``has_action``."""
    return (LATENTS, *[f.store_field for f in fields], *((HAS_ACTION,) if has_action else ()))


def env_settings(manifest: Mapping, store: str) -> dict:
    """The environment the store was recorded in (for evaluation), from its manifest."""
    source = manifest.get("source", {})
    kind = source.get("kind")
    observation = manifest.get("observation", {})
    size = [int(observation.get("height", 64)), int(observation.get("width", 64))]
    collect = (source.get("settings") or {}).get("collect") or {}
    if kind == "minatar":
        return {"env": "minatar", "game": observation.get("game") or collect.get("game"),
                "sticky_prob": float(collect.get("sticky_action_prob", 0.1)),
                "ramping": bool(collect.get("difficulty_ramping", True)),
                "max_steps": int(collect.get("max_steps") or 10000), "size": size,
                "palette": observation.get("palette", "cubehelix"),  # stores from before the palette key: cubehelix
                "draw_order": observation.get("draw_order", LEGACY_DRAW_ORDER)}
    if kind == "crafter":
        return {"env": "crafter", "game": None, "sticky_prob": 0.0, "ramping": False,
                "max_steps": int(collect.get("max_steps") or 10000), "size": size}
    return {"env": kind, "game": None, "size": size}  # not playable here (e.g. VPT): eval refuses it
