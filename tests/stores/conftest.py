"""``backend``: each contract test runs once per store of ``tests.stores.backends.BACKENDS``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.stores.backends import BACKENDS, Backend, make_backend


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return make_backend(request.param, request, tmp_path)
