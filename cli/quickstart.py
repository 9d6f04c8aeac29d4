"""``dreamer-train quickstart --out DIR``: one live view of the whole pipeline, then the table of the
three policies and where every artefact is. Thin: the work is in ``dreamer_model.quickstart``."""

from __future__ import annotations

from enum import Enum
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from .common import report_errors, stderr


class Env(str, Enum):
    minatar = "minatar"
    crafter = "crafter"


class StageView:
    """The live view: one row per stage (✓ done, ↷ reused from an earlier run, ▶ running, · waiting)."""

    def __init__(self):
        self.bar = Progress(TextColumn("{task.fields[mark]} [bold]{task.description:<26}"), BarColumn(bar_width=24),
                            TextColumn("{task.fields[amount]:>16}"), TimeElapsedColumn(),
                            TextColumn("{task.fields[detail]}"), console=stderr)
        self.tasks: dict[str, TaskID] = {}
        self.units: dict[str, str] = {}

    def __enter__(self) -> "StageView":
        self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.__exit__(*exc)

    def _set(self, stage: str, **fields) -> None:
        self.bar.update(self.tasks[stage], **fields)

    def __call__(self, stage: str, event: str, info: dict) -> None:
        if event == "plan":
            plan, settings = info["plan"], info["settings"]
            where = settings["env"] + (f" {settings['game']}" if settings.get("game") else "")
            stderr.print(f"quickstart: {where}, budget {settings['minutes']:g} min → {info['out']}  "
                         f"({plan['episodes']} episodes of ≤ {plan['max_steps']} steps collected, "
                         f"{plan['eval_episodes']} evaluation episodes per policy)", highlight=False, soft_wrap=True)
            for name, label in info["stages"]:
                self.tasks[name] = self.bar.add_task(label, total=1, start=False, mark="·", amount="", detail="")
        elif event == "skip":
            self._set(stage, completed=1, total=1, mark="[cyan]↷[/]", amount="reused",
                      detail=f"{info['detail']} (built earlier, {info['seconds']:.0f} s)")
        elif event == "start":
            unit, total = info.get("unit", ""), info.get("total")
            self.units[stage] = unit
            self.bar.reset(self.tasks[stage], total=total, completed=0)
            self.bar.start_task(self.tasks[stage])
            amount = f"budget {total} s" if unit == "s" else ""
            self._set(stage, mark="[yellow]▶[/]", amount=amount, detail=info.get("detail", ""))
        elif event == "update":
            task = self.bar.tasks[self.tasks[stage]]
            if "left" in info:  # training: the bar is the stage's time budget
                total = task.total or 1
                self._set(stage, completed=max(0.0, total - info["left"]), amount=f"{info['left']:.0f} s left",
                          detail=info.get("detail", ""))
                return
            if "total" in info:
                self._set(stage, total=info["total"])
            completed = info.get("completed", task.completed)
            total = info.get("total", task.total)
            amount = f"{completed}/{total} {self.units.get(stage, '')}" if total else ""
            self._set(stage, completed=completed, amount=amount, detail=info.get("detail", task.fields["detail"]))
        elif event == "note":
            self.bar.console.print(f"  {info['text']}", highlight=False, soft_wrap=True, markup=False)
        elif event == "done":
            task = self.bar.tasks[self.tasks[stage]]
            self._set(stage, completed=task.total or 1, total=task.total or 1, mark="[green]✓[/]",
                      amount=f"{info['seconds']:.0f} s", detail=info["detail"])
            self.bar.stop_task(self.tasks[stage])


def print_summary(summary: dict, console: Console) -> None:
    crafter = "crafter_score" in summary["behaviour"]
    table = Table(title=f"{summary['env']}: {summary['behaviour']['episodes']} episodes per policy, same seeds "
                        f"(seed {summary['eval_seed']})")
    table.add_column("policy")
    table.add_column("mean return ± s.e.", justify="right")
    if crafter:
        table.add_column("Crafter score", justify="right")
    table.add_column("mean length", justify="right")
    names = {"behaviour": f"behaviour ({summary['behaviour']['policy']})", "random": "uniform random",
             "bc": "BC (phase 2)", "dreamer": "Dreamer (phase 3)", "bc_greedy": "BC, greedy (policy's mode)",
             "dreamer_greedy": "Dreamer, greedy (policy's mode)"}
    for row, label in names.items():
        entry = summary[row]
        cells = [label, f"{entry['return_mean']:.2f} ± {entry['return_stderr']:.2f}"]
        if crafter:
            cells.append(f"{entry['crafter_score']:.2f} %")
        cells.append(f"{entry['length_mean']:.0f}")
        table.add_row(*cells)
    console.print(table)
    diff = summary["dreamer_minus_bc"]
    verdict = "Dreamer beat BC" if summary["dreamer_beat_bc"] else "Dreamer did not beat BC"
    console.print(f"Dreamer − BC: {diff['mean']:+.2f} ± {diff['stderr']:.2f} (paired over the same {diff['episodes']} "
                  f"seeds): {verdict} (by more than two standard errors).", highlight=False)
    greedy, behind = summary["greedy_dreamer_minus_bc"], summary["dreamer_minus_behaviour"]
    console.print(f"Greedy: Dreamer − BC {greedy['mean']:+.2f} ± {greedy['stderr']:.2f}. Dreamer − behaviour: sampled "
                  f"{behind['dreamer']['mean']:+.2f} ± {behind['dreamer']['stderr']:.2f}, greedy "
                  f"{behind['dreamer_greedy']['mean']:+.2f} ± {behind['dreamer_greedy']['stderr']:.2f}.", highlight=False)
    if summary.get("imagination_ranking"):
        from dreamer_model.eval.ranking import ranking_line

        console.print(ranking_line(summary["imagination_ranking"]), highlight=False)
    a = summary["artefacts"]
    paths = [("store", a["store"]), ("tokenizer checkpoint", a["tokenizer"]),
             ("reconstruction grid", a["reconstruction_grid"] or "-"), ("world model checkpoint", a["world_model"]),
             ("rollout GIF", a["rollout_gif"]), ("BC agent checkpoint", a["bc_agent"]),
             ("Dreamer agent checkpoint", a["dreamer_agent"]),
             *((f"evaluation report ({row})", path) for row, path in a["eval_reports"].items()),
             ("comparison plot", a["comparison_plot"]), ("summary", a["summary"])]
    listing = Table(show_header=False, box=None, pad_edge=False)
    listing.add_column(style="bold")
    listing.add_column(overflow="fold")
    for name, path in paths:
        listing.add_row(name, path)
    console.print(listing)
    console.print(f"time in stages: {summary['seconds_in_stages'] / 60:.1f} min (this run "
                  f"{summary['seconds_this_run'] / 60:.1f} min)", highlight=False)


@report_errors("dreamer-train quickstart")
def quickstart_command(
    out: str = typer.Option(..., "--out", help="Folder for everything (rerun the same command to resume)."),
    env: Env = typer.Option(Env.minatar, "--env", help="minatar (default: breakout) or crafter."),
    game: Optional[str] = typer.Option(None, "--game", help="MinAtar game (default breakout)."),
    minutes: float = typer.Option(15.0, "--minutes", help="Overall time budget; sets data size, evaluation "
                                                           "episodes and each training stage's share."),
    device: str = typer.Option("auto", "--device", help="cpu or cuda (auto: cuda when present)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the data, the training and the evaluation episodes."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """The whole pipeline on a default that needs no download: collect → ingest → tokenizer → tokenize →
    phase 1 → phase 2 → phase 3 → evaluate behaviour / random / BC / Dreamer (the agents sampled and greedy);
    writes DIR/summary.json."""
    from dreamer_model.quickstart import QuickstartOptions, Quickstart

    quickstart = Quickstart(QuickstartOptions(out=out, env=env.value, game=game, minutes=minutes, device=device,
                                              seed=seed))  # checks everything before the live view starts
    with StageView() as view:
        quickstart.emit = view
        summary = quickstart.run()
    print_summary(summary, Console())


def register(app: typer.Typer) -> None:
    """Add quickstart to ``dreamer-train``."""
    app.command("quickstart")(quickstart_command)
