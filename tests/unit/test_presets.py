"""The presets as package data: every file loads and validates, and `init` writes or refuses."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from syncline.cli import cli
from syncline.config.strategies import NoIncremental, SyncTokenIncremental, WatermarkIncremental
from syncline.errors import ConfigError
from syncline.plan import plan_jobs
from syncline.presets import PresetError, get_preset, preset_config, preset_names, write_preset

NAMES = ["demarches-simplifiees", "exact-online", "fattureincloud", "inxmail"]


def placeholders(name: str) -> dict[str, str]:
    """What a user would export: a URL where a URL goes, anything elsewhere."""
    return {
        var: "https://space.example" if var.endswith("_BASE_URL") else "placeholder"
        for var in get_preset(name).required_env()
    }


def test_the_four_presets_ship_with_the_package() -> None:
    assert preset_names() == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_every_preset_loads_and_plans_with_placeholder_values(name: str) -> None:
    config = preset_config(name, environ=placeholders(name))
    assert plan_jobs(config)  # paths, partitions, JMESPaths, placeholders all check out
    preset = get_preset(name)
    assert preset.description
    assert "\n" not in preset.description


@pytest.mark.parametrize(
    ("name", "needs", "base_url"),
    [
        ("fattureincloud", ["FIC_TOKEN", "FIC_COMPANY_ID"], "https://api-v2.fattureincloud.it"),
        ("demarches-simplifiees", ["DS_TOKEN"], "https://www.demarches-simplifiees.fr"),
        ("exact-online", ["EXACT_ACCESS_TOKEN", "EXACT_DIVISION"], "https://start.exactonline.nl"),
        (
            "inxmail",
            ["INXMAIL_BASE_URL", "INXMAIL_KEY_ID", "INXMAIL_SECRET"],
            "https://space.example",
        ),
    ],
)
def test_secrets_and_tenants_come_from_the_environment_and_the_real_url_is_the_default(
    name: str, needs: list[str], base_url: str
) -> None:
    assert get_preset(name).required_env() == needs
    (source,) = preset_config(name, environ=placeholders(name)).sources.values()
    assert source.base_url == base_url
    assert source.auth is not None
    missing = dict(placeholders(name))
    del missing[needs[0]]
    with pytest.raises(ConfigError, match=needs[0]):
        preset_config(name, environ=missing)


def test_each_preset_uses_its_apis_most_economical_mode() -> None:
    def streams(name: str) -> dict[str, object]:
        (source,) = preset_config(name, environ=placeholders(name)).sources.values()
        return {stream_name: stream.incremental for stream_name, stream in source.streams.items()}

    fic = streams("fattureincloud")["products"]
    assert isinstance(fic, NoIncremental)
    assert fic.detect_deletes
    inx = streams("inxmail")["mailing_synchronizations"]
    assert isinstance(inx, SyncTokenIncremental)
    ds = streams("demarches-simplifiees")["dossiers"]
    assert isinstance(ds, WatermarkIncremental)
    assert ds.param == "updatedSince"
    exact = streams("exact-online")["accounts"]
    assert isinstance(exact, WatermarkIncremental)
    assert (exact.param, exact.template, exact.format) == ("$filter", "Timestamp gt {value}", "raw")


def test_exact_declares_the_minute_and_daily_limits_per_division() -> None:
    (source,) = preset_config("exact-online", environ=placeholders("exact-online")).sources.values()
    limits = {window.key: (window.calls, window.per, window.reserve, window.scope)
              for window in source.limits}  # fmt: skip
    assert limits == {
        "minutely": (60, 60.0, 0, "partition"),
        "daily": (5000, 86400.0, 500, "partition"),
    }


def test_an_unknown_preset_names_the_known_ones() -> None:
    with pytest.raises(PresetError, match="unknown preset 'exact'; known presets: demarches"):
        get_preset("exact")


def test_write_preset_copies_the_file_and_refuses_to_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "syncline.yaml"
    write_preset("inxmail", out)
    assert out.read_text(encoding="utf-8") == get_preset("inxmail").text
    out.write_text("my edited config\n", encoding="utf-8")
    with pytest.raises(PresetError, match="already exists; use --force"):
        write_preset("fattureincloud", out)
    assert out.read_text(encoding="utf-8") == "my edited config\n"
    write_preset("fattureincloud", out, force=True)
    assert out.read_text(encoding="utf-8").startswith("# Fatture in Cloud")
    with pytest.raises(PresetError, match="is a directory"):
        write_preset("inxmail", tmp_path)


def test_cli_presets_lists_each_with_its_description() -> None:
    done = CliRunner().invoke(cli, ["presets"])
    assert done.exit_code == 0, done.output
    lines = done.output.splitlines()
    for name in NAMES:
        (line,) = [line for line in lines if line.startswith(name + " ")]
        assert get_preset(name).description in line
    assert "syncline init --preset NAME" in done.output


def test_cli_init_writes_with_comments_and_refuses_without_force(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "conf.yaml"
    done = runner.invoke(cli, ["init", "--preset", "exact-online", "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert "EXACT_ACCESS_TOKEN, EXACT_DIVISION" in done.output
    assert out.read_text(encoding="utf-8") == get_preset("exact-online").text  # comments intact

    again = runner.invoke(cli, ["init", "--preset", "inxmail", "--out", str(out)])
    assert again.exit_code == 2
    assert "already exists; use --force" in again.output
    assert out.read_text(encoding="utf-8") == get_preset("exact-online").text

    forced = runner.invoke(cli, ["init", "--preset", "inxmail", "--out", str(out), "--force"])
    assert forced.exit_code == 0, forced.output
    assert out.read_text(encoding="utf-8") == get_preset("inxmail").text


def test_cli_init_with_an_unknown_preset_is_a_usage_error(tmp_path: Path) -> None:
    done = CliRunner().invoke(cli, ["init", "--preset", "stripe", "--out", str(tmp_path / "x")])
    assert done.exit_code == 2
    assert "unknown preset 'stripe'; known presets: " + ", ".join(NAMES) in done.output
    assert not (tmp_path / "x").exists()
