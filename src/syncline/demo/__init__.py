"""``syncline demo``: the four presets against the sandbox's emulations, start to finish.

Why it exists: a newcomer without a single API token should see, in one
command, what syncline does with real-world APIs: each preset (unchanged but
for its environment) syncs its emulation into one SQLite file with live
progress, the emulated data changes, the incremental run fetches only what
changed, and the store is compared with the emulation's data. The summary
says what each run cost, by the server's own count.

The sandbox runs in a child process on a free loopback port, so the demo's
client talks to it over real sockets exactly as it would to the real APIs.
"""

from __future__ import annotations

import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from syncline.config import Config, load_config
from syncline.demo.apis import APIS, DemoApi, store_matches
from syncline.demo.files import DemoError, claim_files, config_text, mark_store
from syncline.demo.report import ApiOutcome, Phase, print_hints, print_report
from syncline.engine import JobResult, ProgressListener, SyncSummary, run_sync
from syncline.plan import Job
from syncline.presets import get_preset
from syncline.progress import BarsListener, LogLinesListener
from syncline.sandbox import SandboxProcess
from syncline.signals import run_until_signalled
from syncline.stores import open_store

__all__ = ["DemoError", "run_demo"]

CONCURRENCY = 6
"""Jobs in flight: enough to keep the sandbox busy on two cores, few enough to stay readable."""


@dataclass
class _Timed:
    """A progress listener that also notes when each source's first job started and last ended."""

    inner: ProgressListener
    started: dict[str, float] = field(default_factory=dict)
    ended: dict[str, float] = field(default_factory=dict)

    def job_started(self, job: Job) -> None:
        self.started.setdefault(job.source_name, time.perf_counter())
        self.inner.job_started(job)

    def page_committed(self, job: Job, records: int, requests: int) -> None:
        self.inner.page_committed(job, records, requests)

    def job_finished(self, job: Job, result: JobResult) -> None:
        self.ended[job.source_name] = time.perf_counter()
        self.inner.job_finished(job, result)

    def seconds(self, source: str) -> float:
        return self.ended.get(source, 0.0) - self.started.get(source, 0.0)


def run_demo(db: Path, *, quick: bool = False, console: Console | None = None) -> bool:
    """Run the demo into ``db``; True when every API synced and its store equals its data.

    ``quick`` keeps the emulations' default sizes (a few hundred records each)
    instead of the demo's larger ones. Raises :class:`DemoError` when ``db``
    (or the config written next to it) belongs to someone else.
    """
    out = console or Console()
    err = Console(stderr=True)
    config_path = db.with_suffix(".yaml")
    claim_files(db, config_path)
    seeds = None if quick else {api.seed: {"tenants": api.full_tenants} for api in APIS}
    began = time.perf_counter()
    out.print("[bold]syncline demo[/]: starting the sandbox's emulations of four real APIs ...")
    with SandboxProcess(seed_config=seeds) as sandbox:
        config = _write_config(sandbox, db, config_path)
        _announce(out, sandbox)
        out.print("\n[bold]1. Full sync[/] (the first run of each preset reads everything)")
        full = _run_phase(config, sandbox, err)
        out.print("\n[bold]2. The APIs' data changes[/]")
        for api in APIS:
            for change in api.mutations:
                sandbox.seed_mutate(api.seed, change.tenant, change.update, change.insert,
                                    change.delete)  # fmt: skip
            out.print(f"  {api.title}: " + ", ".join(_describe(api)), highlight=False)
        out.print("\n[bold]3. Incremental sync[/] (each preset's most economical mode)")
        incremental = _run_phase(config, sandbox, err)
        outcomes = [
            ApiOutcome(
                api, full[api.preset], incremental[api.preset], store_matches(db, api, sandbox)
            )
            for api in APIS
        ]
    out.print()
    print_report(out, outcomes, time.perf_counter() - began)
    print_hints(out, escape(str(db)), escape(str(config_path)))
    return all(outcome.ok for outcome in outcomes)


def _write_config(sandbox: SandboxProcess, db: Path, path: Path) -> Config:
    """Write the four presets as one config pointed at ``sandbox``; load it with that env only."""
    environ: dict[str, str] = {}
    sources: list[tuple[str, dict[str, list[Any]] | None]] = []
    for api in APIS:
        environ |= api.environment(sandbox)
        tenants = api.tenants(sandbox.seed_config(api.seed))
        numbers = [int(t) if t.isdecimal() else t for t in tenants]
        sources.append((api.preset, None if api.partition is None else {api.partition: numbers}))
    path.write_text(config_text(db.name, sources, environ), encoding="utf-8")
    config = load_config(path, environ=environ)
    open_store(config.store).close()  # created by syncline (0600), then marked as the demo's
    mark_store(db)
    return config


def _announce(out: Console, sandbox: SandboxProcess) -> None:
    for api in APIS:
        config = sandbox.seed_config(api.seed)
        sizes = ", ".join(f"{t}: {config['tenants'][t]:,}" for t in api.tenants(config))
        out.print(
            f"  {api.title:<22} {sandbox.seed_url(api.seed):<44} preset {api.preset:<22} {sizes}",
            highlight=False,
        )


def _describe(api: DemoApi) -> list[str]:
    return [
        f"{change.tenant} +{change.insert} ~{change.update} -{change.delete}"
        for change in api.mutations
    ]


def _run_phase(config: Config, sandbox: SandboxProcess, err: Console) -> dict[str, Phase]:
    """One sync of everything, with live progress; each API's share of it, by preset."""
    for api in APIS:
        sandbox.seed_reset_stats(api.seed)
    bars = err.is_terminal
    timed = _Timed(BarsListener(err) if bars else LogLinesListener(err))

    def go() -> Coroutine[Any, Any, SyncSummary]:
        return run_sync(config, listener=timed, concurrency=CONCURRENCY)

    if isinstance(timed.inner, BarsListener):
        with timed.inner:
            summary = run_until_signalled(go)
    else:
        summary = run_until_signalled(go)
    return {api.preset: _phase(api, summary, sandbox, timed) for api in APIS}


def _phase(api: DemoApi, summary: SyncSummary, sandbox: SandboxProcess, timed: _Timed) -> Phase:
    sources = set(get_preset(api.preset).data()["sources"])
    results = [result for result in summary.streams if result.source in sources]
    mirrors = {api.deletions[0]} if api.deletions else set()
    stats = sandbox.seed_stats(api.seed)
    return Phase(
        records=sum(r.records for r in results if r.stream not in mirrors),
        requests=int(stats["total"]),
        rate_limited=int(stats["rate_limited"]),
        seconds=max((timed.seconds(source) for source in sources), default=0.0),
        inserted=sum(r.inserted for r in results if r.stream not in mirrors),
        updated=sum(r.updated for r in results),
        deleted=sum(r.deleted + (r.inserted if r.stream in mirrors else 0) for r in results),
        errors=tuple(
            f"{r.stream} [{r.partition}] {r.status}: {r.error}" for r in results if r.status != "ok"
        ),
    )
