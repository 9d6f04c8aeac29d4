"""``--ray [ADDRESS]``, the flag ``ingest`` and ``tokenize`` share: run on a Ray cluster, same store as one machine.

Typer has no options whose value may be left out, so the group normalises the command line first: ``--ray``
not followed by an address (``auto``, ``local``, ``HOST:PORT``, ``ray://…``) becomes ``--ray local``, so
``tokenize --ray STORE …`` keeps STORE as the store.
"""

from __future__ import annotations

import re
import sys
from typing import Any, Sequence

import typer
from typer.core import TyperGroup

from dreamer_data.cluster.session import LOCAL

ADDRESS = re.compile(r"auto|local|ray://\S+|[^/\s]+:\d+")  # what Ray's address= takes; a path or URL is not one

RAY = typer.Option(None, "--ray", metavar="[ADDRESS]",
                   help="Run on Ray: alone, $RAY_ADDRESS or a local Ray instance; or a cluster's address (auto, "
                        "HOST:PORT, ray://HOST:10001). Paths must be reachable from every node (or be URLs).")


def with_ray_defaults(args: Sequence[str]) -> list[str]:
    """``--ray`` not followed by an address (last, before another option or an argument) → ``--ray local``."""
    args = list(args)
    return [f"--ray={LOCAL}" if arg == "--ray" and (i + 1 == len(args) or not ADDRESS.fullmatch(args[i + 1])) else arg
            for i, arg in enumerate(args)]


class RayGroup(TyperGroup):
    """A command group whose ``--ray`` may come without its address."""

    def main(self, args: Sequence[str] | None = None, *rest: Any, **options: Any) -> Any:
        return super().main(with_ray_defaults(sys.argv[1:] if args is None else args), *rest, **options)
