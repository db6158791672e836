"""Launch-time configuration of the real-API emulations: CLI flag and ``SandboxProcess``."""

from __future__ import annotations

import httpx
import pytest

from syncline.sandbox import SandboxProcess, create_app
from syncline.sandbox.common import BadRequestError
from syncline.sandbox.server import main


def test_seed_config_reaches_the_child_process() -> None:
    launch = {"exact": {"minutely_limit": 2, "tenants": {"7": 3}}, "inxmail": {"password": None}}
    with SandboxProcess(records=10, seed_config=launch) as process:
        config = process.seed_config("exact")
        assert (config["minutely_limit"], config["tenants"]) == (2, {"7": 3})
        url = f"{process.seed_url('exact')}/api/v1/7/crm/Accounts"
        headers = {"Authorization": "Bearer exact-token"}
        statuses = [httpx.get(url, headers=headers, trust_env=False) for _ in range(3)]
        assert [r.status_code for r in statuses] == [200, 200, 429]
        assert len(statuses[0].json()["d"]["results"]) == 3
        # A runtime change is undone by a reset: back to the launch config, not the defaults.
        process.seed_config("exact", minutely_limit=60)
        assert process.seed_reset("exact")["minutely_limit"] == 2
        assert process.seed_config("inxmail")["password"] is None


@pytest.mark.parametrize(
    "raw",
    ["{not json", "[]", '{"exact": 1}', '{"nope": {}}', '{"exact": {"page_size": 0}}'],
)
def test_invalid_seed_config_flag_is_a_usage_error(raw: str) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--seed-config", raw])
    assert exc.value.code == 2


def test_create_app_validates_seed_configs() -> None:
    with pytest.raises(BadRequestError, match="unknown config field"):
        create_app(seeds={"fattureincloud": {"per_page": 10}})
    app = create_app(seeds={"demarches": {"tenants": {"5": 1}}})
    assert sorted(app.state.seeds) == ["demarches", "exact", "fattureincloud", "inxmail"]
    assert list(app.state.seeds["demarches"].tables) == ["5"]
