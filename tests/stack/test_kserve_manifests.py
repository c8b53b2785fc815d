"""deploy/kserve/, checked without a Kubernetes cluster.

The manifests are loaded into the KServe Python SDK's own models (kserve 0.21.0, in the
venv `make kserve-sdk` builds, since kserve cannot share tickml's environment) by
scripts/check_kserve_manifests.py, which fails on a field the models do not declare, a
required field left out or a value of the wrong type. The runtime's command and ports
are checked against tickml's command line here. What no test here can show: a cluster
scheduling it, KServe's storage initializer, autoscaling, the probes at work.
"""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import click
import pytest
import typer
import yaml

from tickml.cli import app
from tickml.config import Settings
from tickml.modeling.train import DEFAULT_MODEL_NAME

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deploy" / "kserve"
RUNTIME = MANIFESTS / "servingruntime.yaml"
SERVICE = MANIFESTS / "inferenceservice.yaml"
CHECK = ROOT / "scripts" / "check_kserve_manifests.py"
SDK_PYTHON = Settings.from_env(dotenv=False).cache / "kserve-sdk" / "bin" / "python"


def manifest(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def run_check(*paths: Path) -> subprocess.CompletedProcess:
    """scripts/check_kserve_manifests.py in the KServe SDK's venv, on `paths`."""
    assert SDK_PYTHON.exists(), f"{SDK_PYTHON} is missing: run `make kserve-sdk`"
    return subprocess.run([str(SDK_PYTHON), "-W", "error", str(CHECK), *map(str, paths)],
                          capture_output=True, text=True, timeout=120)


def test_the_manifests_load_into_the_kserve_sdks_models() -> None:
    result = run_check(RUNTIME, SERVICE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"ok {RUNTIME}: ServingRuntime tickml-mlserver: formats ['tickml'], protocols " \
           "['v2', 'grpc-v2'], image tickml:0.1.0" in result.stdout
    assert f"ok {SERVICE}: InferenceService {DEFAULT_MODEL_NAME}: runtime tickml-mlserver, " \
           "format tickml, protocol v2, storageUri pvc://tickml-models/" in result.stdout


def _set(document: dict, path: str, value: Any) -> dict:
    """A copy of `document` with the value at the dotted `path` replaced (or removed)."""
    changed = copy.deepcopy(document)
    *parents, last = path.split(".")
    node = changed
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if value is None:
        del node[last]
    elif last.startswith("+"):
        node[last[1:]] = value
    else:
        node[last] = value
    return changed


BROKEN = {
    "misspelt-storage-uri": (SERVICE, "spec.predictor.model.+storageURI", "x",
                             "InferenceService.spec.predictor.model.storageURI: not a field "
                             "of V1beta1ModelSpec (did you mean 'storageUri'?)"),
    "missing-model-format": (SERVICE, "spec.predictor.model.modelFormat", None,
                             "InferenceService.spec.predictor.model: Invalid value for "
                             "`model_format`, must not be `None`"),
    "text-for-replicas": (SERVICE, "spec.predictor.minReplicas", "one",
                          "InferenceService.spec.predictor.minReplicas: 'one' is not of "
                          "type int"),
    "misspelt-protocols": (RUNTIME, "spec.+protocolVersion", ["v2"],
                           "ServingRuntime.spec.protocolVersion: not a field of "
                           "V1alpha1ServingRuntimeSpec (did you mean 'protocolVersions'?)"),
    "misspelt-container-key": (RUNTIME, "spec.containers.0.+imagee", "x",
                               "ServingRuntime.spec.containers[0].imagee: not a field of "
                               "V1Container (did you mean 'image'?)"),
    "missing-container-name": (RUNTIME, "spec.containers.0.name", None,
                               "ServingRuntime.spec.containers[0].name: Field required"),
    "misspelt-probe-key": (RUNTIME, "spec.containers.0.readinessProbe.httpGet.+pth", "/",
                           "readinessProbe.httpGet.pth: not a field of V1HTTPGetAction"),
}


@pytest.fixture(scope="module")
def broken_checked(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Each broken manifest's line of one check run (importing kserve takes seconds)."""
    folder = tmp_path_factory.mktemp("broken")
    paths = {}
    for case, (source, path, value, _) in BROKEN.items():
        paths[case] = folder / f"{case}.yaml"
        paths[case].write_text(yaml.safe_dump(_set(manifest(source), path, value)))
    result = run_check(*paths.values())
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    return {case: next((line for line in lines if line.startswith(f"FAIL {path}: ")),
                       f"no FAIL line for {path} in:\n{result.stdout}")
            for case, path in paths.items()}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_the_check_fails_on_a_wrong_or_missing_field(case: str,
                                                    broken_checked: dict[str, str]) -> None:
    assert BROKEN[case][3] in broken_checked[case], broken_checked[case]


def parsed(argv: list[str]) -> dict[str, Any]:
    """The options of the `tickml` command line `argv`, as tickml's CLI reads them.

    Raises click's errors on an unknown command, option or value.
    """
    assert argv[0] == "tickml"
    command, args = typer.main.get_command(app), argv[1:]
    while hasattr(command, "list_commands"):  # a group: descend into the subcommand
        name, *args = args
        command = command.get_command(click.Context(command), name)
        assert command is not None, f"`tickml` has no subcommand {name!r}"
    return command.make_context(command.name, list(args)).params


def test_the_runtime_runs_tickml_mlserver_serve_on_the_ports_it_declares() -> None:
    container, = manifest(RUNTIME)["spec"]["containers"]
    argv = container["command"] + container["args"]
    assert argv[:4] == ["tickml", "mlserver", "serve", "/tmp/mlserver"]
    options = parsed(argv)
    assert options["models_dir"] == Path("/mnt/models")  # where KServe puts storageUri
    assert options["host"] == "0.0.0.0"
    assert options["grpc_port"] == 9000 != options["http_port"]
    assert [(p["name"], p["containerPort"]) for p in container["ports"]] == \
        [("http1", options["http_port"])]
    probe = container["readinessProbe"]["httpGet"]
    assert (probe["path"], probe["port"]) == ("/v2/health/ready", options["http_port"])
    compose = manifest(ROOT / "docker-compose.yml")
    assert container["image"] == compose["x-tickml"]["image"], "the image compose builds"


def test_a_pvc_is_read_from_its_own_mount_not_through_kserves_links() -> None:
    """KServe appends the InferenceService's args to the runtime's; the last
    --models-dir wins, and for pvc://CLAIM/ it must be the claim's mount, /mnt/pvc."""
    container, = manifest(RUNTIME)["spec"]["containers"]
    model = manifest(SERVICE)["spec"]["predictor"]["model"]
    claim_path = model["storageUri"].removeprefix("pvc://").split("/", 1)[1]
    options = parsed(container["command"] + container["args"] + model["args"])
    assert options["models_dir"] == Path("/mnt/pvc") / claim_path


def test_the_inference_service_names_the_runtime_and_its_model_format() -> None:
    runtime, service = manifest(RUNTIME), manifest(SERVICE)
    model = service["spec"]["predictor"]["model"]
    assert model["runtime"] == runtime["metadata"]["name"]
    assert model["modelFormat"]["name"] in [f["name"] for f in
                                            runtime["spec"]["supportedModelFormats"]]
    assert model["protocolVersion"] in runtime["spec"]["protocolVersions"]
    # MLServer serves the production model under its registry name.
    assert service["metadata"]["name"] == DEFAULT_MODEL_NAME
    assert model["storageUri"]
