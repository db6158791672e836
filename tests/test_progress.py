"""What a user sees while a sync runs: bars on a terminal, one line per job otherwise."""

from __future__ import annotations

import io

from rich.console import Console

from syncline.config import config_from_dict
from syncline.engine import JobResult
from syncline.plan import plan_jobs
from syncline.progress import BarsListener, LogLinesListener

CONFIG = config_from_dict(
    {
        "sources": {
            "shop": {
                "base_url": "http://127.0.0.1:1",
                "partitions": {"company_id": [7]},
                "streams": {"products": {"path": "/c/{company_id}/p", "primary_key": "id"}},
            }
        }
    }
)


def test_log_lines_name_the_job_counts_and_outcome() -> None:
    out = io.StringIO()
    listener = LogLinesListener(Console(file=out, width=200))
    (job,) = plan_jobs(CONFIG)
    listener.job_started(job)
    listener.job_finished(
        job, JobResult("shop", "products", "company_id=7", 120, 3, 3, "failed", "boom")
    )

    line = out.getvalue()
    assert line.startswith("shop.products [company_id=7]: 120 records, 3 pages, 3 requests in ")
    assert line.rstrip().endswith("FAILED: boom")


def test_bars_show_records_pages_and_outcome() -> None:
    out = io.StringIO()
    console = Console(file=out, width=200, force_terminal=True)
    (job,) = plan_jobs(CONFIG)
    with BarsListener(console) as bars:
        bars.job_started(job)
        bars.page_committed(job, 100, 1)
        bars.page_committed(job, 50, 2)
        bars.job_finished(job, JobResult("shop", "products", "company_id=7", 150, 2, 2))

    text = out.getvalue()
    assert "shop.products [company_id=7]" in text
    assert "150 records" in text
    assert "2 pages" in text
    assert "ok" in text
