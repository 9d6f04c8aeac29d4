"""Clips out of one webdataset shard of a store, read through fsspec (webdataset's own URL
handling is not used, so every fsspec protocol works and credentials come from fsspec)."""

from __future__ import annotations

import io
import json
import tarfile
from typing import Callable, Iterator

import numpy as np
from webdataset.tariterators import base_plus_ext, group_by_keys, tar_file_expander

from ..errors import StoreError
from ..store.location import StoreLocation
from ..store.wds import member_name

META = "json"


def read_clips(location: StoreLocation, shard: str, fields: tuple[str, ...],
               keep_episode: Callable[[str], bool] | None = None) -> Iterator[tuple[dict, dict[str, np.ndarray]]]:
    """(meta, field arrays) per clip, in shard order; members of other fields are skipped unread."""
    where = f"{location.root.rstrip('/')}/{shard}"
    members = {member_name(field): field for field in fields}
    wanted = set(members) | {META}

    def select(fname: str) -> bool:
        key, ext = base_plus_ext(fname)
        return ext in wanted and (keep_episode is None or keep_episode(key.rsplit("/", 1)[0]))

    try:
        with location.fs.open(location.child(shard), "rb") as stream:
            files = tar_file_expander([{"url": where, "stream": stream}], select_files=select, eof_value=None)
            for sample in group_by_keys(files, lcase=False):
                key = sample["__key__"]
                if META not in sample:
                    raise StoreError(f"{where}: clip {key} has no .{META} member")
                missing = [member for member in members if member not in sample]
                if missing:
                    raise StoreError(f"{where}: clip {key} has no member for field {members[missing[0]]!r} "
                                     "(shards exported before the field was added? export them again)")
                arrays = {field: np.load(io.BytesIO(sample[member]), allow_pickle=False)
                          for member, field in members.items()}
                yield json.loads(sample[META]), arrays
    except FileNotFoundError:
        raise StoreError(f"{where}: shard listed in the manifest is missing") from None
    except (tarfile.TarError, EOFError, OSError, ValueError) as error:
        raise StoreError(f"{where}: unreadable shard ({error})") from None
