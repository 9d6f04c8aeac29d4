"""``dreamer-train``: the model side (tokenizer, phase 1–3, rollout, eval, quickstart)."""

from __future__ import annotations

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Train Dreamer 4 from a store: tokenizer → phase1 → phase2 → phase3 → eval.")

PLANNED = {
    "tokenizer": "train the causal MAE tokenizer on a store's frames",
    "phase1": "train the shortcut-forcing dynamics model on cached latents",
    "phase2": "behaviour cloning + reward heads",
    "phase3": "imagination RL (PMPO + TD(lambda))",
    "rollout": "decode an open-loop world-model rollout to video",
    "eval": "score a trained policy in the real environment",
    "quickstart": "the whole pipeline on a default that needs no download",
}


@app.command("plan")
def plan() -> None:
    """List the training sub-commands and what each will do."""
    for name, what in PLANNED.items():
        typer.echo(f"{name:11s} {what}")


def main() -> None:
    app()
