"""TLS verification against a real HTTPS server on 127.0.0.1 with a throwaway CA.

The certificates come from ``trustme`` (a dev dependency), generated in memory:
a CA, a leaf for ``IP:127.0.0.1`` and a leaf for ``DNS:wrong.example``, both
signed by the CA. Only the CA certificate is written to disk, as ``ca.pem``,
for ``ca_bundle`` to point at. The server is ``http.server`` in a thread, every
accepted socket wrapped with an ``ssl.SSLContext`` that presents one of the
leaves; it serves ``{"items": [{"id": 1}]}`` and counts the
requests that got past the handshake.

Each run uses ``-c <dir>/syncline.yaml`` from another working directory, so a
relative ``ca_bundle`` is proven to resolve against the config file.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import pytest
import trustme
import yaml

TIMEOUT = 60
RETRY: dict[str, Any] = {"wait_initial": 0.01, "wait_max": 0.05, "min_wait": 0.01, "attempts": 3}
BODY = json.dumps({"items": [{"id": 1}]}).encode()
OFF_WARNING = "TLS certificate verification is OFF"


# --- a throwaway CA ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca: Path
    """The CA certificate (PEM): what ``ca_bundle`` points at."""
    good: trustme.LeafCert
    """Certificate and key for IP 127.0.0.1."""
    wrong_host: trustme.LeafCert
    """Certificate and key for wrong.example (signed by the same CA)."""


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    ca = trustme.CA()
    ca_pem = tmp_path_factory.mktemp("pki") / "ca.pem"
    ca.cert_pem.write_to_path(ca_pem)
    return Pki(ca_pem, ca.issue_cert("127.0.0.1"), ca.issue_cert("wrong.example"))


# --- an HTTPS server on 127.0.0.1 -------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    server: _TlsServer

    def setup(self) -> None:
        self.request.settimeout(5)
        self.request.do_handshake()  # here, in the request's thread, not in accept()
        super().setup()

    def do_GET(self) -> None:
        self.server.served += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _TlsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.context = context
        self.served = 0
        self.failed_handshakes = 0

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = self.socket.accept()
        wrapped = self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return wrapped, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.failed_handshakes += 1  # the client refused our certificate: expected, quiet


class HttpsServer:
    def __init__(self, cert: trustme.LeafCert) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(context)
        self.httpd = _TlsServer(context)
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.httpd.server_address[1]}"

    def saw_refused_handshake(self, before: int) -> bool:
        """Whether a client refused our certificate since ``before`` (waits up to 2 s)."""
        for _ in range(200):
            if self.httpd.failed_handshakes > before:
                return True
            time.sleep(0.01)
        return False

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)


@pytest.fixture(scope="module")
def good_server(pki: Pki) -> Iterator[HttpsServer]:
    with HttpsServer(pki.good) as server:
        yield server


@pytest.fixture(scope="module")
def wrong_host_server(pki: Pki) -> Iterator[HttpsServer]:
    with HttpsServer(pki.wrong_host) as server:
        yield server


# --- running syncline against it --------------------------------------------------------------


@dataclass
class Project:
    """A config in ``root/conf`` (with its CA file), run from ``root``."""

    root: Path

    @property
    def conf(self) -> Path:
        return self.root / "conf"

    @property
    def db(self) -> Path:
        return self.conf / "store.db"

    def write(self, base_url: str, **source: Any) -> None:
        self.conf.mkdir(exist_ok=True)
        config = {
            "store": "sqlite:///store.db",
            "sources": {
                "tls": {
                    "base_url": base_url,
                    "retry": RETRY,
                    "streams": {
                        "items": {"path": "/items", "records": "items", "primary_key": "id"}
                    },
                    **source,
                }
            },
        }
        (self.conf / "syncline.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    def run(self, command: str, *options: str) -> subprocess.CompletedProcess[str]:
        """``syncline COMMAND -c conf/syncline.yaml OPTIONS`` from the project root."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCLINE_")}
        return subprocess.run(
            [sys.executable, "-m", "syncline", command, "-c", "conf/syncline.yaml", *options],
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )

    def sync(self) -> tuple[int, dict[str, Any], str]:
        done = self.run("sync", "--json")
        try:
            summary: dict[str, Any] = json.loads(done.stdout)
        except ValueError:
            pytest.fail(f"no JSON summary (exit {done.returncode}): {done.stderr}")
        return done.returncode, summary, done.stderr

    def rows(self) -> int:
        if not self.db.exists():
            return 0
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True) as conn:
            tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
            if "items" not in tables:
                return 0
            (count,) = conn.execute("SELECT count(*) FROM items").fetchone()
        return int(count)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


def test_untrusted_certificate_fails_closed(good_server: HttpsServer, project: Project) -> None:
    served, refused = good_server.httpd.served, good_server.httpd.failed_handshakes
    project.write(good_server.url)

    code, summary, stderr = project.sync()

    assert code == 1, summary
    (job,) = summary["streams"]
    assert job["status"] == "failed"
    assert "certificate verify failed" in job["error"].lower(), job["error"]
    assert project.rows() == 0
    assert good_server.saw_refused_handshake(refused)  # it reached our server, and hung up
    assert good_server.httpd.served == served  # no request got past the handshake
    assert OFF_WARNING not in stderr


def test_ca_bundle_relative_to_the_config_is_trusted(
    pki: Pki, good_server: HttpsServer, project: Project
) -> None:
    project.write(good_server.url, ca_bundle="ca.pem")
    shutil.copy(pki.ca, project.conf / "ca.pem")
    assert not (project.root / "ca.pem").exists()  # only next to the config, not in the cwd

    code, summary, stderr = project.sync()

    assert code == 0, summary
    assert summary["records"] == 1
    assert project.rows() == 1
    assert OFF_WARNING not in stderr


def test_verify_false_succeeds_and_warns_on_every_run(
    good_server: HttpsServer, project: Project
) -> None:
    project.write(good_server.url, verify=False)

    for run in (1, 2):
        code, summary, stderr = project.sync()
        assert code == 0, (run, summary)
        assert summary["records"] == 1
        assert OFF_WARNING in stderr, (run, stderr)
    assert project.rows() == 1


def test_wrong_host_certificate_fails_even_with_the_ca_bundle(
    pki: Pki, wrong_host_server: HttpsServer, project: Project
) -> None:
    served, refused = wrong_host_server.httpd.served, wrong_host_server.httpd.failed_handshakes
    project.write(wrong_host_server.url, ca_bundle="ca.pem")
    shutil.copy(pki.ca, project.conf / "ca.pem")

    code, summary, _stderr = project.sync()

    assert code == 1, summary
    (job,) = summary["streams"]
    assert job["status"] == "failed"
    error = job["error"].lower()
    assert "certificate verify failed" in error, error
    assert "mismatch" in error or "hostname" in error, error  # the name, not the chain
    assert project.rows() == 0
    assert wrong_host_server.saw_refused_handshake(refused)
    assert wrong_host_server.httpd.served == served


def test_verify_takes_no_path(good_server: HttpsServer, project: Project) -> None:
    """``verify: ca.pem`` is a usage error pointing at ``ca_bundle``, not "verification off"."""
    project.write(good_server.url, verify="ca.pem")

    done = project.run("check")

    assert done.returncode == 2, done.stderr
    assert "ca_bundle" in done.stderr


def test_missing_ca_bundle_is_a_usage_error(good_server: HttpsServer, project: Project) -> None:
    served = good_server.httpd.served
    project.write(good_server.url, ca_bundle="no-such-ca.pem")

    done = project.run("sync", "--json")

    assert done.returncode == 2, done.stderr
    assert "no-such-ca.pem" in done.stderr
    assert good_server.httpd.served == served
