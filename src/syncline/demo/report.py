"""What the demo shows at the end: one row per API, full run against incremental run.

The request and 429 counts are the *server's* (the emulation's ``__stats``),
not syncline's own bookkeeping: the demo's claim "zero 429s, N calls" is then
the referee's word.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from syncline.demo.apis import DemoApi

__all__ = ["ApiOutcome", "Phase", "print_hints", "print_report"]


@dataclass(frozen=True, slots=True)
class Phase:
    """One API's share of one sync run."""

    records: int
    requests: int
    rate_limited: int
    seconds: float
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    errors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ApiOutcome:
    api: DemoApi
    full: Phase
    incremental: Phase
    matches: bool

    @property
    def ok(self) -> bool:
        return self.matches and not self.full.errors and not self.incremental.errors

    def cost(self) -> str:
        """The incremental run's calls as a share of the full run's."""
        if not self.full.requests:
            return "-"
        share = 100 * self.incremental.requests / self.full.requests
        return f"{share:.0f}%"


def _arrow(full: float | int, incremental: float | int, unit: str = "") -> str:
    if isinstance(full, float):
        return f"{full:.1f}{unit} → {incremental:.1f}{unit}"
    return f"{full:,} → {incremental:,}"


def _changes(phase: Phase) -> str:
    return f"+{phase.inserted} ~{phase.updated} -{phase.deleted}"


def print_report(console: Console, outcomes: list[ApiOutcome], seconds: float) -> None:
    """The summary table (server-counted calls and 429s), then any error in full.

    Laid out to fit 80 columns: the mode goes under the API's name, and the
    full and incremental runs share a cell (``full → incremental``).
    """
    table = Table(
        title=f"full sync → incremental sync ({seconds:.1f}s in all)",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        padding=0,
        show_edge=False,
    )
    table.add_column("API", no_wrap=True)
    table.add_column("records", justify="right", no_wrap=True)
    table.add_column("calls", justify="right", no_wrap=True)
    table.add_column("incr/full", justify="right", no_wrap=True)
    table.add_column("seconds", justify="right", no_wrap=True)
    table.add_column("changes", justify="right", no_wrap=True)
    table.add_column("429s", justify="right", no_wrap=True)
    table.add_column("= API", justify="center", no_wrap=True)
    for outcome in outcomes:
        api, full, incremental = outcome.api, outcome.full, outcome.incremental
        name = Text(api.title)
        name.append(f"\n{api.note}", style="dim")
        verdict = Text("yes", style="green") if outcome.ok else Text("NO", style="bold red")
        table.add_row(
            name,
            f"{full.records:,}",
            _arrow(full.requests, incremental.requests),
            outcome.cost(),
            _arrow(full.seconds, incremental.seconds),
            _changes(incremental),
            str(full.rate_limited + incremental.rate_limited),
            verdict,
        )
    console.print(table)
    console.print(
        "calls, 429s: as the sandbox counted them.  changes: +inserted ~updated -deleted,\n"
        "found by the incremental run.  = API: the store equals the API's data afterwards.",
        style="dim",
        highlight=False,
    )
    for outcome in outcomes:
        for error in (*outcome.full.errors, *outcome.incremental.errors):
            console.print(f"[red]{outcome.api.title}:[/] {escape(error)}", highlight=False)
        if not outcome.matches:
            console.print(f"[red]{outcome.api.title}: the store differs from the API's data[/]")


def print_hints(console: Console, db: str, config: str) -> None:
    query = "SELECT id, json_extract(_data, '$.name') FROM products LIMIT 5"
    lines = [
        (f'sqlite3 {db} "{query}"', ""),
        (f"syncline status -c {config}", "rows, watermarks, sync tokens per tenant"),
        (f"syncline changes -c {config} --format table", "what the incremental run changed"),
        ("syncline presets", "the four configs for the real APIs"),
        ("syncline init --preset exact-online", "write one, then fill in what its header names"),
    ]
    width = max(len(command) for command, _ in lines if _) + 3
    console.print("\n[bold]Try next[/]")
    for command, why in lines:
        console.print(f"  {command:<{width}}[dim]{why}[/]", highlight=False, soft_wrap=True)
    console.print("Presets and what each costs: docs/presets.md", highlight=False)
