"""Where a store lives: a local directory or any fsspec URL, with atomic small-file writes."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import fsspec
import zarr
from fsspec.core import url_to_fs


WRITE_LOCK = ".write.lock"


class WriteLock:
    """A held writer lock (see ``StoreLocation.lock_for_writing``); ``release()`` lets the next writer in."""

    def __init__(self, handle):
        self._handle = handle

    @property
    def held(self) -> bool:
        return self._handle is not None

    def release(self) -> None:
        if self._handle is None:
            return
        try:
            self._handle.seek(0)
            self._handle.truncate()  # the pid goes with the lock
        except OSError:
            pass
        self._handle.close()  # closing the file drops the flock
        self._handle = None

    # StoreWriter and older callers closed the file object the lock used to be
    close = release


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def is_url(path: str) -> bool:
    return "://" in str(path)


class StoreLocation:
    """A store root. Local paths get real temp-file + rename atomicity; object stores are atomic per put."""

    def __init__(self, root: str | os.PathLike):
        self.root = str(root)
        self.is_local = not is_url(self.root) or self.root.startswith("file://")
        self.local_path = Path(self.root.removeprefix("file://")) if self.is_local else None
        self.fs, self.fs_root = url_to_fs(self.root)

    def __repr__(self) -> str:
        return f"StoreLocation({self.root!r})"

    def child(self, name: str) -> str:
        return f"{self.fs_root.rstrip('/')}/{name}"

    def exists(self, name: str = "") -> bool:
        return self.fs.exists(self.child(name) if name else self.fs_root)

    def read_bytes(self, name: str) -> bytes:
        return self.fs.cat_file(self.child(name))

    def write_bytes_atomic(self, name: str, data: bytes) -> None:
        if self.local_path is not None:
            target = self.local_path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            try:
                os.fchmod(fd, 0o666 & ~_umask())
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        else:
            self.fs.pipe_file(self.child(name), data)

    def remove(self, name: str, recursive: bool = False) -> None:
        path = self.child(name)
        if self.fs.exists(path):
            self.fs.rm(path, recursive=recursive)

    def bytes_on_disk(self, prefix: str = "") -> int:
        root = self.child(prefix) if prefix else self.fs_root
        if not self.fs.exists(root):
            return 0
        return int(sum(info.get("size", 0) or 0 for info in self.fs.find(root, detail=True).values()))

    def require_empty(self) -> None:
        """Refuse to create a store where other files already live (never overwrite a user's folder)."""
        if not self.exists():
            return
        ours = {WRITE_LOCK, ".staging"}
        found = [p for p in self.fs.ls(self.fs_root, detail=False) if p.rstrip("/").rsplit("/", 1)[-1] not in ours]
        if found:
            from ..errors import StoreError

            raise StoreError(f"{self.root}: exists and is not a dreamer store (no manifest.json); "
                             f"refusing to write into it")

    def lock_for_writing(self) -> "WriteLock | None":
        """Take the store's one exclusive writer lock, or refuse at once if another writer holds it.

        Every command that writes a store (ingest, tokenize, merge, shards) holds it for its whole
        write. It is an ``flock`` on ``.write.lock``: the kernel drops it when the holder exits or is
        killed, so a lock left by a dead process never blocks the next writer (the file may stay;
        it is not the lock). The holder's pid is written into the file for the refusal message.
        Object stores have no such lock: run one writer per store URL there (returns None).
        """
        if self.local_path is None:
            return None
        import fcntl

        self.local_path.mkdir(parents=True, exist_ok=True)
        path = self.local_path / WRITE_LOCK
        handle = open(path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            from ..errors import StoreError

            try:
                pid = path.read_text().strip()
            except OSError:
                pid = ""
            holder = f" (pid {pid})" if pid.isdigit() else ""
            raise StoreError(f"{self.root}: another writer{holder} holds this store's write lock; nothing was "
                             f"changed: wait for it to finish, then rerun") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        return WriteLock(handle)

    @contextmanager
    def writing(self) -> Iterator["WriteLock | None"]:
        """``lock_for_writing`` for a ``with`` block: held for the block, released however it ends."""
        lock = self.lock_for_writing()
        try:
            yield lock
        finally:
            if lock is not None:
                lock.release()

    def zarr_store(self, read_only: bool) -> zarr.abc.store.Store:
        if self.local_path is not None:
            return zarr.storage.LocalStore(self.local_path, read_only=read_only)
        return zarr.storage.FsspecStore.from_url(self.root, read_only=read_only)

    def open_file(self, name: str, mode: str = "rb"):
        return fsspec.open(self.child(name) if not self.is_local else str(self.local_path / name), mode)
