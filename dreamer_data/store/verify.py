"""verify: re-read every byte the manifest vouches for and compare counts and checksums."""

from __future__ import annotations

import hashlib
from typing import Callable

import numpy as np

from ..errors import StoreError
from .reader import StoreReader
from .video_field import verify_video_field
from .writer import EPISODE_ENDS


def _unreadable(where: str, what: str, error: Exception) -> str:
    """One line naming the store and the array: a corrupt chunk or zarr.json surfaces as a codec, JSON or
    zarr error of any type, whose own message names neither."""
    return f"{where}: {what} unreadable ({type(error).__name__}: {error})"


def verify_store(root: str, progress: Callable[[int, int], None] | None = None) -> list[str]:
    """Return one line per problem found (empty list: the store is intact)."""
    try:
        reader = StoreReader(root)
    except StoreError as error:
        return [str(error)]
    except Exception as error:  # a corrupt root zarr.json surfaces as a JSON or zarr error
        return [_unreadable(root, "zarr.json (the root group)", error)]
    problems: list[str] = []
    episodes, total = reader.episodes, reader.total_frames
    where = reader.location.root

    expected_start = 0
    for episode in episodes:
        if episode["start"] != expected_start or episode["end"] - episode["start"] != episode["length"]:
            problems.append(f"{where}: episode {episode['id']} has inconsistent offsets "
                            f"start={episode['start']} end={episode['end']} length={episode['length']}")
        expected_start = episode["end"]
    if expected_start != total:
        problems.append(f"{where}: manifest totals say {total} frames but episodes end at {expected_start}")
    try:
        ends = reader.group[EPISODE_ENDS][:]
    except KeyError:
        problems.append(f"{where}: {EPISODE_ENDS} is missing")
    except Exception as error:
        problems.append(_unreadable(where, EPISODE_ENDS, error))
    else:
        if not np.array_equal(ends, [e["end"] for e in episodes]):
            problems.append(f"{where}: {EPISODE_ENDS} does not match the manifest's episode ends")

    for name, spec in reader.fields.items():
        if spec.video is not None:
            problems.extend(verify_video_field(reader, spec))
            continue
        try:
            array = reader.array(name)
        except StoreError as error:
            problems.append(str(error))
            continue
        except Exception as error:  # its zarr.json is corrupt
            problems.append(_unreadable(where, spec.path, error))
            continue
        # Rows past the manifest's end (left by an interrupted writer) are invisible by the format's rules.
        if (array.shape[0] < total or tuple(array.shape[1:]) != spec.shape
                or array.dtype != np.dtype(spec.dtype)):
            problems.append(f"{where}: {spec.path} is {array.dtype}{tuple(array.shape)}, manifest says "
                            f"{spec.dtype}{(total, *spec.shape)}")
            continue
        for index, episode in enumerate(episodes):
            expected = episode["checksums"].get(name)
            if expected is None:
                problems.append(f"{where}: episode {episode['id']} has no checksum for {name}")
                continue
            digest = hashlib.sha256()
            try:
                for rows in reader.iter_rows(name, episode["start"], episode["end"]):
                    digest.update(np.ascontiguousarray(rows).tobytes())
            except Exception as error:
                problems.append(_unreadable(where, f"{spec.path} rows of episode {episode['id']}", error))
                continue
            if f"sha256:{digest.hexdigest()}" != expected:
                problems.append(f"{where}: {spec.path} of episode {episode['id']} "
                                f"(rows {episode['start']}:{episode['end']}) fails its checksum")
            if progress:
                progress(index + 1, len(episodes))
    from .wds import verify_shards

    problems.extend(verify_shards(reader))
    return problems
