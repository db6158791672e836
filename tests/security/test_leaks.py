"""The leak hunt: every credential kind, through every error path, must stay out of sight.

Each test runs the real ``syncline`` command (``--log-level debug sync --json``,
then ``status --json`` and ``config show``) against real servers on
127.0.0.1, then gathers everything a user, a log collector or a backup could
read: stdout and stderr of every command, every file the run left in its
directory (the config, the SQLite file and its WAL/SHM, byte for byte), and a
dump of every table of the store. Every secret is then searched for in all of
it, in the spellings it could take on the way out: raw, URL-encoded (both
``quote`` flavours), base64 (whole, and as it would appear inside a longer
base64 blob such as a Basic header), and for Basic auth ``base64(user:password)``.

The OAuth2 token file is the one place allowed to hold tokens: it is left out
of the search, must be mode 0600, and the tokens found in it (the access and
refresh tokens the sandbox issued) are added to the secrets searched elsewhere.

Secrets reach the config only as ``${env:NAME}``, so the config file itself is
a fair artifact to search (the one test about secrets typed into the file
searches only what the commands print).
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, quote, quote_plus, urlencode, urlsplit

import pytest
import yaml

from syncline.sandbox import SandboxProcess

RECORDS = 50
PAGE = 20
TIMEOUT = 60
RETRY: dict[str, Any] = {"wait_initial": 0.01, "wait_max": 0.05, "min_wait": 0.01, "attempts": 3}

BASIC_USER = "lc-user"
OAUTH_CLIENT_ID = "lc-client"

# One recognisable value per credential kind. The query key holds characters that URL
# encoding changes, so the encoded spellings differ from the raw one.
SECRETS: dict[str, str] = {
    "bearer": "tok-LEAKCHECK-7f3a9c",
    "bearer_wrong": "tok-WRONG-LEAKCHECK-51d0e2",
    "header_key": "hdr-LEAKCHECK-b81c44",
    "query_key": "qk-LEAKCHECK+4b/8e=",
    "apikey_header": "akh-LEAKCHECK-2c9d17",
    "param_token": "pt-LEAKCHECK-e03a55",
    "basic_password": "pw-LEAKCHECK-93ab0f",
    "userinfo_password": "ui-LEAKCHECK-6e2f18",
    "client_secret": "cs-LEAKCHECK-9d2e71",
    "client_secret_wrong": "cs-WRONG-LEAKCHECK-4a4a17",
    "refresh_token_invalid": "rt-INVALID-LEAKCHECK-0b7c3d",
}
ENV_OF: dict[str, str] = {label: f"SL_LEAK_{label.upper()}" for label in SECRETS}


def env_ref(label: str) -> str:
    return "${env:" + ENV_OF[label] + "}"


# --- spellings of a secret ------------------------------------------------------------------


@dataclass(frozen=True)
class Needle:
    label: str
    form: str
    value: str


def _base64_inside(raw: bytes, shift: int) -> str:
    """The base64 characters ``raw`` yields wherever it sits in a longer encoded blob.

    ``shift`` is the secret's offset modulo 3 inside that blob: the characters of
    groups shared with neighbouring bytes are cut off, what remains is fixed.
    """
    padded = b"\0" * shift + raw
    encoded = base64.b64encode(padded).decode()
    start = 4 if shift else 0
    end = len(padded) // 3 * 4
    return encoded[start:end]


def spellings(label: str, secret: str) -> list[Needle]:
    raw = secret.encode()
    forms = {
        "raw": secret,
        "quote": quote(secret, safe=""),
        "quote_keep_slash": quote(secret),
        "quote_plus": quote_plus(secret),
        "base64": base64.b64encode(raw).decode(),
        "base64url": base64.urlsafe_b64encode(raw).decode(),
    }
    for shift in range(3):
        forms[f"base64_inside_{shift}"] = _base64_inside(raw, shift)
    by_value: dict[str, list[str]] = {}
    for form, value in forms.items():
        by_value.setdefault(value, []).append(form)
    needles = [Needle(label, "=".join(names), value) for value, names in by_value.items()]
    assert all(len(n.value) >= 12 for n in needles), needles  # no accidental short matches
    return needles


def pair_spellings(label: str, user: str, secret: str) -> list[Needle]:
    """``base64(user:secret)`` as Basic auth sends it, raw and form-encoded (RFC 6749)."""
    needles = []
    for form, pair in (
        ("raw", f"{user}:{secret}"),
        ("form", f"{quote_plus(user)}:{quote_plus(secret)}"),
    ):
        encoded = base64.b64encode(pair.encode()).decode()
        needles.append(Needle(label, f"basic_{form}", encoded))
    return needles


def needles_for(*labels: str) -> list[Needle]:
    found: list[Needle] = []
    for label in labels:
        found += spellings(label, SECRETS[label])
    return found


# --- evidence: everything a run leaves readable ---------------------------------------------


@dataclass
class Evidence:
    artifacts: list[tuple[str, bytes]] = field(default_factory=list)

    def add(self, name: str, data: bytes | str) -> None:
        self.artifacts.append((name, data.encode() if isinstance(data, str) else data))

    def get(self, name: str) -> bytes:
        return next(data for artifact, data in self.artifacts if artifact == name)

    def add_process(self, name: str, done: subprocess.CompletedProcess[bytes]) -> None:
        self.add(f"{name}.stdout", done.stdout)
        self.add(f"{name}.stderr", done.stderr)

    def leaks(self, needles: list[Needle]) -> list[str]:
        """Every (secret spelling, artifact) pair that matched, case-insensitively."""
        found = []
        for name, blob in self.artifacts:
            lowered = blob.lower()
            for needle in needles:
                if needle.value.lower().encode() in lowered:
                    found.append(f"{needle.label} [{needle.form}: {needle.value}] in {name}")
        return found


def cli_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCLINE_")}
    env.update({ENV_OF[label]: value for label, value in SECRETS.items()})
    env.update(overrides)
    return env


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "syncline", *args]


def syncline(*args: str, cwd: Path, env: Mapping[str, str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        _command(*args), cwd=cwd, env=env, capture_output=True, timeout=TIMEOUT, check=False
    )


def syncline_parallel(
    commands: list[tuple[str, ...]], cwd: Path, env: Mapping[str, str]
) -> list[subprocess.CompletedProcess[bytes]]:
    """Run read-only commands side by side (each bounded by TIMEOUT)."""
    procs = [
        subprocess.Popen(
            _command(*args), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for args in commands
    ]
    try:
        done = []
        for args, proc in zip(commands, procs, strict=True):
            out, err = proc.communicate(timeout=TIMEOUT)
            done.append(subprocess.CompletedProcess(list(args), proc.returncode, out, err))
        return done
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=5)


def sync_run(
    evidence: Evidence, name: str, cwd: Path, env: Mapping[str, str], *extra: str
) -> tuple[int, dict[str, Any]]:
    """``syncline --log-level debug sync --json``: its exit code and parsed summary."""
    done = syncline("--log-level", "debug", "sync", "--json", *extra, cwd=cwd, env=env)
    evidence.add_process(name, done)
    try:
        summary: dict[str, Any] = json.loads(done.stdout)
    except ValueError:
        pytest.fail(f"sync printed no JSON summary (exit {done.returncode}): {done.stderr!r}")
    return done.returncode, summary


def dump_store(db: Path) -> str:
    """Every row of every table, read-only (the raw file was read before)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        tables = [
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        missing = {"_syncline_state", "_syncline_runs", "_syncline_rejects"} - set(tables)
        assert not missing, f"store lacks {missing}; tables: {tables}"
        lines = []
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                cells = [repr(v) if isinstance(v, bytes) else str(v) for v in row]
                lines.append(f"{table}: " + "\t".join(cells))
    finally:
        conn.close()
    return "\n".join(lines)


def finish(
    evidence: Evidence, cwd: Path, env: Mapping[str, str], token_file: Path | None = None
) -> None:
    """``status --json`` and ``config show``, then every file and every table."""
    status, show = syncline_parallel([("status", "--json"), ("config", "show")], cwd, env)
    evidence.add_process("status", status)
    evidence.add_process("config-show", show)
    assert status.returncode == 0, status.stderr
    assert show.returncode == 0, show.stderr
    assert isinstance(json.loads(status.stdout), list)
    for path in sorted(cwd.rglob("*")):
        if path.is_file() and path != token_file:
            evidence.add(f"file {path.relative_to(cwd)}", path.read_bytes())
    evidence.add("store tables", dump_store(cwd / "store.db"))


def assert_no_leaks(evidence: Evidence, needles: list[Needle]) -> None:
    findings = evidence.leaks(needles)
    assert len(evidence.artifacts) >= 8
    assert findings == [], f"{len(findings)} secret finding(s):\n" + "\n".join(findings)


def write_config(cwd: Path, sources: dict[str, Any]) -> None:
    config = {"store": "sqlite:///store.db", "sources": sources}
    (cwd / "syncline.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


# --- stream shapes on the sandbox -----------------------------------------------------------


def hal_stream() -> dict[str, Any]:
    return {
        "path": "/next/items",
        "params": {"limit": PAGE},
        "records": "_embedded.items",
        "primary_key": "id",
        "paginate": {"type": "next_link", "next_url_path": "_links.next.href"},
    }


def link_stream() -> dict[str, Any]:
    return {
        "path": "/link/items",
        "primary_key": "id",
        "paginate": {"type": "link_header", "size_param": "per_page", "size": PAGE},
    }


def page_stream(size: int = PAGE, **params: Any) -> dict[str, Any]:
    return {
        "path": "/page/items",
        "params": params,
        "records": "data",
        "primary_key": "id",
        "paginate": {
            "type": "page_number",
            "size_param": "per_page",
            "size": size,
            "last_page": "last_page",
        },
    }


# --- the detector itself, and secrets typed into the config file ----------------------------


def test_the_detector_sees_every_spelling() -> None:
    """A positive control: each way a secret can leave is caught; masked text is not."""
    secret = SECRETS["query_key"]
    needles = spellings("query_key", secret) + pair_spellings("pair", BASIC_USER, secret)
    pair = f"{BASIC_USER}:{secret}".encode()
    samples = {
        "raw": f"token={secret}",
        "query": f"GET /x?api_key={quote(secret, safe='')}&a=1",
        "query, lowercase hex": f"GET /x?k={quote(secret, safe='').lower()}",
        "form body": f"refresh_token={quote_plus(secret)}",
        "basic header": "Authorization: Basic " + base64.b64encode(pair).decode(),
    }
    for shift in range(3):  # "Bearer <secret>" base64-encoded at each alignment
        blob = b"x" * shift + b"Bearer " + secret.encode() + b" and more"
        samples[f"base64 blob, offset {shift}"] = base64.b64encode(blob).decode()
    for name, text in samples.items():
        evidence = Evidence()
        evidence.add(name, text)
        assert evidence.leaks(needles), name
    masked = Evidence()
    masked.add("masked", "GET /x?api_key=*** Authorization: *** X-Api-Key: ***")
    assert masked.leaks(needles) == []


def test_literal_secrets_warning_names_the_key_not_the_value(tmp_path: Path) -> None:
    """A token typed into the file is warned about by key; the value is not repeated."""
    write_config(
        tmp_path,
        {
            "literal": {
                "base_url": "http://127.0.0.1:9",  # never called: check and config show only
                "auth": {"type": "bearer", "token": SECRETS["bearer"]},
                "headers": {"X-Api-Key": SECRETS["header_key"]},
                "streams": {"literal_page": page_stream()},
            }
        },
    )
    check, show = syncline_parallel([("check",), ("config", "show")], tmp_path, cli_env())
    evidence = Evidence()
    evidence.add_process("check", check)
    evidence.add_process("config-show", show)

    assert (check.returncode, show.returncode) == (0, 0), (check.stderr, show.stderr)
    for done in (check, show):
        assert b"sources.literal.auth.token holds a secret" in done.stderr
        assert b"sources.literal.headers.X-Api-Key holds a secret" in done.stderr
    findings = evidence.leaks(needles_for("bearer", "header_key"))
    assert findings == [], f"{len(findings)} secret finding(s):\n" + "\n".join(findings)


# --- sandboxes ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def token_sandbox() -> Iterator[SandboxProcess]:
    """Requires ``Authorization: Bearer <SECRETS['bearer']>`` on data endpoints."""
    with SandboxProcess(records=RECORDS, seed=3, token=SECRETS["bearer"]) as server:
        yield server


@pytest.fixture(scope="module")
def open_sandbox() -> Iterator[SandboxProcess]:
    """No token: for credentials the sandbox cannot check (query keys, Basic, headers)."""
    with SandboxProcess(records=RECORDS, seed=3) as server:
        yield server


@pytest.fixture(scope="module")
def oauth_sandbox() -> Iterator[SandboxProcess]:
    client = (OAUTH_CLIENT_ID, SECRETS["client_secret"])
    with SandboxProcess(records=RECORDS, seed=3, oauth_client=client) as server:
        yield server


@pytest.fixture
def sandboxes(
    token_sandbox: SandboxProcess, open_sandbox: SandboxProcess
) -> tuple[SandboxProcess, SandboxProcess]:
    """Both sandboxes reset: seeded data, no faults, zero counters."""
    for server in (token_sandbox, open_sandbox):
        server.admin_reset()
    return token_sandbox, open_sandbox


@pytest.fixture
def oauth(oauth_sandbox: SandboxProcess) -> SandboxProcess:
    """The OAuth sandbox with no token issued, no faults and zero counters."""
    oauth_sandbox.admin_reset()
    return oauth_sandbox


# --- every credential kind through every error path -----------------------------------------

# Which endpoint each stream reads (some faults only apply to some endpoints).
STREAM_PATHS: dict[str, str] = {
    "bearer_hal": "/next/items",
    "bearer_link": "/link/items",
    "query_page": "/page/items",
    "query_hal": "/next/items",
    "keyheader_page": "/page/items",
    "basic_link": "/link/items",
}
ALL_LABELS = (
    "bearer",
    "bearer_wrong",
    "header_key",
    "query_key",
    "apikey_header",
    "param_token",
    "basic_password",
)


def multi_source_config(token_url: str, open_url: str) -> dict[str, Any]:
    """Four sources, one per credential kind, plus a secret header and a secret parameter."""
    return {
        "bearer": {
            "base_url": token_url,
            "auth": {"type": "bearer", "token": env_ref("bearer")},
            "headers": {"X-Api-Key": env_ref("header_key")},
            "retry": RETRY,
            "streams": {"bearer_hal": hal_stream(), "bearer_link": link_stream()},
        },
        "query": {
            "base_url": open_url,
            "auth": {
                "type": "api_key",
                "location": "query",
                "name": "api_key",
                "value": env_ref("query_key"),
            },
            "retry": RETRY,
            "streams": {"query_page": page_stream(), "query_hal": hal_stream()},
        },
        "keyheader": {
            "base_url": open_url,
            "auth": {"type": "api_key", "name": "X-Api-Key", "value": env_ref("apikey_header")},
            "retry": RETRY,
            "streams": {"keyheader_page": page_stream(access_token=env_ref("param_token"))},
        },
        "basic": {
            "base_url": open_url,
            "auth": {
                "type": "basic",
                "username": BASIC_USER,
                "password": env_ref("basic_password"),
            },
            "retry": RETRY,
            "streams": {"basic_link": link_stream()},
        },
    }


@dataclass(frozen=True)
class ErrorPath:
    name: str
    faults: dict[str, Any] | None
    """Set on both sandboxes before the run (``None``: no faults)."""
    expect: Callable[[str], str]
    """Stream name → the status its job must end with."""
    env: dict[str, str] = field(default_factory=dict)
    error_hint: str | None = None
    """Text every job that did not end ``ok`` must show in its error."""


def _all(status: str) -> Callable[[str], str]:
    return lambda _stream: status


def _on_links(stream: str) -> str:
    return "failed" if STREAM_PATHS[stream] in ("/next/items", "/link/items") else "ok"


def _bearer_fails(stream: str) -> str:
    return "failed" if stream.startswith("bearer_") else "ok"


def _every_request(kind: str) -> dict[str, Any]:
    return {"rate": 1.0, "kinds": [kind], "retry_after": 0}


ERROR_PATHS = [
    ErrorPath("ok", None, _all("ok")),
    ErrorPath(
        "401_wrong_token",
        None,
        _bearer_fails,
        env={ENV_OF["bearer"]: SECRETS["bearer_wrong"]},
        error_hint="credentials refused",
    ),
    ErrorPath(
        "401_unauthorized_after", {"unauthorized_after": 1}, _all("failed"), error_hint="401"
    ),
    ErrorPath(
        "403_retry_after",
        _every_request("403_retry_after"),
        _all("deferred"),
        error_hint="403",
    ),
    ErrorPath("429_exhausted", _every_request("429"), _all("deferred"), error_hint="429"),
    ErrorPath("500_exhausted", _every_request("500"), _all("failed"), error_hint="500"),
    ErrorPath("html_body", _every_request("html"), _all("failed")),
    ErrorPath("malformed_json", _every_request("malformed_json"), _all("failed")),
    ErrorPath("truncated_body", _every_request("truncated"), _all("failed")),
    ErrorPath("connection_reset", _every_request("reset"), _all("failed")),
    ErrorPath(
        "cross_origin_link",
        _every_request("cross_origin_link"),
        _on_links,
        error_hint="no request was sent",
    ),
]


@pytest.mark.parametrize("path", ERROR_PATHS, ids=[p.name for p in ERROR_PATHS])
def test_no_secret_on_error_path(
    path: ErrorPath, sandboxes: tuple[SandboxProcess, SandboxProcess], tmp_path: Path
) -> None:
    token_sb, open_sb = sandboxes
    if path.faults is not None:
        for server in sandboxes:
            server.set_faults(**path.faults)
    write_config(tmp_path, multi_source_config(token_sb.base_url, open_sb.base_url))
    env = cli_env(**path.env)
    evidence = Evidence()

    code, summary = sync_run(evidence, "sync", tmp_path, env)
    finish(evidence, tmp_path, env)

    # The path was really taken: each job ended the way this fault makes it end.
    statuses = {s["stream"]: s["status"] for s in summary["streams"]}
    assert statuses == {stream: path.expect(stream) for stream in STREAM_PATHS}, summary
    worst = 1 if "failed" in statuses.values() else 3 if "deferred" in statuses.values() else 0
    assert code == worst, summary
    for job in summary["streams"]:
        if job["status"] == "ok":
            assert job["records"] == RECORDS
        elif path.error_hint is not None:
            assert path.error_hint in job["error"], job
    if path.name == "ok":
        # Credentials really went out: the token sandbox let us in, and the query key
        # was sent (and masked in the debug log).
        assert b"api_key=***" in evidence.get("sync.stderr")
    if path.name == "cross_origin_link":
        for job in summary["streams"]:
            if job["status"] == "failed":
                assert job["requests"] == 1, job  # the first page; the link was not followed

    assert_no_leaks(
        evidence,
        needles_for(*ALL_LABELS)
        + pair_spellings("basic_pair", BASIC_USER, SECRETS["basic_password"]),
    )


def test_refused_next_link_does_not_wedge_the_stream(
    sandboxes: tuple[SandboxProcess, SandboxProcess], tmp_path: Path
) -> None:
    token_sb, open_sb = sandboxes
    write_config(tmp_path, multi_source_config(token_sb.base_url, open_sb.base_url))
    env = cli_env()
    evidence = Evidence()
    token_sb.set_faults(**_every_request("cross_origin_link"))
    code, summary = sync_run(evidence, "sync1", tmp_path, env, "--stream", "bearer_hal")
    assert (code, summary["streams"][0]["status"]) == (1, "failed")

    token_sb.clear_faults()  # the server behaves again
    code, summary = sync_run(evidence, "sync2", tmp_path, env, "--stream", "bearer_hal")

    assert code == 0, summary
    assert summary["streams"][0]["records"] == RECORDS


# --- a token in the base URL's userinfo -----------------------------------------------------


def userinfo_sources(open_url: str) -> dict[str, Any]:
    host = open_url.removeprefix("http://")
    return {
        "userinfo": {
            "base_url": f"http://{BASIC_USER}:{env_ref('userinfo_password')}@{host}",
            "retry": RETRY,
            "streams": {"userinfo_page": page_stream()},
        }
    }


USERINFO_NEEDLES = needles_for("userinfo_password") + pair_spellings(
    "userinfo_pair", BASIC_USER, SECRETS["userinfo_password"]
)


def test_userinfo_in_base_url_is_accepted_and_kept_out_of_runs_and_store(
    sandboxes: tuple[SandboxProcess, SandboxProcess], tmp_path: Path
) -> None:
    """base_url validation accepts ``http://user:secret@host``; the runs must not show it.

    ``config show`` is covered by the test below (it currently prints it).
    """
    _token_sb, open_sb = sandboxes
    write_config(tmp_path, userinfo_sources(open_sb.base_url))
    env = cli_env()
    evidence = Evidence()

    code, summary = sync_run(evidence, "sync-ok", tmp_path, env)
    assert code == 0, summary
    assert summary["records"] == RECORDS
    open_sb.set_faults(**_every_request("500"))
    code, summary = sync_run(evidence, "sync-500", tmp_path, env, "--full-refresh")
    assert code == 1, summary
    status = syncline("status", "--json", cwd=tmp_path, env=env)
    evidence.add_process("status", status)
    for path in sorted(tmp_path.rglob("*")):
        if path.is_file():
            evidence.add(f"file {path.relative_to(tmp_path)}", path.read_bytes())
    evidence.add("store tables", dump_store(tmp_path / "store.db"))

    assert_no_leaks(evidence, USERINFO_NEEDLES)


def test_userinfo_in_base_url_is_masked_by_config_show(
    sandboxes: tuple[SandboxProcess, SandboxProcess], tmp_path: Path
) -> None:
    _token_sb, open_sb = sandboxes
    write_config(tmp_path, userinfo_sources(open_sb.base_url))
    evidence = Evidence()
    show = syncline("config", "show", cwd=tmp_path, env=cli_env())
    evidence.add_process("config-show", show)
    assert show.returncode == 0, show.stderr

    findings = evidence.leaks(USERINFO_NEEDLES)
    assert findings == [], f"{len(findings)} secret finding(s):\n" + "\n".join(findings)


# --- OAuth2 refresh_token grant against the sandbox's token endpoint ------------------------


OAUTH_LABELS = ("client_secret", "client_secret_wrong", "refresh_token_invalid")


def oauth_sources(base_url: str, client_auth: str = "body") -> dict[str, Any]:
    return {
        "oauth": {
            "base_url": base_url,
            "auth": {
                "type": "oauth2",
                "grant": "refresh_token",
                "token_url": f"{base_url}/oauth/token",
                "client_id": OAUTH_CLIENT_ID,
                "client_secret": "${env:SL_LEAK_OAUTH_CLIENT_SECRET}",
                "refresh_token": "${env:SL_LEAK_OAUTH_REFRESH}",
                "client_auth": client_auth,
                "token_file": "tokens.json",
            },
            "retry": RETRY,
            "streams": {"oauth_page": page_stream(size=5)},
        }
    }


@dataclass
class TokenFile:
    """Snapshots of the OAuth token file: every token it ever held is a secret."""

    path: Path
    tokens: dict[str, str] = field(default_factory=dict)

    def snapshot(self, when: str) -> None:
        assert self.path.exists(), f"no token file {when}"
        mode = stat.S_IMODE(self.path.stat().st_mode)
        assert mode == 0o600, f"token file is mode {mode:o} {when}"
        data = json.loads(self.path.read_text())
        for key in ("access_token", "refresh_token"):
            value = data.get(key)
            if isinstance(value, str) and value:
                self.tokens[f"{key} ({when})"] = value

    def needles(self) -> list[Needle]:
        found: list[Needle] = []
        for label, value in self.tokens.items():
            found += spellings(label, value)
        return found


def oauth_env(refresh_token: str, client_secret: str = SECRETS["client_secret"]) -> dict[str, str]:
    return cli_env(SL_LEAK_OAUTH_REFRESH=refresh_token, SL_LEAK_OAUTH_CLIENT_SECRET=client_secret)


def oauth_needles(initial_refresh: str, tokens: TokenFile) -> list[Needle]:
    client_secret = SECRETS["client_secret"]
    return [
        *needles_for(*OAUTH_LABELS),
        *spellings("initial refresh token", initial_refresh),
        *pair_spellings("client pair", OAUTH_CLIENT_ID, client_secret),
        *tokens.needles(),
    ]


def test_oauth_refresh_then_401_between_runs(oauth: SandboxProcess, tmp_path: Path) -> None:
    initial = oauth.oauth_refresh_token()
    write_config(tmp_path, oauth_sources(oauth.base_url))
    env = oauth_env(initial)
    tokens = TokenFile(tmp_path / "tokens.json")
    evidence = Evidence()

    code, summary = sync_run(evidence, "sync1", tmp_path, env)
    assert code == 0, summary
    tokens.snapshot("after run 1")
    oauth.oauth_expire()  # the saved access token is now refused: the next run gets a 401
    code, summary = sync_run(evidence, "sync2", tmp_path, env)
    assert code == 0, summary
    tokens.snapshot("after run 2")
    finish(evidence, tmp_path, env, token_file=tokens.path)

    assert b"-> 401" in evidence.get("sync2.stderr")  # run 2 was refused, then refreshed
    assert oauth.oauth_stats()["grants"]["refresh_token"] == 2
    assert len(set(tokens.tokens.values())) == 4  # two access and two (rotated) refresh tokens
    assert_no_leaks(evidence, oauth_needles(initial, tokens))


def test_oauth_401_mid_run(oauth: SandboxProcess, tmp_path: Path) -> None:
    initial = oauth.oauth_refresh_token()
    write_config(tmp_path, oauth_sources(oauth.base_url))
    env = oauth_env(initial)
    tokens = TokenFile(tmp_path / "tokens.json")
    evidence = Evidence()
    oauth.set_faults(latency_ms=40)  # 10 pages, ~0.4 s: time to expire the token mid-run
    command = _command("--log-level", "debug", "sync", "--json")
    proc = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 20
        while oauth.faults()["data_requests"] < 3:
            assert time.monotonic() < deadline, "the sync never reached its third page"
            assert proc.poll() is None, "the sync ended before the token could be expired"
            time.sleep(0.01)
        tokens.snapshot("mid-run")
        oauth.oauth_expire()
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
    evidence.add_process("sync", subprocess.CompletedProcess(command, proc.returncode, out, err))
    tokens.snapshot("after the run")
    finish(evidence, tmp_path, env, token_file=tokens.path)

    assert proc.returncode == 0, err
    assert json.loads(out)["records"] == RECORDS
    assert b"-> 401" in err
    assert oauth.oauth_stats()["grants"]["refresh_token"] == 2
    assert len(set(tokens.tokens.values())) == 4
    assert_no_leaks(evidence, oauth_needles(initial, tokens))


def test_oauth_client_secret_in_basic_header(oauth: SandboxProcess, tmp_path: Path) -> None:
    initial = oauth.oauth_refresh_token()
    write_config(tmp_path, oauth_sources(oauth.base_url, client_auth="basic"))
    env = oauth_env(initial)
    tokens = TokenFile(tmp_path / "tokens.json")
    evidence = Evidence()

    code, summary = sync_run(evidence, "sync", tmp_path, env)
    tokens.snapshot("after the run")
    finish(evidence, tmp_path, env, token_file=tokens.path)

    assert code == 0, summary
    assert oauth.oauth_stats()["grants"]["refresh_token"] == 1
    assert_no_leaks(evidence, oauth_needles(initial, tokens))


@pytest.mark.parametrize(
    ("refresh_label", "secret_label", "message"),
    [
        ("refresh_token_invalid", "client_secret", "refresh token was refused"),
        (None, "client_secret_wrong", "client credentials were refused"),
    ],
    ids=["invalid_refresh_token", "wrong_client_secret"],
)
def test_oauth_refused_token_request(
    oauth: SandboxProcess,
    tmp_path: Path,
    refresh_label: str | None,
    secret_label: str,
    message: str,
) -> None:
    valid = oauth.oauth_refresh_token()
    initial = SECRETS[refresh_label] if refresh_label else valid
    write_config(tmp_path, oauth_sources(oauth.base_url))
    env = oauth_env(initial, client_secret=SECRETS[secret_label])
    tokens = TokenFile(tmp_path / "tokens.json")
    evidence = Evidence()

    code, summary = sync_run(evidence, "sync", tmp_path, env)
    finish(evidence, tmp_path, env, token_file=tokens.path)

    assert code == 1, summary
    assert message in summary["streams"][0]["error"]
    assert not tokens.path.exists()  # nothing was issued, nothing saved
    assert_no_leaks(evidence, [*oauth_needles(initial, tokens), *spellings("valid rt", valid)])


# --- servers of our own: links and redirects to another origin, echoed query keys -----------


Reply = tuple[int, dict[str, str], bytes]


class LocalServer:
    """A threaded HTTP server on 127.0.0.1 that records every request it receives."""

    def __init__(self, route: Callable[[LocalServer, str], Reply]) -> None:
        self.route = route
        self.requests: list[tuple[str, dict[str, str]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append((self.path, dict(self.headers.items())))
                status, headers, body = server.route(server, self.path)
                self.send_response(status)
                for name, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def json_reply(payload: Any, status: int = 200) -> Reply:
    return status, {"Content-Type": "application/json"}, json.dumps(payload).encode()


def capture_route(_server: LocalServer, _path: str) -> Reply:
    return json_reply({"items": [{"id": 99}]})


def origin_route(elsewhere: str) -> Callable[[LocalServer, str], Reply]:
    """Page 1 links to ``elsewhere``; ``/redirect`` redirects there."""

    def route(_server: LocalServer, path: str) -> Reply:
        if path.startswith("/redirect"):
            return 302, {"Location": f"{elsewhere}/via-redirect"}, b""
        return json_reply({"items": [{"id": 1}], "next": f"{elsewhere}/via-next-link"})

    return route


def cross_origin_sources(origin: str, **source: Any) -> dict[str, Any]:
    return {
        "links": {
            "base_url": origin,
            "auth": {"type": "bearer", "token": env_ref("bearer")},
            "headers": {"X-Api-Key": env_ref("header_key")},
            "follow_redirects": True,
            "retry": RETRY,
            "streams": {
                "via_link": {
                    "path": "/page",
                    "records": "items",
                    "primary_key": "id",
                    "paginate": {"type": "next_link", "next_url_path": "next"},
                },
                "via_redirect": {"path": "/redirect", "records": "items", "primary_key": "id"},
            },
            **source,
        }
    }


def captured(server: LocalServer) -> str:
    return "\n".join(f"{path} {headers}" for path, headers in server.requests)


CROSS_ORIGIN_NEEDLES = needles_for("bearer", "header_key")


def test_other_origin_gets_no_request(tmp_path: Path) -> None:
    """A next link or redirect to another port of the same host is refused before sending."""
    with (
        LocalServer(capture_route) as elsewhere,
        LocalServer(origin_route(elsewhere.url)) as origin,
    ):
        write_config(tmp_path, cross_origin_sources(origin.url))
        env = cli_env()
        evidence = Evidence()
        code, summary = sync_run(evidence, "sync", tmp_path, env)
        finish(evidence, tmp_path, env)

    assert code == 1, summary
    assert {s["stream"]: s["status"] for s in summary["streams"]} == {
        "via_link": "failed",
        "via_redirect": "failed",
    }
    assert all("no request was sent" in s["error"] for s in summary["streams"])
    assert elsewhere.requests == []
    assert len(origin.requests) == 2
    assert all(h.get("Authorization") == f"Bearer {SECRETS['bearer']}" for _, h in origin.requests)
    assert_no_leaks(evidence, CROSS_ORIGIN_NEEDLES)


def test_allowed_plain_http_host_gets_no_credentials(tmp_path: Path) -> None:
    with LocalServer(capture_route) as elsewhere:
        other = f"http://localhost:{elsewhere.port}"  # another origin, allowed by name
        with LocalServer(origin_route(other)) as origin:
            write_config(tmp_path, cross_origin_sources(origin.url, allowed_hosts=["localhost"]))
            env = cli_env()
            evidence = Evidence()
            code, summary = sync_run(evidence, "sync", tmp_path, env)
            finish(evidence, tmp_path, env)

    assert code == 0, summary
    assert sorted(path for path, _ in elsewhere.requests) == ["/via-next-link", "/via-redirect"]
    evidence.add("requests received by the other origin", captured(elsewhere))
    assert_no_leaks(evidence, CROSS_ORIGIN_NEEDLES)


def echoing_route(server: LocalServer, path: str) -> Reply:
    """Next links repeat the request's query (api_key included), as many APIs do; page 2 fails."""
    query = {k: v[0] for k, v in parse_qs(urlsplit(path).query).items()}
    page = int(query.get("page", "1"))
    if page >= 2:
        return json_reply({"error": "internal server error"}, status=500)
    following = urlencode({**query, "page": page + 1})
    return json_reply({"items": [{"id": page}], "next": f"{server.url}/items?{following}"})


def test_query_key_echoed_in_next_link_is_not_stored(tmp_path: Path) -> None:
    with LocalServer(echoing_route) as api:
        write_config(
            tmp_path,
            {
                "echo": {
                    "base_url": api.url,
                    "auth": {
                        "type": "api_key",
                        "location": "query",
                        "name": "api_key",
                        "value": env_ref("query_key"),
                    },
                    "retry": RETRY,
                    "streams": {
                        "echo_items": {
                            "path": "/items",
                            "records": "items",
                            "primary_key": "id",
                            "paginate": {"type": "next_link", "next_url_path": "next"},
                        }
                    },
                }
            },
        )
        env = cli_env()
        evidence = Evidence()
        code, summary = sync_run(evidence, "sync", tmp_path, env)
        finish(evidence, tmp_path, env)

    assert code == 1, summary  # page 1 committed, page 2 failed: the pass is in progress
    assert summary["streams"][0]["records"] == 1
    assert_no_leaks(evidence, needles_for("query_key"))
