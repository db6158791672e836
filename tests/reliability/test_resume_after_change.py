"""A pass killed mid-way, resumed after the source changed: nothing may be lost.

(And the same without a kill: records changing while a pass pages.)

Real sources change between a crash and the rerun. Here the real process is
SIGKILLed after its second committed page, records are updated at the source
(an updated record moves to the end of an ``updated_at``-ordered listing), and
the pass is resumed; one more incremental run follows. The store must then
equal the source. Keyset paginators (cursor, next link, GraphQL relay) resume
by key and pass; position paginators (page number, offset, Link header pages)
resume at a page *number* of a listing that has shifted under them.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

import syncline
from syncline.plan import Job
from syncline.sandbox import SandboxProcess
from tests.conftest import make_config, stored
from tests.integration.streams import STYLES_BY_NAME, comparable, expected_records
from tests.reliability.helpers import mismatches, run_cli, write_config

RECORDS = 300
SIZE = 50

STYLES = [
    "cursor",
    "next_link",
    "relay",
    "page_number",
    "offset",
    "link_header",
]


@pytest.mark.parametrize("style_name", STYLES)
def test_a_pass_resumed_after_the_source_changed_loses_no_record(
    sandbox: SandboxProcess, tmp_path: Path, style_name: str
) -> None:
    style = STYLES_BY_NAME[style_name]
    sandbox.admin_reset(records=RECORDS, seed=7)
    config = write_config(tmp_path, sandbox.base_url, style.stream(SIZE))
    db = tmp_path / "store.db"

    killed = run_cli(config, failpoint="engine.page_committed:2")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    changed = sandbox.mutate(update=20)
    assert any(key <= 2 * SIZE for key in changed["updated"])  # some were on committed pages
    resumed = run_cli(config)
    assert resumed.returncode == 0, resumed.stderr
    later = run_cli(config)
    assert later.returncode == 0, later.stderr

    expected = expected_records(style, sandbox.records())
    actual = comparable(style, stored(db))
    assert actual == expected, mismatches(expected, actual)


class ChangeAfterPage:
    """A progress listener that updates records at the source right after page ``n`` commits."""

    def __init__(self, sandbox: SandboxProcess, n: int) -> None:
        self.sandbox = sandbox
        self.n = n
        self.pages = 0
        self.updated: list[int] = []

    def job_started(self, job: Job) -> None:
        pass

    def page_committed(self, job: Job, records: int, requests: int) -> None:
        self.pages += 1
        if self.pages == self.n:
            self.updated = self.sandbox.mutate(update=20)["updated"]

    def job_finished(self, job: Job, result: object) -> None:
        pass


@pytest.mark.parametrize("style_name", STYLES)
def test_records_changing_while_a_pass_pages_are_not_lost(
    sandbox: SandboxProcess, tmp_path: Path, style_name: str
) -> None:
    style = STYLES_BY_NAME[style_name]
    sandbox.admin_reset(records=RECORDS, seed=7)
    db = tmp_path / "store.db"
    config = make_config(sandbox.base_url, db, {"items": style.stream(SIZE)})
    listener = ChangeAfterPage(sandbox, 2)

    assert syncline.sync(config, listener=listener).ok
    assert any(key <= 2 * SIZE for key in listener.updated)
    assert syncline.sync(config).ok  # the next incremental run

    expected = expected_records(style, sandbox.records())
    actual = comparable(style, stored(db))
    assert actual == expected, mismatches(expected, actual)
