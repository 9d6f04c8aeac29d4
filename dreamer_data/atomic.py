"""Atomic file replacement (temp file beside the target, then rename), shared by every writer of small files.

A reader, or a run killed at any instant, sees the old file or the whole new one, never a torn one; the
rename stays atomic because the temp file is in the target's own folder. Temp names are ``.NAME.<random>SUFFIX``
(with the default ``.tmp`` suffix a store's writer recognises and removes those a killed writer left).
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def replacing(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A fresh temp path beside ``path`` for the block to write; renamed onto ``path`` when the block ends
    normally, removed when it raises. ``suffix`` keeps the extension that writers choosing a format by name
    (PIL, matplotlib, PyAV) need. The file gets the mode a plain ``open`` would (mkstemp's is 0600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    tmp = Path(name)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        os.close(fd)
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: str | Path, data: bytes, durable: bool = True) -> Path:
    """``data`` as ``path``, atomically; ``durable`` fsyncs before the rename (a crash of the machine, not only
    of the process, then also leaves the old file or the new one)."""
    with replacing(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
    return Path(path)
