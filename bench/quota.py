"""The quota scenario: five tenants, each held by the sandbox to 10 calls per second.

20,000 records per tenant at 100 a page is 200 calls each. The tenants run in
parallel, so the whole sync can take no less than one tenant's share of its
own limit: 200 calls at 10 per second, 20 s (strictly, 19 s: a sliding window
lets the first 10 go at once). Three runs against the same sandbox:

- ``declared``: the limit is in the config (``limits``), headers are off;
- ``learned``: no ``limits``; the sandbox reports its window in Exact
  Online's headers (epoch-millisecond resets), which syncline reads;
- ``learned (whole seconds)``: the same with ``X-RateLimit-*`` whose reset is
  rounded up to whole seconds, as most APIs send it (shown for information).

Run alone: ``python bench/quota.py``; ``make bench`` includes it.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import syncline
from syncline.sandbox import SandboxProcess

TENANTS = ("t1", "t2", "t3", "t4", "t5")
RECORDS = 20_000
PAGE = 100
CALLS, PER = 10, 1.0


def stream() -> dict[str, Any]:
    return {
        "path": "/page/items",
        "params": {"tenant": "{tenant}"},
        "records": "data",
        "primary_key": "id",
        "paginate": {
            "type": "page_number",
            "size_param": "per_page",
            "size": PAGE,
            "last_page": "last_page",
        },
    }


def one_run(api: SandboxProcess, headers: str, declared: bool) -> dict[str, Any]:
    api.set_limits(
        tenant_param="tenant",
        windows=[{"calls": CALLS, "per": PER, "kind": "sliding", "name": "minutely"}],
        headers=headers,
    )
    source: dict[str, Any] = {
        "base_url": api.base_url,
        "partitions": {"tenant": list(TENANTS)},
        "streams": {"items": stream()},
    }
    if declared:
        source["limits"] = [{"calls": CALLS, "per": PER}]
    with tempfile.TemporaryDirectory() as tmp:
        config = syncline.config_from_dict(
            {"store": f"sqlite:///{tmp}/quota.db", "sources": {"sb": source}}, base_dir=Path(tmp)
        )
        started = time.perf_counter()
        summary = syncline.sync(config)
        seconds = time.perf_counter() - started
    if not summary.ok:
        raise SystemExit(json.dumps(summary.as_dict()))
    tenants = api.limits()["tenants"]
    calls = {t: tenants[t]["allowed"] for t in TENANTS}
    per_tenant = max(calls.values())
    minimum = math.ceil(per_tenant / CALLS) * PER
    strict = (per_tenant - CALLS) / CALLS * PER
    return {
        "seconds": seconds,
        "records": summary.records,
        "calls_per_tenant": calls,
        "rejected_429": sum(tenants[t]["rejected"] for t in TENANTS),
        "minimum_seconds": minimum,
        "strict_minimum_seconds": strict,
        "ratio": seconds / minimum,
        "ratio_strict": seconds / strict,
        # Of the calls its sliding window allowed over the run: a first burst, then the rate.
        "utilisation": {t: calls[t] / (CALLS * (1 + seconds / PER)) for t in TENANTS},
    }


def main() -> dict[str, Any]:
    with SandboxProcess(records=RECORDS) as api:
        return {
            "declared": one_run(api, "none", declared=True),
            "learned": one_run(api, "exact", declared=False),
            "learned (whole seconds)": one_run(api, "x-ratelimit", declared=False),
        }


def print_report(report: dict[str, Any]) -> None:
    print(
        f"\nquota: {len(TENANTS)} tenants x {RECORDS:,} records at {PAGE}/page, "
        f"each limited to {CALLS} calls per {PER:g}s (sliding); ratio: wall / (calls / rate), "
        "strict: wall / (calls - first burst) / rate"
    )
    print(
        f"{'':26}{'seconds':>9}{'minimum':>9}{'ratio':>7}{'strict':>8}{'429s':>6}"
        f"{'utilisation':>13}"
    )
    for name, run in report.items():
        low = min(run["utilisation"].values())
        high = max(run["utilisation"].values())
        print(
            f"{name:26}{run['seconds']:9.2f}{run['minimum_seconds']:9.1f}{run['ratio']:7.3f}"
            f"{run['ratio_strict']:8.3f}{run['rejected_429']:6}{f'{low:.0%}-{high:.0%}':>13}"
        )


if __name__ == "__main__":
    result = main()
    print_report(result)
    if "--json" in sys.argv:
        print(json.dumps(result, indent=2))
