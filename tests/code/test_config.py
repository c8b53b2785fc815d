"""Settings come from TICKML_* variables with localhost defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from tickml.config import Settings


def test_defaults_work_natively_on_localhost(tmp_path: Path) -> None:
    settings = Settings.from_env({"TICKML_ROOT": str(tmp_path)})
    assert settings.influx_url == "http://127.0.0.1:8086"
    assert settings.api_url == "http://127.0.0.1:5000"
    assert settings.data_dir == tmp_path / "data"
    assert settings.models_dir == tmp_path / "models"
    assert settings.udf_socket == tmp_path / "run" / "fraud.sock"


def test_environment_overrides_with_types(tmp_path: Path) -> None:
    settings = Settings.from_env({
        "TICKML_ROOT": str(tmp_path),
        "TICKML_MODELS_DIR": "/srv/models",
        "TICKML_API_WORKERS": "4",
        "TICKML_API_RELOAD_INTERVAL": "0.5",
        "TICKML_API_RESOLVE_INTERVAL": "2.5",
        "TICKML_INFLUX_URL": "http://influxdb:8086",
        "TICKML_UNKNOWN": "ignored",
    })
    assert settings.models_dir == Path("/srv/models")
    assert settings.data_dir == tmp_path / "data"
    assert settings.api_workers == 4
    assert settings.api_reload_interval == 0.5
    assert settings.api_resolve_interval == 2.5
    assert settings.influx_url == "http://influxdb:8086"


def test_a_malformed_number_names_the_variable() -> None:
    with pytest.raises(ValueError, match="TICKML_API_WORKERS='many' is not a valid int"):
        Settings.from_env({"TICKML_API_WORKERS": "many"})


def write_dotenv(root: Path, **values: str) -> None:
    (root / ".env").write_text("".join(f"{key}={value}\n" for key, value in values.items()))


def test_the_projects_dotenv_gives_the_logins_and_ports_compose_reads(tmp_path: Path) -> None:
    write_dotenv(tmp_path, INFLUXDB_TICKML_USER="tickml", INFLUXDB_TICKML_PASSWORD="s3cret",
                 KAPACITOR_TICKML_USER="tickml-k", KAPACITOR_TICKML_PASSWORD="k3y",
                 INFLUXDB_PORT="18086", KAPACITOR_PORT="19092", API_PORT="15000",
                 INFLUXDB_ADMIN_PASSWORD="not-for-tickml")
    settings = Settings.from_env({"TICKML_ROOT": str(tmp_path)})
    assert (settings.influx_user, settings.influx_password) == ("tickml", "s3cret")
    assert (settings.kapacitor_user, settings.kapacitor_password) == ("tickml-k", "k3y")
    assert settings.influx_url == "http://127.0.0.1:18086"
    assert settings.kapacitor_url == "http://127.0.0.1:19092"
    assert settings.api_url == "http://127.0.0.1:15000"
    assert settings.influx_admin_user == "", "the admin stays out of a hand-run command"


@pytest.mark.parametrize(("environ", "user", "url"), [
    ({"TICKML_INFLUX_USER": "mine", "TICKML_INFLUX_URL": "http://db:8086"}, "mine",
     "http://db:8086"),
    ({"INFLUXDB_TICKML_USER": "exported", "INFLUXDB_PORT": "28086"}, "exported",
     "http://127.0.0.1:28086"),
    ({}, "from-dotenv", "http://127.0.0.1:18086"),
], ids=["tickml-variable-wins", "environment-wins-over-dotenv", "dotenv"])
def test_the_environment_wins_over_dotenv(tmp_path: Path, environ: dict[str, str], user: str,
                                          url: str) -> None:
    write_dotenv(tmp_path, INFLUXDB_TICKML_USER="from-dotenv", INFLUXDB_PORT="18086")
    settings = Settings.from_env({"TICKML_ROOT": str(tmp_path), **environ})
    assert (settings.influx_user, settings.influx_url) == (user, url)


def test_no_dotenv_keeps_the_defaults(tmp_path: Path) -> None:
    settings = Settings.from_env({"TICKML_ROOT": str(tmp_path)})
    assert (settings.influx_user, settings.kapacitor_user) == ("", "")
