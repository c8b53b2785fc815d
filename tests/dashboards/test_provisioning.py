"""Grafana and Chronograf provisioning files, checked without a server of either."""

from __future__ import annotations

import configparser
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.cog import runtime
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard

from tests.dashboards.grafana import (
    DATASOURCE_TYPE,
    DATASOURCE_UID,
    GRAFANA_MOUNTS,
    datasource_refs,
    iter_panels,
)

from .conftest import GRAFANA, ROOT, load_dashboards

DASHBOARDS = load_dashboards()
PROVISIONING = GRAFANA / "provisioning"
CHRONOGRAF = ROOT / "compose" / "chronograf" / "resources"
HOME = "fraud-live.json"
#: What the issue asks the live dashboard to show, by words its panel titles must hold.
LIVE_CONTENT = ["Transactions per second", "Flagged per second and flagged share",
                "Distribution of fraud probabilities", "Latest flagged transactions",
                "Precision", "Recall", "Confusion counts", "Unscored points and their reasons",
                "Model in use", "Pipeline latency p50 / p99", "Fraud alerts"]
HEALTH_CONTENT = ["Points through each stage", "Kapacitor tasks executing",
                  "Kapacitor task throughput", "Model API request rate", "Model API latency",
                  "Scored live vs by the sweep", "Live share"]


def repo_path(container_path: str) -> Path:
    """The repository file compose mounts at `container_path` in the Grafana container."""
    for mount, source in GRAFANA_MOUNTS.items():
        if container_path == mount or container_path.startswith(mount + "/"):
            return ROOT / source / container_path[len(mount):].lstrip("/")
    raise AssertionError(f"{container_path} is not under any Grafana mount")


def load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict) and data.get("apiVersion") == 1, path
    return data


def unknown_keys(original: Any, modelled: Any, path: str = "") -> list[str]:
    """Paths in `original` that did not survive a trip through Grafana's dashboard model."""
    if isinstance(original, dict):
        if not isinstance(modelled, dict):
            return [f"{path} (not an object in the model)"]
        found = []
        for key, value in original.items():
            if key not in modelled:
                found.append(f"{path}/{key}")
            else:
                found += unknown_keys(value, modelled[key], f"{path}/{key}")
        return found
    if isinstance(original, list):
        if not isinstance(modelled, list) or len(modelled) != len(original):
            return [f"{path} (list changed in the model)"]
        return [key for i, (a, b) in enumerate(zip(original, modelled, strict=True))
                for key in unknown_keys(a, b, f"{path}[{i}]")]
    return []


def model_gaps(dashboard: dict[str, Any]) -> list[str]:
    """Keys of `dashboard` that Grafana's dashboard model does not know.

    An annotation's `target` is a query of its datasource, as a panel's targets are;
    the model types it after the built-in Grafana datasource only (its own comment says
    "this should be a regular DataQuery"), so InfluxDB's query keys there are not gaps.
    """
    annotation_target = re.compile(r"^/annotations/list\[\d+\]/target/")
    return [path for path in unknown_keys(dashboard, through_grafana_model(dashboard))
            if not annotation_target.match(path)]


def through_grafana_model(dashboard: dict[str, Any]) -> dict[str, Any]:
    """The dashboard decoded into grafana-foundation-sdk's models and encoded again."""
    register_default_plugins()
    return json.loads(json.dumps(Dashboard.from_json(dashboard), cls=JSONEncoder))


def test_datasource_provisioning_parses_and_fixes_the_uid_without_a_grafana_server() -> None:
    files = sorted((PROVISIONING / "datasources").glob("*.yaml"))
    assert files
    sources = [source for path in files for source in load_yaml(path)["datasources"]]
    influx = [source for source in sources if source["uid"] == DATASOURCE_UID]
    assert len(influx) == 1
    assert influx[0]["type"] == DATASOURCE_TYPE and influx[0]["access"] == "proxy"
    assert influx[0]["url"] == "http://influxdb:8086"
    assert influx[0]["jsonData"]["dbName"] == "fraud"
    assert influx[0]["jsonData"]["version"] == "InfluxQL"


def test_dashboard_provider_names_the_dashboard_files_without_a_grafana_server() -> None:
    files = sorted((PROVISIONING / "dashboards").glob("*.yaml"))
    assert files
    providers = [provider for path in files for provider in load_yaml(path)["providers"]]
    assert [provider["type"] for provider in providers] == ["file"]
    folder = repo_path(providers[0]["options"]["path"])
    assert folder.is_dir()
    assert sorted(path.name for path in folder.glob("*.json")) == sorted(DASHBOARDS)


def test_grafana_ini_sets_home_dashboard_and_no_anonymous_access_without_a_grafana_server(
        ) -> None:
    ini = configparser.ConfigParser()
    ini.read_string(repo_path("/etc/grafana/grafana.ini").read_text())
    assert ini.getboolean("auth.anonymous", "enabled") is False
    home = ini.get("dashboards", "default_home_dashboard_path")
    assert repo_path(home).name == HOME and repo_path(home).is_file()
    assert not ini.has_option("security", "admin_password"), "the password comes from .env"
    assert ini.get("dashboards", "min_refresh_interval") == "1s"


def test_grafana_ini_keeps_the_bundled_influxdb_plugin_and_fetches_no_plugin() -> None:
    """Grafana 13.2+ replaces bundled datasource plugins (InfluxDB's among them) with the
    catalog's newest at each start unless told not to; the stack must start offline."""
    ini = configparser.ConfigParser()
    ini.read_string(repo_path("/etc/grafana/grafana.ini").read_text())
    assert ini.getboolean("plugins", "preinstall_disabled") is True
    assert ini.getboolean("plugins", "preinstall_auto_update") is False
    assert ini.getboolean("analytics", "check_for_plugin_updates") is False


def test_uids_have_the_format_grafana_12_enforces() -> None:
    """Since Grafana 12 a datasource uid is letters, digits, `-` and `_`, at most 40."""
    uid = re.compile(r"[A-Za-z0-9_-]{1,40}")
    assert uid.fullmatch(DATASOURCE_UID)
    for name, dashboard in DASHBOARDS.items():
        assert uid.fullmatch(dashboard["uid"]), name


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_dashboard_is_a_classic_dashboard_grafana_file_provisioning_accepts(name: str) -> None:
    """Grafana 13's file provisioning refuses the v2 (resource) format; it loads classic."""
    dashboard = DASHBOARDS[name]
    assert not {"apiVersion", "kind", "spec", "metadata"} & set(dashboard)
    assert isinstance(dashboard["panels"], list)


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_dashboard_is_valid_against_grafanas_dashboard_model_without_a_grafana_server(
        name: str) -> None:
    dashboard = DASHBOARDS[name]
    assert model_gaps(dashboard) == []
    assert dashboard["schemaVersion"] == Dashboard().schema_version
    for panel in iter_panels(dashboard):
        assert runtime.panelcfg_config(panel["type"]) is not None, panel["type"]


def test_the_model_check_catches_a_misspelt_key() -> None:
    dashboard = json.loads(json.dumps(DASHBOARDS[HOME]))
    dashboard["panels"][0]["fieldconfig"] = dashboard["panels"][0].pop("fieldConfig")
    assert model_gaps(dashboard) == ["/panels[0]/fieldconfig"]


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_panel_and_query_uses_the_provisioned_datasource(name: str) -> None:
    refs = datasource_refs(DASHBOARDS[name])
    assert refs
    wrong = [where for where, ref in refs
             if ref != {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID}]
    assert wrong == []


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_dashboard_refreshes_every_5s_with_unique_ids_on_the_grid(name: str) -> None:
    dashboard = DASHBOARDS[name]
    assert dashboard["refresh"] == "5s"
    panels = list(iter_panels(dashboard))
    assert len({panel["id"] for panel in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        area = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area
        assert panel.get("description"), f"{panel['title']} says nothing about its data"
        for target in panel["targets"]:
            assert target["rawQuery"] is True
            assert target["resultFormat"] in ("time_series", "table")


def test_dashboard_uids_are_unique_and_links_point_at_them() -> None:
    uids = {dashboard["uid"] for dashboard in DASHBOARDS.values()}
    assert len(uids) == len(DASHBOARDS)
    for dashboard in DASHBOARDS.values():
        for link in dashboard["links"]:
            assert link["url"].removeprefix("/d/") in uids


@pytest.mark.parametrize(("name", "content"), [(HOME, LIVE_CONTENT),
                                               ("stack-health.json", HEALTH_CONTENT)])
def test_dashboard_shows_what_the_issue_asks_for(name: str, content: list[str]) -> None:
    titles = " | ".join(panel["title"] for panel in iter_panels(DASHBOARDS[name]))
    assert [words for words in content if words not in titles] == []


def test_readme_table_lists_every_panel() -> None:
    readme = (GRAFANA / "README.md").read_text()
    rows = {re.sub(r"\s+", " ", line.split("|")[1].strip().strip("*"))
            for line in readme.splitlines() if line.startswith("| ")}
    titles = {panel["title"] for dashboard in DASHBOARDS.values()
              for panel in iter_panels(dashboard)}
    assert titles - rows == set()


def test_chronograf_resources_connect_influxdb_and_kapacitor_without_a_chronograf_server(
        ) -> None:
    sources = [json.loads(path.read_text()) for path in sorted(CHRONOGRAF.glob("*.src"))]
    kapacitors = [json.loads(path.read_text()) for path in sorted(CHRONOGRAF.glob("*.kap"))]
    assert len(sources) == 1 and len(kapacitors) == 1
    source, kapacitor = sources[0], kapacitors[0]
    assert source["type"] == "influx" and source["url"] == "http://influxdb:8086"
    assert source["default"] is True
    assert kapacitor["srcID"] == source["id"] and kapacitor["active"] is True
    assert kapacitor["url"] == "http://kapacitor:9092"
