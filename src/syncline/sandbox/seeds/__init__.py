"""Faithful emulations of four real APIs, mounted inside the sandbox app.

Why: the generic sandbox endpoints exercise every pagination *style*, but a
client config written for a real API also depends on that API's quirks: its
exact envelope, its error shapes, how its cursors behave when data moves, and
how it rate-limits.  Each module here emulates one API closely enough that a
config written for the real service works unchanged against the sandbox when
only ``base_url`` differs (``http://127.0.0.1:PORT/<prefix>``):

============================  ===========================  ==========================
prefix                        API                          module
============================  ===========================  ==========================
``/fattureincloud``           Fatture in Cloud v2 products :mod:`.fattureincloud`
``/demarches-simplifiees``    démarches-simplifiées v2     :mod:`.demarches`
``/inxmail``                  Inxmail mailing-syncs        :mod:`.inxmail`
``/exact``                    Exact Online CRM accounts    :mod:`.exact`
============================  ===========================  ==========================

Every emulation is seeded and deterministic, does its own auth and rate
limiting, and has the same admin surface under its prefix (``__stats``,
``__config``, ``__reset``, ``__mutate``, ``__records``; see
:class:`.common.SeedApi`).  The sandbox's global middlewares (token gate,
rate limits, faults) only act on the generic data paths, so they never touch
these prefixes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from syncline.sandbox.common import BadRequestError
from syncline.sandbox.seeds.common import SeedApi
from syncline.sandbox.seeds.demarches import DemarchesSimplifiees
from syncline.sandbox.seeds.exact import ExactOnline
from syncline.sandbox.seeds.fattureincloud import FattureInCloud
from syncline.sandbox.seeds.inxmail import Inxmail

SEED_APIS: dict[str, type[SeedApi[Any]]] = {
    api.name: api for api in (FattureInCloud, DemarchesSimplifiees, Inxmail, ExactOnline)
}
"""Emulations by name: ``fattureincloud``, ``demarches``, ``inxmail``, ``exact``."""


def build_seed_apis(configs: Mapping[str, Mapping[str, Any]] | None = None) -> list[SeedApi[Any]]:
    """One instance of every emulation, with launch config overrides from ``configs``.

    Raises :class:`~syncline.sandbox.common.BadRequestError` for an unknown API
    name or an invalid config field.
    """
    configs = configs or {}
    unknown = sorted(set(configs) - set(SEED_APIS))
    if unknown:
        raise BadRequestError(f"unknown seed API(s) {unknown}; known: {sorted(SEED_APIS)}")
    return [api(configs.get(name)) for name, api in SEED_APIS.items()]


__all__ = [
    "SEED_APIS",
    "DemarchesSimplifiees",
    "ExactOnline",
    "FattureInCloud",
    "Inxmail",
    "SeedApi",
    "build_seed_apis",
]
