"""``--ray [ADDRESS]``, the flag ``ingest`` and ``tokenize`` share: run on a Ray cluster, same store as one machine.

Typer has no options whose value may be left out, so the group normalises the command line first:
``--ray`` last, or followed by another option, becomes ``--ray local``.
"""

from __future__ import annotations

import sys
from typing import Any, Sequence

import typer
from typer.core import TyperGroup

from dreamer_data.cluster.session import LOCAL

RAY = typer.Option(None, "--ray", metavar="[ADDRESS]",
                   help="Run on Ray: alone, $RAY_ADDRESS or a local Ray instance; or a cluster's address (auto, "
                        "HOST:PORT, ray://HOST:10001). Paths must be reachable from every node (or be URLs).")


def with_ray_defaults(args: Sequence[str]) -> list[str]:
    """``--ray`` with no address (last, or before another option) → ``--ray local``."""
    args = list(args)
    return [f"--ray={LOCAL}" if arg == "--ray" and (i + 1 == len(args) or args[i + 1].startswith("-")) else arg
            for i, arg in enumerate(args)]


class RayGroup(TyperGroup):
    """A command group whose ``--ray`` may come without its address."""

    def main(self, args: Sequence[str] | None = None, *rest: Any, **options: Any) -> Any:
        return super().main(with_ray_defaults(sys.argv[1:] if args is None else args), *rest, **options)
