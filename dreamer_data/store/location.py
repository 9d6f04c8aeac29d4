"""Where a store lives: a local directory or any fsspec URL, with atomic small-file writes."""

from __future__ import annotations

import json
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import fsspec
import zarr
from fsspec.core import url_to_fs

from ..atomic import write_bytes_atomic
from ..errors import StoreError

WRITE_LOCK = ".write.lock"
STAGING_DIR = ".staging"
GROUP_FILE = "zarr.json"
STORE_ATTRIBUTE = "dreamer_store"  # zarr.json attribute that marks a group as ours, written before any array
# What a store's root may hold before its manifest exists: our lock and staging, the group and its arrays.
CREATION_ENTRIES = {WRITE_LOCK, STAGING_DIR, GROUP_FILE, "data", "meta"}
# Temp files of killed writers: zarr's LocalStore (``NAME.<uuid hex>.partial``) and write_bytes_atomic's.
ZARR_TEMP = re.compile(r".+\.[0-9a-f]{32}\.partial")
ATOMIC_TEMP = re.compile(r"\..+\.tmp")


def is_temp_file(name: str) -> bool:
    return bool(ZARR_TEMP.fullmatch(name) or ATOMIC_TEMP.fullmatch(name))


class WriteFailed(StoreError):
    """The disk refused a write (full, quota, read-only, …): the run stops; what is published stays valid."""


def write_failure(where: str, error: OSError) -> WriteFailed:
    """One line naming the path being written and why the OS refused it."""
    reason = error.strerror or str(error) or type(error).__name__
    if error.filename and str(error.filename) != str(where):
        reason = f"{reason}: {error.filename}"
    return WriteFailed(f"{where}: cannot write ({reason}); what was already published is kept: "
                       f"fix that, then rerun the same command to resume")


@contextmanager
def naming_write_errors(where: str) -> Iterator[None]:
    """Turn an ``OSError`` (ENOSPC, EDQUOT, EROFS, EACCES, …) into one line naming ``where``."""
    try:
        yield
    except OSError as error:
        raise write_failure(where, error) from None


class WriteLock:
    """A held writer lock (see ``StoreLocation.lock_for_writing``); ``release()`` lets the next writer in."""

    def __init__(self, fd: int, path: Path):
        self._fd: int | None = fd
        self._path = path
        self._owner = os.getpid()  # a forked copy must never delete the file its parent still holds

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Delete the lock file while still holding its flock, then drop the flock.

        A writer blocked on this inode finds the path gone (or another inode) once it gets the flock
        and retries on a fresh file, so deleting never lets two writers in.
        """
        if self._fd is None:
            return
        try:
            if os.getpid() == self._owner and os.path.samestat(os.fstat(self._fd), os.stat(self._path)):
                os.unlink(self._path)
        except OSError:
            pass
        os.close(self._fd)  # closing the last descriptor drops the flock
        self._fd = None

    # StoreWriter and older callers closed the file object the lock used to be
    close = release

    def __del__(self) -> None:  # a writer dropped without close() lets the next writer in, as a closed file did
        try:
            self.release()
        except Exception:  # at interpreter exit the kernel drops the flock anyway
            pass


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
            write_bytes_atomic(self.local_path / name, data)
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

    def require_new_or_ours(self) -> None:
        """Refuse to create a store where anything but our own unfinished creation lives.

        A store without ``manifest.json`` may be one whose creation was interrupted (kill -9, Ctrl-C):
        its root then holds only the lock, staging, temp files and a ``zarr.json`` that carries our
        ``dreamer_store`` attribute (written before any array), and its arrays have no chunk yet.
        Anything else is a user's folder: refused before anything is written into it.
        """
        if not self.exists():
            return
        if not self.fs.isdir(self.fs_root):
            raise StoreError(f"{self.root}: is a file, not a store directory; give --out a new or empty folder")
        names = {path.rstrip("/").rsplit("/", 1)[-1] for path in self.fs.ls(self.fs_root, detail=False)}
        foreign = sorted(name for name in names if name not in CREATION_ENTRIES and not is_temp_file(name))
        if foreign:
            raise StoreError(f"{self.root}: exists and is not a dreamer store (no manifest.json; holds "
                             f"{foreign[0]!r}); refusing to write into it: give --out a new or empty folder")
        if names & {GROUP_FILE, "data", "meta"} and not self._is_our_group():
            raise StoreError(f"{self.root}: exists and is not a dreamer store (a zarr.json without our "
                             f"{STORE_ATTRIBUTE!r} attribute, no manifest.json); refusing to write into it")
        for folder in ("data", "meta"):
            if not self.exists(folder):
                continue
            for path in self.fs.find(self.child(folder)):
                name = path.rsplit("/", 1)[-1]
                if name != GROUP_FILE and not ZARR_TEMP.fullmatch(name):
                    raise StoreError(f"{self.root}: holds dreamer array data ({path}) but no manifest.json "
                                     f"(deleted?); refusing to overwrite it")

    def _is_our_group(self) -> bool:
        try:
            group = json.loads(self.read_bytes(GROUP_FILE))
        except (OSError, ValueError):
            return False
        return isinstance(group, dict) and STORE_ATTRIBUTE in (group.get("attributes") or {})

    def lock_for_writing(self) -> "WriteLock | None":
        """Take the store's one exclusive writer lock, or refuse at once if another writer holds it.

        Every command that writes a store (ingest, tokenize, merge, shards) holds it for its whole
        write. It is an ``flock`` on ``.write.lock``: the kernel drops it when the holder exits or is
        killed, so a lock left by a dead process never blocks the next writer. The holder's pid is
        written into the file for the refusal message; ``release()`` deletes the file. Having the
        lock, the writer removes temp files that killed writers left. Object stores have no such
        lock: run one writer per store URL there (returns None).
        """
        if self.local_path is None:
            return None
        import fcntl

        path = self.local_path / WRITE_LOCK
        with naming_write_errors(self.root):
            self.local_path.mkdir(parents=True, exist_ok=True)
            while True:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    raise self._refusal(path) from None
                try:
                    if os.path.samestat(os.fstat(fd), os.stat(path)):
                        break
                except FileNotFoundError:
                    pass
                os.close(fd)  # the last holder deleted this file as it let go: lock the path's new file
            lock = WriteLock(fd, path)
            try:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                self._remove_temp_files()
            except BaseException:
                lock.release()
                raise
        return lock

    def _refusal(self, path: Path) -> StoreError:
        try:
            pid = path.read_text().strip()
        except OSError:
            pid = ""
        holder = f" (pid {pid})" if pid.isdigit() else ""
        return StoreError(f"{self.root}: another writer{holder} holds this store's write lock; nothing was "
                          f"changed: wait for it to finish, then rerun")

    def _remove_temp_files(self) -> None:
        """Temp files are only ever open inside a writer; under the lock, any found is a dead writer's."""
        for folder, subfolders, files in os.walk(self.local_path):
            if folder == str(self.local_path):
                subfolders[:] = [name for name in subfolders if name != STAGING_DIR]  # ingest cleans staging
            for name in files:
                if is_temp_file(name):
                    Path(folder, name).unlink(missing_ok=True)

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
