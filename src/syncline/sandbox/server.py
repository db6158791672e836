"""Running the sandbox: in this process (``serve``/``main``) or as a child
process (``SandboxProcess``).

Why a child process for tests and benchmarks: the client under test then talks
to a real uvicorn server over real loopback sockets on its own event loop and
CPU, exactly like production, and a crashed or hung client cannot corrupt the
server's state.  The child announces readiness with a single stdout line that
carries the port it actually bound, so port 0 (any free port) is race-free.
"""

from __future__ import annotations

import argparse
import importlib.util
import ipaddress
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any, Self
from urllib.parse import urlencode

import httpx
import uvicorn

from syncline.sandbox.app import create_app
from syncline.sandbox.common import BadRequestError
from syncline.sandbox.dataset import Dataset
from syncline.sandbox.faults import FaultConfig, parse_fault_config
from syncline.sandbox.httpdate import DateHeader
from syncline.sandbox.limit_config import (
    HEADER_STYLES,
    WINDOW_KINDS,
    LimitsConfig,
    parse_limits_config,
)
from syncline.sandbox.oauth import OAuthSettings
from syncline.sandbox.seeds import SEED_APIS, build_seed_apis

READY_PREFIX = "syncline sandbox listening on "


class _Stopped(Exception):
    """Raised from our SIGTERM handler so ``serve`` can return normally."""


def _on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise _Stopped


class _AnnouncingServer(uvicorn.Server):
    """A uvicorn server that prints the ready line once it accepts requests."""

    def __init__(self, config: uvicorn.Config, url: str) -> None:
        super().__init__(config)
        self._url = url

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            print(f"{READY_PREFIX}{self._url}", flush=True)


def _bind(host: str, port: int) -> socket.socket:
    """Bind a loopback socket ourselves, so port 0 yields a known real port."""
    address = ipaddress.ip_address("127.0.0.1" if host == "localhost" else host)
    if not address.is_loopback:
        raise ValueError(f"the sandbox only binds loopback addresses, not {host!r}")
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((str(address), port))
    return sock


def serve(
    host: str = "127.0.0.1",
    port: int = 38001,
    records: int = 2345,
    seed: int = 7,
    token: str | None = None,
    *,
    oauth: OAuthSettings | None = None,
    faults: FaultConfig | None = None,
    limits: LimitsConfig | None = None,
    seeds: dict[str, dict[str, Any]] | None = None,
) -> None:
    """Serve the sandbox until SIGINT/SIGTERM (blocking); loopback only."""
    sock = _bind(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    shown_host = f"[{bound_host}]" if ":" in bound_host else bound_host
    app = create_app(
        Dataset(records, seed), token=token, oauth=oauth, faults=faults, limits=limits, seeds=seeds
    )
    config = uvicorn.Config(
        DateHeader(app),  # the app owns Date, so faults can set it exactly
        loop="uvloop" if importlib.util.find_spec("uvloop") else "auto",
        http="httptools" if importlib.util.find_spec("httptools") else "auto",
        lifespan="off",
        access_log=False,
        log_level="warning",
        date_header=False,
    )
    server = _AnnouncingServer(config, f"http://{shown_host}:{bound_port}")
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if in_main_thread else None
    try:
        # uvicorn shuts down gracefully on a signal, then re-raises it; our
        # handler (or KeyboardInterrupt) turns that into a normal return.
        server.run(sockets=[sock])
    except (_Stopped, KeyboardInterrupt):
        pass
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
        sock.close()


def _fault_config(parser: argparse.ArgumentParser, args: argparse.Namespace) -> FaultConfig | None:
    """The launch fault configuration from the ``--fault-*``/``--latency-ms`` flags."""
    body: dict[str, Any] = {}
    if args.fault_rate is not None:
        body["rate"] = args.fault_rate
    if args.fault_kinds is not None:
        if args.fault_rate is None:
            parser.error("--fault-kinds needs --fault-rate")
        body["kinds"] = [kind.strip() for kind in args.fault_kinds.split(",") if kind.strip()]
    if args.fault_seed is not None:
        body["seed"] = args.fault_seed
    if args.latency_ms is not None:
        body["latency_ms"] = args.latency_ms
    if not body:
        return None
    try:
        return parse_fault_config(body)
    except BadRequestError as exc:
        parser.error(exc.message)


def _limit_window(parser: argparse.ArgumentParser, raw: str) -> dict[str, Any]:
    """``CALLS/SECONDS[:sliding|fixed]``, e.g. ``10/1`` or ``5000/86400:fixed``."""
    spec, _, kind = raw.partition(":")
    calls, sep, per = spec.partition("/")
    try:
        window: dict[str, Any] = {"calls": int(calls), "per": float(per)}
    except ValueError:
        sep = ""
    if not sep or (kind and kind not in WINDOW_KINDS):
        parser.error(f"--limit must be CALLS/SECONDS[:sliding|fixed], got {raw!r}")
    if kind:
        window["kind"] = kind
    return window


def _limits_config(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> LimitsConfig | None:
    """The launch limits from the ``--limit*`` flags."""
    if not args.limit:
        if args.limit_tenant_param is not None or args.limit_headers is not None:
            parser.error("--limit-tenant-param and --limit-headers need --limit")
        return None
    body = {
        "windows": [_limit_window(parser, raw) for raw in args.limit],
        "tenant_param": args.limit_tenant_param,
        "headers": args.limit_headers,
    }
    try:
        return parse_limits_config(body)
    except BadRequestError as exc:
        parser.error(exc.message)


def _oauth_settings(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> OAuthSettings | None:
    if args.oauth_client is None:
        if args.oauth_ttl is not None:
            parser.error("--oauth-ttl needs --oauth-client")
        return None
    client_id, sep, secret = args.oauth_client.partition(":")
    if not sep:
        parser.error("--oauth-client must be ID:SECRET")
    ttl = 3600.0 if args.oauth_ttl is None else args.oauth_ttl
    try:
        return OAuthSettings(client_id, secret, ttl)
    except ValueError as exc:
        parser.error(str(exc))


def _seed_configs(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> dict[str, dict[str, Any]] | None:
    """``--seed-config JSON``: launch configs of the real-API emulations, by name."""
    if args.seed_config is None:
        return None
    try:
        configs = json.loads(args.seed_config)
    except json.JSONDecodeError as exc:
        parser.error(f"--seed-config is not JSON: {exc}")
    if not isinstance(configs, dict) or not all(isinstance(v, dict) for v in configs.values()):
        parser.error('--seed-config must be an object like {"exact": {"daily_limit": 100}}')
    try:
        build_seed_apis(configs)  # validate now, with a CLI error instead of a traceback
    except BadRequestError as exc:
        parser.error(f"--seed-config: {exc.message}")
    result: dict[str, dict[str, Any]] = configs
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m syncline.sandbox",
        description="Serve a deterministic fake paginated REST/GraphQL API on loopback.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--port", type=int, default=38001, help="0 picks a free port")
    parser.add_argument("--records", type=int, default=2345)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--token", default=None, help="require 'Authorization: Bearer TOKEN'")
    faults = parser.add_argument_group("faults (see POST /_admin/faults for all options)")
    faults.add_argument("--fault-rate", type=float, help="probability of a fault per data request")
    faults.add_argument("--fault-kinds", help="comma-separated fault kinds to draw from")
    faults.add_argument("--fault-seed", type=int, help="seed of the fault dice (default 0)")
    faults.add_argument("--latency-ms", type=int, help="delay added to every data request")
    oauth = parser.add_argument_group("OAuth2 token endpoint (POST /oauth/token)")
    oauth.add_argument("--oauth-client", metavar="ID:SECRET", help="enable OAuth for this client")
    oauth.add_argument("--oauth-ttl", type=float, metavar="SECONDS", help="access token lifetime")
    limits = parser.add_argument_group("rate limits (see POST /_admin/limits for all options)")
    limits.add_argument(
        "--limit",
        action="append",
        metavar="CALLS/SECONDS[:sliding|fixed]",
        help="a rate-limit window (repeatable; default kind sliding)",
    )
    limits.add_argument("--limit-tenant-param", metavar="NAME", help="query param naming tenant")
    limits.add_argument(
        "--limit-headers", choices=HEADER_STYLES, help="rate-limit headers on data responses"
    )
    seeds = parser.add_argument_group("real-API emulations (see POST /<prefix>/__config)")
    seeds.add_argument(
        "--seed-config",
        metavar="JSON",
        help=f"launch configs by API name ({', '.join(SEED_APIS)}), e.g. "
        '\'{"exact": {"minutely_limit": 5}}\'',
    )
    args = parser.parse_args(argv)
    serve(
        args.host,
        args.port,
        args.records,
        args.seed,
        args.token,
        oauth=_oauth_settings(parser, args),
        faults=_fault_config(parser, args),
        limits=_limits_config(parser, args),
        seeds=_seed_configs(parser, args),
    )
    return 0


def _child_env() -> dict[str, str]:
    """Our environment, with the directory holding ``syncline`` on PYTHONPATH."""
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if package_root not in paths:
        paths.insert(0, package_root)
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


class SandboxProcess:
    """Context manager running ``python -m syncline.sandbox --port 0`` in a child.

    >>> with SandboxProcess(records=100) as sandbox:  # doctest: +SKIP
    ...     httpx.get(f"{sandbox.base_url}/page/items").json()["total"]
    100
    """

    def __init__(
        self,
        records: int = 2345,
        seed: int = 7,
        token: str | None = None,
        *,
        oauth_client: tuple[str, str] | None = None,
        oauth_ttl: float = 3600.0,
        seed_config: dict[str, dict[str, Any]] | None = None,
        startup_timeout: float = 20.0,
    ) -> None:
        self.records_count = records
        self.seed_launch_config = seed_config
        self.seed = seed
        self.token = token
        self.oauth_client = oauth_client
        self.oauth_ttl = oauth_ttl
        self.startup_timeout = startup_timeout
        self._proc: subprocess.Popen[str] | None = None
        self._stderr: IO[bytes] | None = None
        self._client: httpx.Client | None = None
        self._base_url: str | None = None

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("sandbox is not running")
        return self._base_url

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("sandbox is not running")
        return self._proc.pid

    def start(self) -> Self:
        command = [sys.executable, "-m", "syncline.sandbox", "--port", "0"]
        command += ["--records", str(self.records_count), "--seed", str(self.seed)]
        if self.token is not None:
            command += ["--token", self.token]
        if self.oauth_client is not None:
            client_id, secret = self.oauth_client
            command += [
                "--oauth-client",
                f"{client_id}:{secret}",
                "--oauth-ttl",
                str(self.oauth_ttl),
            ]
        if self.seed_launch_config is not None:
            command += ["--seed-config", json.dumps(self.seed_launch_config)]
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=self._stderr, text=True, env=_child_env()
        )
        line = self._read_ready_line(self._proc)
        if not line.startswith(READY_PREFIX):
            error = self._stderr_text()
            self.stop()
            raise RuntimeError(f"sandbox did not start (stdout {line!r}); stderr:\n{error}")
        self._base_url = line[len(READY_PREFIX) :].strip()
        self._client = httpx.Client(base_url=self._base_url, timeout=60.0, trust_env=False)
        return self

    def _read_ready_line(self, proc: subprocess.Popen[str]) -> str:
        """First stdout line, or ``""`` if none arrives within the timeout."""
        lines: queue.Queue[str] = queue.Queue(maxsize=1)
        stdout = proc.stdout
        assert stdout is not None
        reader = threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True)
        reader.start()
        try:
            return lines.get(timeout=self.startup_timeout)
        except queue.Empty:
            return ""

    def _stderr_text(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")

    def stop(self) -> None:
        """SIGTERM, wait up to 5 s, then SIGKILL; always releases resources."""
        if self._client is not None:
            self._client.close()
            self._client = None
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
            if proc.stdout is not None:
                proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        self._base_url = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- admin API ------------------------------------------------------------

    def _admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        if self._client is None:
            raise RuntimeError("sandbox is not running")
        response = self._client.request(method, path, json=body)
        response.raise_for_status()
        return response.json()

    def admin_reset(self, records: int | None = None, seed: int | None = None) -> dict[str, Any]:
        """Recreate the dataset (``None`` keeps the launch setting); zeroes stats."""
        result: dict[str, Any] = self._admin(
            "POST", "/_admin/reset", {"records": records, "seed": seed}
        )
        return result

    def mutate(self, update: int = 0, insert: int = 0, delete: int = 0) -> dict[str, list[int]]:
        body = {"update": update, "insert": insert, "delete": delete}
        result: dict[str, list[int]] = self._admin("POST", "/_admin/mutate", body)
        return result

    def records(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._admin("GET", "/_admin/records")["records"]
        return result

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._admin("GET", "/_admin/stats")
        return result

    def reset_stats(self) -> None:
        self._admin("POST", "/_admin/stats/reset")

    def set_faults(self, **config: Any) -> dict[str, Any]:
        """Replace the fault configuration (fields as in ``POST /_admin/faults``).

        Returns the ``GET /_admin/faults`` body; an invalid config raises
        ``httpx.HTTPStatusError`` (400).  No arguments clears the faults.
        """
        result: dict[str, Any] = self._admin("POST", "/_admin/faults", config)
        return result

    def clear_faults(self) -> None:
        self._admin("DELETE", "/_admin/faults")

    def faults(self) -> dict[str, Any]:
        """``{"config": {...} | None, "injected": {kind: n}, "data_requests": n}``."""
        result: dict[str, Any] = self._admin("GET", "/_admin/faults")
        return result

    def set_limits(self, **config: Any) -> dict[str, Any]:
        """Replace the rate limits (fields as in ``POST /_admin/limits``); resets usage.

        Returns the ``GET /_admin/limits`` body; an invalid config raises
        ``httpx.HTTPStatusError`` (400).  No arguments removes the limits.
        """
        result: dict[str, Any] = self._admin("POST", "/_admin/limits", config)
        return result

    def clear_limits(self) -> None:
        self._admin("DELETE", "/_admin/limits")

    def limits(self) -> dict[str, Any]:
        """``{"config": {...} | None, "tenants": {t: {"allowed", "rejected"}}, "usage": {...}}``."""
        result: dict[str, Any] = self._admin("GET", "/_admin/limits")
        return result

    def reset_limit_windows(self) -> None:
        """Forget all rate-limit usage ("the next day"); config and counters stay."""
        self._admin("POST", "/_admin/limits/reset-windows")

    def oauth_refresh_token(self) -> str:
        """A fresh, valid refresh token (the "user authorized the app" step)."""
        token: str = self._admin("POST", "/_admin/oauth/refresh-token")["refresh_token"]
        return token

    def oauth_expire(self) -> None:
        """Invalidate every issued access token."""
        self._admin("POST", "/_admin/oauth/expire")

    def oauth_stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._admin("GET", "/_admin/oauth")
        return result

    # -- real-API emulations (see syncline.sandbox.seeds) ---------------------

    @staticmethod
    def _seed_prefix(api: str) -> str:
        """The mount prefix of ``api`` (a name such as ``"exact"``, or the prefix itself)."""
        if api in SEED_APIS:
            return SEED_APIS[api].prefix
        for seed_api in SEED_APIS.values():
            if api in {seed_api.prefix, seed_api.prefix.lstrip("/")}:
                return seed_api.prefix
        raise ValueError(f"unknown seed API {api!r}; known: {sorted(SEED_APIS)}")

    def seed_url(self, api: str) -> str:
        """The emulation's base URL, e.g. ``http://127.0.0.1:PORT/exact``."""
        return f"{self.base_url}{self._seed_prefix(api)}"

    def seed_stats(self, api: str) -> dict[str, Any]:
        """``{"tenants": {t: {"requests", "rate_limited", "statuses"}}, "total", ...}``."""
        result: dict[str, Any] = self._admin("GET", f"{self._seed_prefix(api)}/__stats")
        return result

    def seed_reset_stats(self, api: str) -> None:
        self._admin("POST", f"{self._seed_prefix(api)}/__stats/reset")

    def seed_config(self, api: str, **config: Any) -> dict[str, Any]:
        """Change config fields (no arguments: just read it); returns the full config."""
        path = f"{self._seed_prefix(api)}/__config"
        result: dict[str, Any] = (
            self._admin("POST", path, config) if config else self._admin("GET", path)
        )
        return result

    def seed_reset(self, api: str, **overrides: Any) -> dict[str, Any]:
        """Launch config (plus ``overrides``), regenerated data, zero stats; returns the config."""
        path = f"{self._seed_prefix(api)}/__reset"
        result: dict[str, Any] = self._admin("POST", path, overrides)
        return result

    def seed_mutate(
        self,
        api: str,
        tenant: str,
        update: int = 0,
        insert: int = 0,
        delete: int = 0,
        *,
        update_ids: list[Any] | None = None,
        delete_ids: list[Any] | None = None,
    ) -> dict[str, Any]:
        """Deterministically change one tenant's data; returns the touched record ids."""
        body = {
            "tenant": tenant,
            "update": update,
            "insert": insert,
            "delete": delete,
            "update_ids": update_ids,
            "delete_ids": delete_ids,
        }
        result: dict[str, Any] = self._admin("POST", f"{self._seed_prefix(api)}/__mutate", body)
        return result

    def seed_records(self, api: str, tenant: str) -> list[dict[str, Any]]:
        """Every live record of ``tenant`` in the API's fullest shape, sorted by id."""
        query = urlencode({"tenant": tenant})
        response = self._admin("GET", f"{self._seed_prefix(api)}/__records?{query}")
        result: list[dict[str, Any]] = response["records"]
        return result

    def seed_writes(self, api: str, tenant: str) -> dict[str, int]:
        """How many writes the emulation applied to each record of ``tenant`` (by id)."""
        query = urlencode({"tenant": tenant})
        response = self._admin("GET", f"{self._seed_prefix(api)}/__writes?{query}")
        result: dict[str, int] = response["writes"]
        return result

    def seed_expire_tokens(self) -> int:
        """Inxmail: revoke every issued sync token (their next use is a 410)."""
        expired: int = self._admin("POST", "/inxmail/__expire-tokens")["expired"]
        return expired
