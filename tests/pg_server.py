"""A real PostgreSQL server for the tests, started from the Debian binaries in a temp dir.

No mocks of the database: the store's guarantees (one transaction per page,
locks between processes) are only proven against a real server. One server
serves the whole session; each test gets its own schema.

- It listens on 127.0.0.1 only, on a free port, with its unix socket in its
  own temp dir, and trusts the test role (nothing else can reach it).
- initdb and postgres refuse to run as root; under root (CI) they run as the
  ``postgres`` OS user (``runuser``), which owns the temp dir.
- The database's default collation is ICU ``en-US``, on purpose: in it
  ``"a" < "B"``, so any comparison the store leaves to the database's
  collation instead of byte order shows up as a failing test.
- ``fsync=off``: the server is not what the tests crash; the sync process is.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Self

ROLE = "syncline_test"
DATABASE = "syncline_test"
_INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl) not found: install them "
    "(apt-get install -y postgresql) or set SYNCLINE_PG_BIN to their directory"
)


def find_bindir() -> Path:
    """The directory holding initdb and pg_ctl, newest PostgreSQL first."""
    candidates = [os.environ.get("SYNCLINE_PG_BIN", "")]
    candidates += sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True
    )
    found = shutil.which("initdb")
    if found:
        candidates.append(str(Path(found).resolve().parent))
    for candidate in filter(None, candidates):
        path = Path(candidate)
        if (path / "initdb").exists() and (path / "pg_ctl").exists():
            return path
    raise RuntimeError(_INSTALL_HINT)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostgresServer:
    """``with PostgresServer() as server:`` a running server; ``server.url(schema)``."""

    def __init__(self) -> None:
        self.bindir = find_bindir()
        self.port = 0
        root = os.geteuid() == 0
        # Under root, /tmp (world-traversable), not a TMPDIR the server's user may not enter.
        self.dir = Path(tempfile.mkdtemp(prefix="syncline-pg-", dir="/tmp" if root else None))
        self._as_user: list[str] = []
        if root:
            user = _unprivileged_user()
            entry = pwd.getpwnam(user)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
            self._as_user = ["runuser", "-u", user, "--"]
        self.dir.chmod(0o700)
        self.data = self.dir / "data"

    def _run(self, *command: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*self._as_user, *command], capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
        return done

    def __enter__(self) -> Self:
        try:
            self._start()
        except BaseException:
            self._cleanup()
            raise
        return self

    def _start(self) -> None:
        self._run(
            str(self.bindir / "initdb"), "-D", str(self.data), "-U", ROLE, "-A", "trust",
            "-E", "UTF8", "--locale=C.UTF-8", "--locale-provider=icu", "--icu-locale=en-US",
            "--no-sync",
        )  # fmt: skip
        for attempt in range(5):
            self.port = _free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} "
                "-c fsync=off -c full_page_writes=off -c max_connections=300"
            )
            try:
                self._run(
                    str(self.bindir / "pg_ctl"), "start", "-w", "-t", "60", "-D", str(self.data),
                    "-l", str(self.dir / "server.log"), "-o", options,
                )  # fmt: skip
                break
            except RuntimeError:
                if attempt == 4:
                    raise RuntimeError("PostgreSQL did not start:\n" + self._log_tail()) from None
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return (self.dir / "server.log").read_text()[-3000:]
        return ""

    def url(self, schema: str | None = None, *, user: str = ROLE) -> str:
        url = f"postgresql://{user}@127.0.0.1:{self.port}/{DATABASE}"
        return url if schema is None else f"{url}?schema={schema}"

    @contextlib.contextmanager
    def _admin(self, database: str = "postgres"):  # type: ignore[no-untyped-def]
        import psycopg

        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user={ROLE} dbname={database}", autocommit=True
        ) as conn:
            yield conn

    def execute(self, sql: str) -> None:
        """Run one statement as the superuser in the test database."""
        with self._admin(DATABASE) as conn:
            conn.execute(sql.encode())

    def drop_schema(self, schema: str) -> None:
        self.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._cleanup()

    def _cleanup(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self._run(str(self.bindir / "pg_ctl"), "stop", "-D", str(self.data), "-m", "fast")
        shutil.rmtree(self.dir, ignore_errors=True)


def _unprivileged_user() -> str:
    for user in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(user)
            return user
    raise RuntimeError("running as root, and neither a 'postgres' nor a 'nobody' user exists")
