"""`make bench`: syncline against a minimal baseline, through the sandbox, into SQLite.

For each paginator (page_number, cursor): 100,000 records (~400 B each) at page
size 1000, syncline and the baseline each in a fresh process (peak RSS is read
from the kernel with wait4), best of REPEATS. Then syncline alone at 1,000,000
records for memory. Then records/s into every store (bench/stores.py), then the
call-budget scenario (bench/quota.py), then 1, 2 and 4 workers on 40 rate-limited
partitions (bench/scaleout.py; ``BENCH_SCALEOUT=0`` skips it). Prints
tables and writes bench/results/latest.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import quota  # bench/quota.py: the script's directory is on sys.path
import scaleout  # bench/scaleout.py
import stores  # bench/stores.py
from syncline.sandbox import SandboxProcess

HERE = Path(__file__).resolve().parent
SIZE = 1000
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
SMALL, LARGE = 100_000, int(os.environ.get("BENCH_LARGE", "1000000"))
SCALEOUT = os.environ.get("BENCH_SCALEOUT", "1") != "0"


def measure(script: str, base_url: str, style: str) -> dict[str, Any]:
    """Run one measured process; returns its JSON line plus its peak RSS in MiB."""
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen(
            [sys.executable, str(HERE / script), base_url, style, str(SIZE), f"{tmp}/bench.db"],
            stdout=subprocess.PIPE,
        )
        assert proc.stdout is not None
        output = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise SystemExit(f"{script} {style} failed ({proc.returncode}): {output!r}")
    result: dict[str, Any] = json.loads(output)
    result["peak_rss_mib"] = usage.ru_maxrss / 1024  # Linux reports KiB
    result["records_per_s"] = result["records"] / result["seconds"]
    return result


def best(script: str, base_url: str, style: str) -> dict[str, Any]:
    runs = [measure(script, base_url, style) for _ in range(REPEATS)]
    return min(runs, key=lambda r: r["seconds"])


def main() -> None:
    report: dict[str, Any] = {"records": SMALL, "page_size": SIZE, "repeats": REPEATS, "styles": {}}
    with SandboxProcess(records=SMALL) as api:
        for style in ("page_number", "cursor"):
            ours = best("syncline_run.py", api.base_url, style)
            base = best("baseline.py", api.base_url, style)
            report["styles"][style] = {
                "syncline": ours,
                "baseline": base,
                "time_ratio": ours["seconds"] / base["seconds"],
                "rss_ratio": ours["peak_rss_mib"] / base["peak_rss_mib"],
            }
    with SandboxProcess(records=LARGE) as api:
        large = measure("syncline_run.py", api.base_url, "page_number")
    small_rss = report["styles"]["page_number"]["syncline"]["peak_rss_mib"]
    report["large"] = {
        "records": LARGE,
        **large,
        "rss_ratio_vs_100k": large["peak_rss_mib"] / small_rss,
    }

    print(f"{SMALL:,} records, page size {SIZE}, best of {REPEATS}, into SQLite")
    print(f"{'':22}{'seconds':>9}{'records/s':>11}{'requests':>10}{'peak RSS MiB':>14}")
    for style, row in report["styles"].items():
        for who in ("syncline", "baseline"):
            r = row[who]
            print(
                f"{style + ' ' + who:22}{r['seconds']:9.2f}{r['records_per_s']:11,.0f}"
                f"{r['requests']:10}{r['peak_rss_mib']:14.1f}"
            )
        print(f"{style + ' ratio':22}{row['time_ratio']:9.2f}{'':21}{row['rss_ratio']:14.2f}")
    big = report["large"]
    print(
        f"\n{LARGE:,} records, page_number: {big['seconds']:.1f}s, "
        f"{big['records_per_s']:,.0f} records/s, peak RSS {big['peak_rss_mib']:.1f} MiB "
        f"= {big['rss_ratio_vs_100k']:.2f} x the 100k run"
    )
    report["stores"] = stores.main()
    stores.print_report(report["stores"])
    report["quota"] = quota.main()
    quota.print_report(report["quota"])
    if SCALEOUT:
        report["scaleout"] = scaleout.main()
        scaleout.print_report(report["scaleout"])
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
