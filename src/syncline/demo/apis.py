"""The four APIs of the demo: which preset, which emulation, what changes, how to compare.

Each entry ties a preset (the file ``syncline init`` writes for the real API)
to the sandbox's emulation of that API: the environment that points the
preset at it, the tenants to sync, the changes made between the two runs, and
how the store is compared with the emulation's own data afterwards, so the
demo proves what it shows.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syncline.sandbox import SandboxProcess

__all__ = ["APIS", "DemoApi", "Mutation", "store_matches"]


@dataclass(frozen=True, slots=True)
class Mutation:
    """One ``__mutate`` call: how many of a tenant's records to update, insert, delete."""

    tenant: str
    update: int = 0
    insert: int = 0
    delete: int = 0


@dataclass(frozen=True, slots=True)
class DemoApi:
    title: str
    preset: str
    seed: str
    """The emulation's name in the sandbox (``SandboxProcess.seed_url``)."""
    full_tenants: dict[str, int]
    """Tenant -> records for the full demo; ``--quick`` keeps the emulation's defaults."""
    partition: str | None
    """The preset's partition key the tenants fill (``None``: one tenant per source)."""
    table: str
    key: str
    version: str
    """The record field that changes with every update (compared with the emulation)."""
    mutations: tuple[Mutation, ...]
    deletions: tuple[str, str] | None = None
    """(table, key column) of the stream mirroring deletions, if the API lists them apart."""
    note: str = ""
    """The incremental mode, in a few words."""
    env_names: dict[str, str] = field(default_factory=dict)
    """Environment variable -> what it holds: ``base_url``, ``token``, ``tenant``, ``password``."""

    def environment(self, sandbox: SandboxProcess) -> dict[str, str]:
        """The preset's environment for the emulation: its URL and its (public) test credentials."""
        config = sandbox.seed_config(self.seed)
        values = {
            "base_url": sandbox.seed_url(self.seed),
            "token": str(config.get("token")),
            "password": str(config.get("password")),
            "tenant": self.tenants(config)[0],
        }
        return {name: values[what] for name, what in self.env_names.items()}

    def tenants(self, config: Mapping[str, Any]) -> list[str]:
        """The tenants the demo syncs: all of them, or the first for a one-tenant source."""
        names = sorted(config["tenants"], key=lambda name: (len(name), name))
        return names if self.partition is not None else names[:1]


APIS: tuple[DemoApi, ...] = (
    DemoApi(
        title="Fatture in Cloud",
        preset="fattureincloud",
        seed="fattureincloud",
        full_tenants={"1001": 2370, "1002": 580, "1003": 0},
        partition="company_id",
        table="products",
        key="id",
        version="updated_at",
        mutations=(Mutation("1001", update=12, insert=5, delete=3), Mutation("1002", update=4)),
        note="full poll",
        env_names={"FIC_BASE_URL": "base_url", "FIC_TOKEN": "token"},
    ),
    DemoApi(
        title="démarches-simplifiées",
        preset="demarches-simplifiees",
        seed="demarches",
        full_tenants={"1001": 1200, "1002": 450, "1003": 0},
        partition="demarche",
        table="dossiers",
        key="number",
        version="dateDerniereModification",
        mutations=(Mutation("1001", update=10, insert=4, delete=2), Mutation("1002", update=3)),
        deletions=("deleted_dossiers", "number"),
        note="updatedSince",
        env_names={"DS_BASE_URL": "base_url", "DS_TOKEN": "token"},
    ),
    DemoApi(
        title="Inxmail",
        preset="inxmail",
        seed="inxmail",
        full_tenants={"acme": 2400, "globex": 35},
        partition=None,
        table="mailing_synchronizations",
        key="id",
        version="modificationDate",
        mutations=(Mutation("acme", update=8, insert=3, delete=2),),
        note="sync token",
        env_names={
            "INXMAIL_BASE_URL": "base_url",
            "INXMAIL_KEY_ID": "tenant",
            "INXMAIL_SECRET": "password",
        },
    ),
    DemoApi(
        title="Exact Online",
        preset="exact-online",
        seed="exact",
        full_tenants={"3001": 6000, "3002": 3000, "3003": 1500},
        partition="division",
        table="accounts",
        key="ID",
        version="Timestamp",
        mutations=(
            Mutation("3001", update=20, insert=5, delete=3),
            Mutation("3002", update=6, insert=1),
        ),
        deletions=("deleted_accounts", "EntityKey"),
        note="Timestamp",
        env_names={"EXACT_BASE_URL": "base_url", "EXACT_ACCESS_TOKEN": "token"},
    ),
)


def store_matches(db: Path, api: DemoApi, sandbox: SandboxProcess) -> bool:
    """The live rows (minus mirrored deletions) equal the emulation's records, versions included."""
    config = sandbox.seed_config(api.seed)
    expected = {
        (tenant, str(record[api.key])): record[api.version]
        for tenant in api.tenants(config)
        for record in sandbox.seed_records(api.seed, tenant)
    }
    # Identifiers come from the constants above, never from input.
    where = f'"{api.partition}"' if api.partition else "NULL"
    rows_sql = (
        f'SELECT {where}, "{api.key}", json_extract(_data, ?) FROM "{api.table}" '  # noqa: S608
        "WHERE _deleted_at IS NULL"
    )
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(rows_sql, (f"$.{api.version}",)).fetchall()
        gone: set[str] = set()
        if api.deletions is not None:
            table, column = api.deletions
            gone = {str(key) for (key,) in conn.execute(f'SELECT "{column}" FROM "{table}"')}  # noqa: S608
    solo = api.tenants(config)[0]
    found = {
        (solo if api.partition is None else str(tenant), str(key)): version
        for tenant, key, version in rows
        if str(key) not in gone
    }
    return found == expected
