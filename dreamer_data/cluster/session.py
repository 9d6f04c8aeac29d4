"""Joining a Ray cluster, or starting a local one, for the length of one command."""

from __future__ import annotations

import logging
import os
import socket
from contextlib import contextmanager
from types import ModuleType
from typing import Iterator

from ..errors import DreamerDataError

LOCAL = "local"  # ``--ray`` without an address: $RAY_ADDRESS if set, else a Ray instance on this machine
INSTALL_HINT = '--ray needs Ray, which is not installed here: pip install -e ".[ray]" (or pip install "ray>=2.40")'


def import_ray() -> ModuleType:
    """Ray, or one line saying how to install it."""
    try:
        import ray
    except ImportError:
        raise DreamerDataError(INSTALL_HINT) from None
    return ray


@contextmanager
def ray_session(address: str, num_cpus: int | None = None) -> Iterator[ModuleType]:
    """Connect to ``address`` (``LOCAL``: start a local instance with ``num_cpus`` CPUs, None = all) for a block.

    Quiet: no dashboard, workers' output stays in Ray's logs (their errors come back as exceptions).
    A process that already called ``ray.init`` (a notebook, a test) keeps its session; only a session
    opened here is closed here.
    """
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    logging.getLogger("ray").setLevel(logging.ERROR)  # start-up notes would break the one live progress view
    joined = os.environ.get("RAY_ADDRESS") if address == LOCAL else address
    if joined:
        _check_reachable(joined)
    try:
        ray.init(address=joined or "local", num_cpus=None if joined else num_cpus,  # "local": always a new one
                 include_dashboard=False, log_to_driver=False, configure_logging=False)
    except (ConnectionError, ValueError, RuntimeError) as error:
        where = f"the Ray cluster at {joined}" if joined else "a local Ray instance"
        raise DreamerDataError(f"--ray: cannot start or join {where}: {error}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _check_reachable(address: str, timeout_s: float = 10.0) -> None:
    """Refuse a HOST:PORT nothing answers on at once (Ray itself retries it for minutes, printing as it goes)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto" and other forms Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as error:
        raise DreamerDataError(f"--ray {address}: no Ray cluster answers there ({error.strerror or error}); "
                               f"start one (ray start --head) or give its address") from None


def cluster_cpus(ray: ModuleType) -> int:
    """CPUs the whole cluster offers (at least 1)."""
    return max(1, int(ray.cluster_resources().get("CPU", 1)))
