"""``tokenize --ray``: encoders on many Ray workers (one per GPU, or CPU workers); this process writes.

``tokenize.tokenize_store`` runs whole, with Ray actors as its ``encode``: each actor builds the encoder
once (from a picklable factory, so ``dreamer_data`` still never imports the model) and encodes whole
episodes from a reset encoder, reading their frames from the store itself. The driver holds the writer
lock and writes every latent row, so no two writers ever touch one chunk; the progress file, resume and
the manifest swap that publishes the latents are the one-process ones. An episode's latents depend only
on its frames and the weights, so they are the one-process run's on the same device type and threads.
"""

from __future__ import annotations

from collections import deque
from types import ModuleType
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from ..errors import DreamerDataError
from ..store.reader import StoreReader
from ..tokenize import FRAMES, FrameEncoder, TokenizeReport, episode_latents, tokenize_store
from .session import cluster_cpus, ray_session

RETRIES = 3  # restarts of an encoder actor, and retries of the episode it was encoding, when its process dies
IN_FLIGHT = 2  # episodes queued per actor: the next is ready while the driver writes the last


class EncoderWorker:
    """One encoder in a Ray actor: encodes whole episodes of one store."""

    def __init__(self, make_encoder: Callable[[], FrameEncoder], store: str):
        self.encoder = make_encoder()
        self.frames = StoreReader(store).array(FRAMES)
        self.store = store

    def checkpoint_hash(self) -> str:
        return self.encoder.checkpoint_hash

    def encode(self, episode: dict, batch_frames: int, latent_shape: tuple[int, ...]) -> np.ndarray:
        return np.concatenate(list(episode_latents(self.encoder, self.frames, episode, batch_frames, latent_shape,
                                                   self.store)))


def _one_line(error: Exception) -> str:
    """The last line of a Ray error (its message ends with the worker's own exception)."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def ray_encoders(ray: ModuleType, make_encoder: Callable[[], FrameEncoder], checkpoint_hash: str, workers: int,
                 gpus_per_worker: float = 0):
    """An ``EncodeEpisodes`` running ``workers`` encoder actors (``gpus_per_worker`` GPUs each)."""
    actor_class = ray.remote(num_cpus=1, num_gpus=gpus_per_worker, max_restarts=RETRIES,
                             max_task_retries=RETRIES)(EncoderWorker)

    def run(reader: StoreReader, episodes: list[dict], batch_frames: int,
            latent_shape: tuple[int, ...]) -> Iterator[tuple[dict, Iterable[np.ndarray]]]:
        if not episodes:
            return
        actors = [actor_class.remote(make_encoder, reader.location.root) for _ in range(min(workers, len(episodes)))]
        running: dict[Any, tuple[dict, Any]] = {}
        try:
            _check_weights(ray, actors, checkpoint_hash)
            pending, idle = deque(episodes), actors * IN_FLIGHT
            while pending or running:
                while pending and idle:
                    actor, episode = idle.pop(0), pending.popleft()
                    running[actor.encode.remote(episode, batch_frames, latent_shape)] = (episode, actor)
                done, _ = ray.wait(list(running), num_returns=1)
                episode, actor = running.pop(done[0])
                latents = _latents(ray, done[0], episode)
                idle.append(actor)
                yield episode, [latents]
        finally:  # finished, failed or interrupted: no encoder outlives the run
            for object_ref in running:
                ray.cancel(object_ref, force=True)
            for actor in actors:
                ray.kill(actor)

    return run


def _check_weights(ray: ModuleType, actors: list, checkpoint_hash: str) -> None:
    """Every worker built the encoder, from the weights this process read (not a checkpoint changed since)."""
    try:
        hashes = ray.get([actor.checkpoint_hash.remote() for actor in actors])
    except ray.exceptions.RayError as error:
        raise DreamerDataError(f"a Ray worker could not build the tokenizer: {_one_line(error)}") from None
    other = next((found for found in hashes if found != checkpoint_hash), None)
    if other is not None:
        raise DreamerDataError(f"a Ray worker loaded tokenizer weights {other}, not {checkpoint_hash}: the checkpoint "
                               f"changed during the run; rerun")


def _latents(ray: ModuleType, object_ref: Any, episode: dict) -> np.ndarray:
    try:
        return ray.get(object_ref)
    except ray.exceptions.RayTaskError as error:
        if isinstance(error.cause, DreamerDataError):  # a shape or non-finite refusal, as in one process
            raise error.cause from None
        raise DreamerDataError(f"episode {episode['id']}: a Ray encoder failed: {_one_line(error)}") from None
    except ray.exceptions.RayError as error:
        raise DreamerDataError(f"episode {episode['id']}: its Ray encoder worker died {RETRIES + 1} times "
                               f"({type(error).__name__}); finished episodes are saved: rerun the same command "
                               f"to resume") from None


def tokenize_on_ray(store: str, encoder: FrameEncoder, make_encoder: Callable[[], FrameEncoder], address: str,
                    workers: int | None = None, gpus_per_worker: float = 0, **options: Any) -> TokenizeReport:
    """``tokenize_store`` with ``workers`` Ray encoder actors (default: one per GPU share, else one per CPU).

    ``encoder`` is this process's copy (its hash, shapes and description go into the manifest);
    ``make_encoder`` builds the workers' copies and must be picklable. ``store`` must be reachable from
    every node (a URL, or a path on a shared file system)."""
    with ray_session(address, num_cpus=workers) as ray:
        if workers is None:
            gpus = ray.cluster_resources().get("GPU", 0)
            workers = int(gpus // gpus_per_worker) if gpus_per_worker else cluster_cpus(ray)
            if workers < 1:
                raise DreamerDataError(f"--gpus-per-worker {gpus_per_worker}: the Ray cluster has {gpus:g} GPUs")
        return tokenize_store(store, encoder, encode=ray_encoders(ray, make_encoder, encoder.checkpoint_hash,
                                                                  workers, gpus_per_worker), **options)
