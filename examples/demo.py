"""`make demo`: the whole loop on the embedded default, with no API token needed.

Starts the sandbox API on 127.0.0.1, syncs three streams into SQLite, changes
the remote data, syncs again (only the changes travel), and shows the result.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from syncline.sandbox import SandboxProcess

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "demo.yaml"
OUTPUT = HERE.parent / "demo-output"
TOKEN = "demo-token"


def syncline(*args: str, env: dict[str, str]) -> None:
    command = [sys.executable, "-m", "syncline", *args, "-c", str(CONFIG)]
    print(f"\n$ syncline {' '.join(args)} -c examples/demo.yaml", flush=True)
    done = subprocess.run(command, env=env, check=False)
    if done.returncode not in (0,):
        sys.exit(done.returncode)


def main() -> None:
    shutil.rmtree(OUTPUT, ignore_errors=True)
    OUTPUT.mkdir()
    with SandboxProcess(records=20_000, token=TOKEN) as api:
        env = {**os.environ, "SANDBOX_URL": api.base_url, "SANDBOX_TOKEN": TOKEN}
        print(f"sandbox API with 20,000 records at {api.base_url}")
        syncline("check", env=env)
        syncline("sync", env=env)
        changed = api.mutate(update=37, insert=5)
        print(
            f"\nthe API changed: {len(changed['updated'])} records updated, "
            f"{len(changed['inserted'])} inserted"
        )
        syncline("sync", env=env)
        syncline("status", env=env)
    db = sqlite3.connect(OUTPUT / "demo.db")
    print("\n$ sqlite3 demo-output/demo.db \"SELECT id, json_extract(_data, '$.name') ...\"")
    query = (
        "SELECT id, json_extract(_data, '$.name'), json_extract(_data, '$.price'), _updated_at "
        "FROM products ORDER BY _updated_at DESC LIMIT 5"
    )
    for row in db.execute(query):
        print("  ", *row)
    print(f"\nThe store is {OUTPUT / 'demo.db'}; open it with any SQLite client.")


if __name__ == "__main__":
    main()
