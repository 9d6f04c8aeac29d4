"""ingest: raw episodes → store. Workers decode and stage; one committer appends in source order.

Resumable: episodes already in the manifest are skipped, complete staged episodes left by a killed
run are committed without decoding again, and failed episodes are retried.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import tempfile
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from hashlib import sha1
from pathlib import Path
from typing import Callable, Iterator

from .errors import DreamerDataError, EpisodeError
from .sources.base import EpisodeRef, Source
from .store.location import STAGING_DIR, StoreLocation, WriteFailed, naming_write_errors
from .store.manifest import new_manifest
from .store.staging import EpisodeStager, StagedEpisode, clean_staging, find_staged
from .store.wds import add_shards_locked
from .store.writer import StoreWriter
from .workers import init_worker


@dataclass(frozen=True)
class IngestPlan:
    """Which slice of the source this run writes, and how."""

    part: tuple[int, int] = (0, 1)  # (index, count): this run takes episodes index, index+count, …
    limit: int | None = None  # first N episodes of the source order (before splitting into parts)
    workers: int = 1  # decoding processes; 0 decodes in the calling process
    compression_level: int = 3
    staging: str | None = None  # local scratch directory; default: inside a local store, else tmp
    recipe: dict | None = None  # the dataset recipe this run follows, recorded in the manifest
    clip_length: int | None = None  # also write webdataset shards of clips this long


@dataclass
class IngestReport:
    store: str
    planned: int = 0
    skipped: int = 0
    ingested: int = 0
    frames: int = 0
    failed: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class IngestProgress:
    """One progress event: after listing (failure None, nothing done yet) and after each episode."""

    done: int  # episodes finished (skipped as already stored + ingested + failed)
    total: int  # episodes this run is responsible for
    frames: int  # rows in the store
    failure: dict | None = None  # set when the episode just finished failed: id, file, reason


Progress = Callable[[IngestProgress], None]
Finished = Callable[[EpisodeRef, tuple[str | None, str | None]], None]  # (failed file, reason) or (None, None)
# Stages ``todo`` (source, todo, source index by id, staging root, workers) and calls ``finished`` in list order.
Stager = Callable[[Source, list[EpisodeRef], dict[str, int], Path, int, Finished], None]


def select_episodes(refs: list[EpisodeRef], plan: IngestPlan) -> list[EpisodeRef]:
    index, count = plan.part
    if not 0 <= index < count:
        raise DreamerDataError(f"--part {index}/{count}: index must be in [0, {count})")
    refs = refs[: plan.limit] if plan.limit is not None else refs
    return refs[index::count]


def staging_base(location: StoreLocation, plan: IngestPlan) -> Path:
    """``--staging``, else the store's own ``.staging`` (local) or a folder in tmp named after the store URL."""
    if plan.staging:
        return Path(plan.staging)
    if location.local_path is not None:
        return location.local_path / STAGING_DIR
    return Path(tempfile.gettempdir()) / "dreamer-staging" / sha1(location.root.encode()).hexdigest()[:16]


def source_fingerprint(source: Source) -> str:
    """Names what a staged episode's rows depend on: source kind and URL, settings, fields.

    Episode ids repeat across sources (every collect run has ``episodes/000000``), so staged episodes
    live under ``staging_base / fingerprint``: a run only ever finds the ones it would have written itself."""
    identity = {"kind": source.kind, "uri": source.src, "settings": source.settings(),
                "fields": {name: spec.to_json() for name, spec in source.fields().items()}}
    return sha1(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]


def staging_root(location: StoreLocation, plan: IngestPlan, source: Source) -> Path:
    return staging_base(location, plan) / source_fingerprint(source)


def stage_episode(source: Source, ref: EpisodeRef, root: str, source_index: int) -> tuple[str, str | None, str | None]:
    """Worker body: decode one episode into staging. Returns (id, failed file, reason)."""
    stager = EpisodeStager(Path(root), ref.id, source.fields(), ref.main_file)
    try:
        notes = source.read_episode(ref, stager.append)
        stager.finish(ref.main_file, source_index, notes)
        return ref.id, None, None
    except EpisodeError as error:
        stager.abort()
        return ref.id, error.file, error.reason
    except WriteFailed:  # disk full or read-only: no episode would fare better, so the run stops
        stager.abort()
        raise
    except MemoryError:
        stager.abort()
        return ref.id, ref.main_file, "out of memory while reading"
    except Exception as error:  # an unforeseen failure of one file must not stop the other episodes
        stager.abort()
        return ref.id, ref.main_file, f"unexpected {type(error).__name__}: {error}"
    except BaseException:
        stager.abort()
        raise


def build_manifest_template(source: Source, plan: IngestPlan) -> dict:
    fields = source.fields()
    return new_manifest(
        source={"kind": source.kind, "uri": source.src, "settings": source.settings(), "recipe": plan.recipe},
        observation=source.observation_spec(), actions=source.action_spec(), fields=fields,
        rewards_present=source.rewards_present,
        extra={"part": {"index": plan.part[0], "count": plan.part[1], "limit": plan.limit}},
    )


def ingest(source: Source, out: str, plan: IngestPlan, progress: Progress | None = None,
           stager: Stager | None = None) -> IngestReport:
    """Write (or resume) the store at ``out`` from ``source``; returns what happened.

    ``stager`` decodes episodes into the staging root (default: ``plan.workers`` local processes;
    ``cluster.ingest`` passes Ray tasks); whoever stages, this process alone commits."""
    progress = progress or (lambda event: None)
    location = StoreLocation(out)
    all_refs = source.list_episodes()
    if not all_refs:
        raise DreamerDataError(f"{source.src}: no {source.kind} episodes found (wrong path or source kind?)")
    source_index = {ref.id: index for index, ref in enumerate(all_refs)}
    if len(source_index) != len(all_refs):
        raise DreamerDataError(f"{source.src}: two episodes map to the same id; rename one of them")
    refs = select_episodes(all_refs, plan)
    if plan.workers > 0 and source.src.startswith("memory://"):
        raise DreamerDataError(f"{source.src}: a memory:// source lives in this process only; use --workers 0")
    writer = StoreWriter(location, build_manifest_template(source, plan), plan.compression_level)
    root = staging_root(location, plan, source)
    todo = [ref for ref in refs if ref.id not in writer.committed_ids]
    report = IngestReport(store=out, planned=len(refs), skipped=len(refs) - len(todo))

    def finished(ref: EpisodeRef, failure: tuple[str | None, str | None]) -> None:
        file, reason = failure
        failed = None
        if reason is None:
            staged = find_staged(root, ref.id, source.fields())
            if staged is None:
                raise DreamerDataError(f"{root}: staged episode {ref.id} vanished before commit")
            writer.commit(staged)
            report.ingested += 1
            report.frames += staged.length
        else:
            writer.record_failure(ref.id, file, reason)
            failed = {"id": ref.id, "file": file, "reason": reason}
            report.failed.append(failed)
        done = report.skipped + report.ingested + len(report.failed)
        progress(IngestProgress(done, report.planned, writer.total, failed))

    try:
        with naming_write_errors(str(root)):
            root.mkdir(parents=True, exist_ok=True)
        # under the writer lock: what killed runs left in staging goes before new work arrives
        clean_staging(root, {e["id"]: e["checksums"] for e in writer.manifest["episodes"]},
                      {ref.id for ref in todo}, private=not plan.staging)
        if not plan.staging:  # the store's own staging: other settings' leftovers can never be committed here
            for other in root.parent.iterdir():
                if other != root and other.is_dir() and not other.is_symlink():
                    shutil.rmtree(other, ignore_errors=True)
        progress(IngestProgress(report.skipped, report.planned, writer.total))
        (stager or _run_in_order)(source, todo, source_index, root, plan.workers, finished)
        if plan.clip_length:  # still under the writer lock: no other writer between the episodes and shards
            writer.flush()
            writer.update(wds=add_shards_locked(location, plan.clip_length))
    finally:
        writer.close()
        for folder in (root, root.parent):  # our fingerprint folder, then the staging folder, once empty
            if folder.is_dir() and not any(folder.iterdir()):
                shutil.rmtree(folder, ignore_errors=True)
    return report


@contextmanager
def _children_leave_ctrl_c_to_us() -> Iterator[None]:
    """Start pool processes with SIGINT blocked, and hold back our own KeyboardInterrupt meanwhile.

    Children inherit the blocked signal, so a Ctrl-C sent to the whole process group cannot print a
    traceback from a worker (or the forkserver) still importing; and a Ctrl-C here is raised only once
    ``submit`` has registered the process it started, so the pool's shutdown stops that one too.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    interrupted: list[int] = []
    handler = signal.signal(signal.SIGINT, lambda signum, frame: interrupted.append(signum))
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a pending Ctrl-C now reaches the recorder above
        signal.signal(signal.SIGINT, handler)
    if interrupted:
        raise KeyboardInterrupt


def _run_in_order(source: Source, todo: list[EpisodeRef], source_index: dict[str, int], root: Path, workers: int,
                  finished: Finished) -> None:
    """Stage episodes on ``workers`` processes; hand them to ``finished`` strictly in list order.

    Even one worker is a separate process, so decoding overlaps the committer's compression;
    ``workers=0`` runs everything in this process (debugging).
    """
    def reuse(ref: EpisodeRef) -> StagedEpisode | None:
        return find_staged(root, ref.id, source.fields())

    if workers == 0:
        for ref in todo:
            if reuse(ref) is None:
                _, file, reason = stage_episode(source, ref, str(root), source_index[ref.id])
                finished(ref, (file, reason))
            else:
                finished(ref, (None, None))
        return

    context = multiprocessing.get_context("forkserver" if "://" not in source.src else "spawn")
    max_ahead = 4 * workers  # bounds staging disk use when the head-of-line episode is slow
    results: dict[int, tuple[str | None, str | None]] = {}
    running: dict[Future, int] = {}
    next_submit = next_commit = 0
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=init_worker,
                             initargs=(os.getpid(),)) as pool:
        try:
            while next_commit < len(todo):
                while next_submit < len(todo) and next_submit < next_commit + max_ahead:
                    ref = todo[next_submit]
                    if reuse(ref) is not None:
                        results[next_submit] = (None, None)
                    else:
                        with _children_leave_ctrl_c_to_us():
                            future = pool.submit(stage_episode, source, ref, str(root), source_index[ref.id])
                        running[future] = next_submit
                    next_submit += 1
                while next_commit in results:
                    finished(todo[next_commit], results.pop(next_commit))
                    next_commit += 1
                if running and next_commit < len(todo) and next_commit not in results:
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        _, file, reason = future.result()
                        results[running.pop(future)] = (file, reason)
        except BrokenProcessPool:
            raise DreamerDataError("a worker process died (killed, or out of memory); "
                                   "rerun the same command to resume") from None
        except BaseException:  # Ctrl-C or a committer error: stop workers now (staged halves stay invisible)
            processes = list((pool._processes or {}).values())  # no public way to stop workers before 3.14
            pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                process.terminate()
            raise
