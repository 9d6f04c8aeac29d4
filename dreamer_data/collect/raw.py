"""The raw episode format written by ``dreamer-data collect`` and read by ``ingest crafter|minatar``.

```
RAW/
  collect.json            # the run: env, game, policy, epsilon, seed, sticky prob, max steps, versions
  episodes/000000.npz     # one episode per file, written to a temp name and renamed when complete
  episodes/000001.npz …   # file number = episode index; its seeds derive from (run seed, index)
```

Each episode file is a plain ``.npz`` (zip of ``.npy``; ``numpy.load`` reads it, no pickle) with
L = steps + 1 rows in the store's time convention — row t holds observation t, the action taken
after seeing it, and the reward / terminal flag that action produced; the last row is the final
observation with a null action:

| member | shape, dtype | meaning |
|---|---|---|
| ``frames`` (Crafter) | (L, 64, 64, 3) uint8 | RGB observation, native resolution, lossless |
| ``obs`` (MinAtar) | (L, 10, 10, C) uint8 | binary observation grid, channel order of the game |
| ``actions`` | (L,) int64 | the policy's action after observation t; 0 on the last row |
| ``rewards`` | (L,) float32 | reward of that action; 0 on the last row |
| ``is_terminal`` | (L,) uint8 | 1 on the row whose action ended the episode (not for a time limit) |
| ``has_action`` | (L,) uint8 | 1, except 0 on the last row |
| ``achievements`` (Crafter) | (L, 22) uint8 | increase of each achievement counter caused by the row's action |
| ``inventory`` (Crafter) | (L, 16) uint8 | inventory shown with observation t |
| ``semantic`` (Crafter) | (L, 7, 9) uint8 | id of each tile observation t shows (runs whose collect.json has ``semantic_view``) |
| ``executed_actions`` (MinAtar) | (L,) int64 | the action MinAtar executed (the previous one when it stuck) |
| ``info`` | () str | JSON: the environment settings (seed, …), policy, policy seed, steps, return, … |

Unlike Crafter's own recorder (whose row t holds the action that *led to* frame t), nothing needs
shifting here. An episode is held in memory while it runs (a 10,000-step Crafter episode is
about 125 MB) and compressed with zlib (level 1) when written.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from ..errors import DreamerDataError, EpisodeError

RUN_FILE = "collect.json"
EPISODE_DIR = "episodes"
RAW_FORMAT = "dreamer-raw"
RAW_FORMAT_VERSION = 1
ROW_MEMBERS = ("actions", "rewards", "is_terminal", "has_action")
ZLIB_LEVEL = 1


def episode_name(index: int) -> str:
    return f"{index:06d}.npz"


def write_episode(path: Path, rows: dict[str, np.ndarray], info: dict) -> None:
    """Write one episode atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    members = {**rows, "info": np.array(json.dumps(info))}
    try:
        # np.savez_compressed, but at zlib level 1: several times faster, and nearly as small on these arrays.
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=ZLIB_LEVEL) as archive:
            for name, array in members.items():
                with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_episode(data: bytes | Path, file: str, observation: str) -> tuple[dict[str, np.ndarray], dict]:
    """(rows, info) of one episode file; ``observation`` is the member holding observations.

    Raises ``EpisodeError`` naming ``file`` when the file is not a complete, consistent episode.
    """
    source = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        with np.load(source, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise EpisodeError(file, f"not a readable npz episode ({error})") from None
    missing = [key for key in (observation, *ROW_MEMBERS, "info") if key not in arrays]
    if missing:
        raise EpisodeError(file, f"missing member(s) {', '.join(missing)}")
    try:
        info = json.loads(str(arrays.pop("info")))
    except json.JSONDecodeError as error:
        raise EpisodeError(file, f"malformed info JSON ({error})") from None
    length = len(arrays[observation])
    wrong = {key: len(value) for key, value in arrays.items() if value.ndim == 0 or len(value) != length}
    if wrong:
        raise EpisodeError(file, f"members disagree on the row count ({observation} has {length}, "
                                 f"{', '.join(f'{k} has {v}' for k, v in wrong.items())})")
    if length == 0 or arrays["has_action"][-1] != 0:
        raise EpisodeError(file, "episode does not end with the final observation's null-action row")
    return arrays, info


def write_run(raw: Path, settings: dict) -> dict:
    """Create ``RAW/collect.json``, or check a resumed run uses the same settings; returns them."""
    raw = Path(raw)
    (raw / EPISODE_DIR).mkdir(parents=True, exist_ok=True)
    path = raw / RUN_FILE
    settings = {"format": RAW_FORMAT, "format_version": RAW_FORMAT_VERSION, **settings}
    if path.exists():
        previous = read_run(raw)
        changed = [key for key in settings if key != "episodes" and previous.get(key) != settings[key]]
        if changed:
            details = ", ".join(f"{key} {previous.get(key)!r} → {settings[key]!r}" for key in changed)
            raise DreamerDataError(f"{path}: this folder was collected with other settings ({details}); "
                                   f"use another --out or the same settings")
        settings["episodes"] = max(previous.get("episodes", 0), settings.get("episodes", 0))
    tmp = path.with_name(f".{RUN_FILE}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(settings, indent=1) + "\n")
    os.replace(tmp, path)
    return settings


def read_run(raw: Path | str, text: str | None = None) -> dict:
    """The run settings of a RAW folder (``text``: the file's content, when already fetched)."""
    path = f"{str(raw).rstrip('/')}/{RUN_FILE}"
    try:
        settings = json.loads(text if text is not None else Path(path).read_text())
    except FileNotFoundError:
        raise DreamerDataError(f"{path}: missing; is this a folder written by `dreamer-data collect`?") from None
    except (OSError, json.JSONDecodeError) as error:
        raise DreamerDataError(f"{path}: unreadable ({error})") from None
    if not isinstance(settings, dict) or settings.get("format") != RAW_FORMAT:
        raise DreamerDataError(f"{path}: not a {RAW_FORMAT} run file")
    if settings.get("format_version", 0) > RAW_FORMAT_VERSION:
        raise DreamerDataError(f"{path}: raw format v{settings['format_version']} is newer than this dreamer")
    return settings
