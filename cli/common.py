"""How every command reports problems: one line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import functools
import sys
import time
from typing import Callable

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from dreamer_data.errors import DreamerDataError
from dreamer_data.store.manifest import created_with

# Into a pipe or file rich would wrap at 80 columns; logs and scripts want one message per line.
PIPED_WIDTH = 10_000


def console(stderr: bool = False) -> Console:
    """A rich console that wraps at the terminal's width, and not at all when writing to a pipe or file."""
    made = Console(stderr=stderr)
    if not made.is_terminal:
        made.width = PIPED_WIDTH
    return made


stderr = console(stderr=True)
EXIT_FAILED_EPISODES = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def report_errors(program: str) -> Callable:
    """Decorator for command functions: known errors → one line; others → one line unless --debug."""

    def decorate(command: Callable) -> Callable:
        @functools.wraps(command)
        def run(*args, **kwargs):
            debug = kwargs.get("debug", False)
            try:
                return command(*args, **kwargs)
            except DreamerDataError as error:
                if debug:
                    raise
                stderr.print(f"[red]{program}: error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
                sys.exit(EXIT_USAGE)
            except KeyboardInterrupt:
                stderr.print(f"[yellow]{program}: interrupted[/]; finished work is saved, rerun the same "
                             f"command to resume", highlight=False)
                sys.exit(EXIT_INTERRUPTED)
            except Exception as error:  # anything else (a missing fsspec backend, a library error): still one line
                if debug:
                    raise
                stderr.print(f"[red]{program}: error:[/] {type(error).__name__}: {escape(str(error))} (rerun with "
                             f"--debug for a traceback)", highlight=False, soft_wrap=True)
                sys.exit(EXIT_USAGE)

        return run

    return decorate


def progress_bar(transient: bool = False) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=stderr, transient=transient)


class Rate:
    """Per second since the first reading: what this run did, not what an earlier run left."""

    def __init__(self) -> None:
        self.first: tuple[float, float] | None = None

    def __call__(self, count: float) -> float:
        now = time.monotonic()
        self.first = self.first or (now, count)
        return (count - self.first[1]) / (now - self.first[0]) if now > self.first[0] else 0.0


def print_version(show: bool) -> None:
    """``--version`` (eager, on every app): the installed package's version, as manifests record it."""
    if show:
        typer.echo(created_with())
        raise typer.Exit()


VERSION = typer.Option(False, "--version", callback=print_version, is_eager=True, help="Print the version and exit.")


# The flags every trainer (dreamer-train tokenizer, phase1, phase2, phase3) shares, defined once.
DATA = typer.Option(..., "--data", help="Store to train from (local dir or fsspec URL); phases 1-3 need its latents.")
OUT = typer.Option(..., "--out", help="Run directory: checkpoints/, tb/, metrics.jsonl, config.yaml (samples/).")
PRESET = typer.Option("tiny", "--preset", help="Size preset: tiny, small, base, paper, micro, quickstart "
                                               "(dreamer-train presets lists their sizes).")
STEPS = typer.Option(None, "--steps", min=0, help="Total optimisation steps to reach (default: the preset's).")
CONFIG = typer.Option(None, "--config", help="YAML file of config overrides (sections tokenizer:, dynamics:, "
                                             "agent:, train:).")
SET = typer.Option(None, "--set", help="One override KEY=VALUE, e.g. train.batch=16 (repeatable).")
RESUME = typer.Option(False, "--resume", help="Continue the run in --out from its newest checkpoint (bit-exact).")
SEED = typer.Option(0, "--seed", min=0, help="Seed of the data order, the random draws and the initial weights.")
DEVICE = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N (torchrun: each rank its own GPU).")
DEBUG = typer.Option(False, "--debug", help="Show tracebacks.")
