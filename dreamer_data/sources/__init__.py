"""Raw-data sources, by the kind name the CLI uses (``dreamer-data ingest KIND``)."""

from __future__ import annotations

from importlib import import_module

from .base import EpisodeRef, ReadOptions, Source

# kind → "module:Class"; imported lazily so one source's optional dependencies never block another.
SOURCES: dict[str, str] = {
    "vpt": "dreamer_data.sources.vpt:VptSource",
    "minerl": "dreamer_data.sources.minerl:MineRLSource",
    "crafter": "dreamer_data.sources.crafter:CrafterSource",
    "minatar": "dreamer_data.sources.minatar:MinAtarSource",
    "lerobot": "dreamer_data.sources.lerobot:LeRobotSource",
}


def source_class(kind: str) -> type[Source]:
    from ..errors import DreamerDataError

    if kind not in SOURCES:
        raise DreamerDataError(f"unknown source kind {kind!r}; choose from {', '.join(SOURCES)}")
    module, name = SOURCES[kind].split(":")
    return getattr(import_module(module), name)


__all__ = ["EpisodeRef", "ReadOptions", "SOURCES", "Source", "source_class"]
