"""One real local Ray instance (2 CPUs) per test module that imports ``ray_address``."""

from __future__ import annotations

import logging

import pytest
import ray


@pytest.fixture(scope="module")
def ray_address():
    """The instance's address: in-process ``--ray`` runs reuse its session, subprocesses join it by address."""
    logging.getLogger("ray").setLevel(logging.ERROR)
    context = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield context.address_info["address"]
    ray.shutdown()
