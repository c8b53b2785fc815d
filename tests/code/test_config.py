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
        "TICKML_INFLUX_URL": "http://influxdb:8086",
        "TICKML_UNKNOWN": "ignored",
    })
    assert settings.models_dir == Path("/srv/models")
    assert settings.data_dir == tmp_path / "data"
    assert settings.api_workers == 4
    assert settings.api_reload_interval == 0.5
    assert settings.influx_url == "http://influxdb:8086"


def test_a_malformed_number_names_the_variable() -> None:
    with pytest.raises(ValueError, match="TICKML_API_WORKERS='many' is not a valid int"):
        Settings.from_env({"TICKML_API_WORKERS": "many"})
