"""``ingest --ray``: episodes decode as Ray tasks anywhere on a cluster; this process commits them in order.

The one-machine pipeline runs whole (``ingest.ingest``), with Ray tasks as its stager: a task runs
``stage_episode`` into scratch space on its own node and ships the staged folder's files back through
Ray's object store; the driver lands them in its staging folder exactly where a local worker would have
staged them. Ordering, the single writer (its lock held here), resume, the failure list and the
checksums are therefore the one-machine ones, and so is the store.

A task whose worker dies (killed, out of memory, node lost) is retried by Ray ``RETRIES`` times; one
that dies every time is listed as a failed episode, which a rerun retries like any other.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

from ..errors import DreamerDataError
from ..ingest import Finished, IngestPlan, IngestReport, Progress, Stager, ingest, stage_episode
from ..sources.base import EpisodeRef, Source
from ..store.location import naming_write_errors
from ..store.staging import find_staged, staging_key
from .session import cluster_cpus, ray_session

RETRIES = 3  # Ray's max_retries: runs of a task after the first whose worker died
SCRATCH_PREFIX = "dreamer-ray-stage-"
AHEAD_PER_WORKER = 4  # staged-but-uncommitted episodes per worker: bounds the driver's staging disk use


@dataclass(frozen=True)
class ShippedEpisode:
    """What a task returns: the staged folder's files (relative path → bytes), or why the episode failed."""

    episode_id: str
    file: str | None
    reason: str | None
    files: dict[str, bytes]


def stage_and_ship(source: Source, ref: EpisodeRef, source_index: int) -> ShippedEpisode:
    """Task body: stage one episode in this node's scratch space and return its files (scratch is removed)."""
    _remove_scratch_of_dead_workers()
    with tempfile.TemporaryDirectory(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-") as scratch:
        _, file, reason = stage_episode(source, ref, scratch, source_index)
        folder = Path(scratch) / staging_key(ref.id)
        files = {} if reason else {str(path.relative_to(folder)): path.read_bytes()
                                   for path in sorted(folder.rglob("*")) if path.is_file()}
    return ShippedEpisode(ref.id, file, reason, files)


def _remove_scratch_of_dead_workers() -> None:
    """A worker killed mid-task leaves its scratch folder; the next task on that node removes it."""
    for folder in Path(tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*"):
        pid = folder.name.removeprefix(SCRATCH_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def land(root: Path, shipped: ShippedEpisode) -> None:
    """Write a shipped episode into the staging root as a local worker's stager does: a temp folder,
    renamed into place once complete (a driver killed meanwhile leaves only a ``.tmp-`` half)."""
    key = staging_key(shipped.episode_id)
    tmp, final = root / f".tmp-{key}-{os.getpid()}", root / key
    with naming_write_errors(str(root)):
        shutil.rmtree(tmp, ignore_errors=True)
        for name, data in shipped.files.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_bytes(data)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)


def ray_stager(ray: ModuleType, workers: int, cpus_per_task: int = 1) -> Stager:
    """A ``Stager`` that runs at most ``workers`` Ray tasks at once and hands episodes on in list order."""
    task = ray.remote(num_cpus=cpus_per_task, max_retries=RETRIES, retry_exceptions=False)(stage_and_ship)

    def run(source: Source, todo: list[EpisodeRef], source_index: dict[str, int], root: Path, _: int,
            finished: Finished) -> None:
        shared_source = ray.put(source)  # sent to the object store once, not once per task
        fields = source.fields()
        results: dict[int, tuple[str | None, str | None]] = {}
        running: dict[Any, int] = {}
        next_submit = next_commit = 0
        try:
            while next_commit < len(todo):
                while (next_submit < len(todo) and len(running) < workers
                       and next_submit < next_commit + AHEAD_PER_WORKER * workers):
                    ref = todo[next_submit]
                    if find_staged(root, ref.id, fields) is not None:  # staged by a killed run: commit as is
                        results[next_submit] = (None, None)
                    else:
                        running[task.remote(shared_source, ref, source_index[ref.id])] = next_submit
                    next_submit += 1
                while next_commit in results:
                    finished(todo[next_commit], results.pop(next_commit))
                    next_commit += 1
                if running and next_commit < len(todo):
                    done, _ = ray.wait(list(running), num_returns=1)
                    index = running.pop(done[0])
                    results[index] = _landed(ray, root, done[0], todo[index])
        except BaseException:  # Ctrl-C or a committer error: stop the tasks (staged halves stay invisible)
            for object_ref in running:
                ray.cancel(object_ref, force=True)
            raise

    return run


def _landed(ray: ModuleType, root: Path, object_ref: Any, ref: EpisodeRef) -> tuple[str | None, str | None]:
    """A finished task's episode landed in staging: (None, None), or (failed file, reason)."""
    try:
        shipped: ShippedEpisode = ray.get(object_ref)
    except ray.exceptions.RayTaskError as error:  # the task raised past stage_episode: the run stops
        cause = error.cause
        if isinstance(cause, DreamerDataError):  # e.g. the worker's scratch disk is full
            raise cause from None
        raise DreamerDataError(f"{ref.main_file}: a Ray task failed: {type(cause).__name__}: {cause}") from None
    except ray.exceptions.RayError as error:  # its worker or node died on every try
        return ref.main_file, (f"the Ray worker decoding it died {RETRIES + 1} times (killed, out of memory, or "
                               f"node lost: {type(error).__name__})")
    if shipped.reason is None:
        land(root, shipped)
    return shipped.file, shipped.reason


def ingest_on_ray(source: Source, out: str, plan: IngestPlan, address: str, progress: Progress | None = None,
                  cpus_per_task: int = 1) -> IngestReport:
    """``ingest`` with Ray tasks decoding; ``plan.workers`` tasks at once (0: one per CPU of the cluster).

    ``source`` must name a place every node reads (an absolute path on a shared file system, or URLs);
    the store at ``out``, its staging folder and its writer lock are this process's alone."""
    if source.src.startswith("memory://"):
        raise DreamerDataError(f"{source.src}: a memory:// source lives in this process only; ingest it without --ray")
    local_cpus = plan.workers * cpus_per_task or None
    with ray_session(address, num_cpus=local_cpus) as ray:
        workers = plan.workers or max(1, cluster_cpus(ray) // cpus_per_task)
        return ingest(source, out, replace(plan, workers=workers), progress,
                      stager=ray_stager(ray, workers, cpus_per_task))
