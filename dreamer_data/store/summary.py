"""inspect: the numbers a person wants to see about a store."""

from __future__ import annotations

import numpy as np

from ..scores import crafter_score, episode_unlocks, success_rates
from .reader import StoreReader


def summarize(reader: StoreReader) -> dict:
    """Counts, duration, sizes and (where present) return statistics of a store."""
    manifest = reader.manifest
    observation = manifest["observation"]
    frames = reader.total_frames
    raw_bytes = sum(frames * int(np.prod(spec.shape, dtype=np.int64)) * np.dtype(spec.dtype).itemsize
                    for spec in reader.fields.values())
    array_bytes = reader.location.bytes_on_disk("data") + reader.location.bytes_on_disk("meta")
    summary = {
        "store": reader.location.root,
        "source": manifest["source"]["kind"],
        "episodes": len(reader.episodes),
        "failed": len(manifest["failed"]),
        "frames": frames,
        "hours": frames / observation["fps"] / 3600 if observation.get("fps") else None,
        "resolution": f"{observation['height']}x{observation['width']}x{observation['channels']}",
        "fps": observation.get("fps"),
        "actions": {name: f"{spec['kind']}[{spec['size']}]" for name, spec in manifest["actions"].items()},
        "fields": sorted(reader.fields),
        "video_fields": {name: spec.video.to_json() for name, spec in reader.fields.items() if spec.video},
        "bytes_on_disk": reader.location.bytes_on_disk(),
        "array_bytes": array_bytes,
        "raw_bytes": raw_bytes,
        "compression_ratio": raw_bytes / array_bytes if array_bytes else None,
        "bytes_per_frame": array_bytes / frames if frames else None,
        "wds_shards": len((manifest.get("wds") or {}).get("shards", [])),
        "latents": manifest.get("latents"),
    }
    if manifest["rewards"]["present"] and frames:
        rewards = reader.array("rewards")[:]
        returns = np.array([rewards[e["start"]:e["end"]].sum() for e in reader.episodes])
        lengths = np.array([e["length"] for e in reader.episodes])
        summary["returns"] = {"mean": float(returns.mean()), "std": float(returns.std()),
                              "min": float(returns.min()), "max": float(returns.max()),
                              "mean_length": float(lengths.mean())}
    if "achievements" in reader.fields and frames:
        ends = np.array([e["end"] for e in reader.episodes])
        unlocked = episode_unlocks(reader.array("achievements")[:frames], ends)
        summary["achievements"] = {"episodes": dict(zip(observation["achievements"], unlocked.sum(0).tolist())),
                                   "score": crafter_score(success_rates(unlocked))}
    return summary
