"""Single programs of the pipeline, started as the local pipeline starts them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tickml.influx import InfluxClient
from tickml.stack.services import start_influxd
from tickml.stack.users import Login

pytestmark = pytest.mark.integration


def test_influxd_alone_answers_and_has_no_database_yet(tmp_path: Path) -> None:
    admin = Login("admin", "admin-secret")
    influxd, config = start_influxd(tmp_path, admin)
    try:
        influx = InfluxClient(config.url, "fraud", username=admin.user, password=admin.password)
        assert influx.ping()
        assert "fraud" not in {row["name"] for row in influx.records("SHOW DATABASES")}
        assert influx.users() == {"admin": True}
        influx.close()
    finally:
        influxd.stop()
    assert (tmp_path / "influxd.log").is_file()
