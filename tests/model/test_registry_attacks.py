"""Registry: what it refuses to load, with real files planted the way an attacker would.

Each planted artifact is a tripwire: unpickling it runs `os.mkdir(marker)`, as a harmful
pickle would run its payload. A refused load must leave the marker uncreated, which
shows that nothing was unpickled, not only that the load raised.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tickml.files import write_json_atomically
from tickml.loader import load, load_production
from tickml.modeling.register import register_model
from tickml.registry import (
    ARTIFACT,
    METADATA,
    POINTER,
    IntegrityError,
    ModelRef,
    ModelRegistry,
    RegistryError,
    UnsafeEntryError,
)


class Tripwire:
    """Pickles to a call of `os.mkdir(marker)`: unpickling it is running code."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.mkdir, (self.marker,)


@pytest.fixture
def registry(small_registry: ModelRegistry, tmp_path: Path) -> ModelRegistry:
    """A private copy of the session registry (fraud-lgbm v1 in production)."""
    shutil.copytree(small_registry.root, tmp_path / "models")
    return ModelRegistry(tmp_path / "models")


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    """The path a tripwire creates when it is unpickled."""
    return tmp_path / "code-ran"


def plant(root: Path, name: str, marker: Path) -> Path:
    """A tripwire registered as `name` v1 in a registry at `root`: a valid-looking model.

    Returns its version folder (`root/name/1`), sidecar and checksum included.
    """
    ref = ModelRegistry(root).register(Tripwire(marker), name=name, threshold=0.5,
                                       metrics={}, params={}, seed=1, data_sha256="x")
    return root / name / str(ref.version)


def point(registry: ModelRegistry, pointer: dict[str, Any]) -> None:
    """Write the production pointer by hand, as someone bypassing `promote` would."""
    write_json_atomically(registry.root / POINTER, pointer)


def edit_sidecar(folder: Path, **changes: Any) -> None:
    path = folder / METADATA
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def test_the_tripwire_runs_when_a_writer_of_models_registers_it(registry, marker) -> None:
    """The trust model, shown: a checksum proves no swap, not that a model is harmless."""
    plant(registry.root, "harmful", marker)
    point(registry, {"name": "harmful", "version": 1})
    with pytest.raises(RegistryError, match="not a classifier"):
        load_production(registry)
    assert marker.is_dir()


@pytest.mark.parametrize(
    ("pointer", "message"),
    [
        ({"name": "../elsewhere", "version": 1}, r"model name '\.\./elsewhere' is not valid"),
        ({"name": "..", "version": 1}, r"model name '\.\.' is not valid"),
        ({"name": ".hidden", "version": 1}, r"model name '\.hidden' is not valid"),
        ({"name": "a/b", "version": 1}, r"model name 'a/b' is not valid"),
        ({"name": "", "version": 1}, r"model name '' is not valid"),
        ({"name": "fraud\x00lgbm", "version": 1}, r"model name 'fraud\\x00lgbm' is not valid"),
        ({"name": "modèle", "version": 1}, r"model name 'modèle' is not valid"),
        ({"name": "x" * 101, "version": 1}, r"model name 'x{101}' is not valid"),
        ({"name": ["fraud-lgbm"], "version": 1}, r"model name \['fraud-lgbm'\] is not valid"),
        ({"version": 1}, "model name None is not valid"),
        ({"name": "fraud-lgbm", "version": 0}, "model version 0 is not valid"),
        ({"name": "fraud-lgbm", "version": -1}, "model version -1 is not valid"),
        ({"name": "fraud-lgbm", "version": "1"}, "model version '1' is not valid"),
        ({"name": "fraud-lgbm", "version": "../1"}, r"model version '\.\./1' is not valid"),
        ({"name": "fraud-lgbm", "version": 1.0}, "model version 1.0 is not valid"),
        ({"name": "fraud-lgbm", "version": True}, "model version True is not valid"),
        ({"name": "fraud-lgbm"}, "model version None is not valid"),
    ],
)
def test_a_pointer_with_a_bad_name_or_version_is_refused(registry, pointer, message) -> None:
    point(registry, pointer)
    with pytest.raises(RegistryError, match=f"production pointer production.json is refused: "
                                            f"{message}"):
        registry.production()


def test_a_pointer_climbing_out_of_the_root_loads_nothing(registry, tmp_path, marker) -> None:
    plant(tmp_path, "elsewhere", marker)  # what `models/../elsewhere/1` resolves to
    point(registry, {"name": "../elsewhere", "version": 1})
    with pytest.raises(RegistryError, match=r"model name '\.\./elsewhere' is not valid"):
        load_production(registry)
    assert not marker.exists()


def test_an_absolute_pointer_loads_nothing(registry, tmp_path, marker) -> None:
    outside = plant(tmp_path / "outside", "fraud-lgbm", marker)
    point(registry, {"name": str(outside.parent), "version": 1})
    message = re.escape(f"model name '{outside.parent}' is not valid")
    with pytest.raises(RegistryError, match=message):
        load_production(registry)
    assert not marker.exists()


@pytest.mark.parametrize("where", ["absolute", "relative"])
def test_a_sidecar_naming_another_artifact_file_loads_nothing(registry, tmp_path, marker,
                                                             where) -> None:
    outside = plant(tmp_path / "outside", "fraud-lgbm", marker) / ARTIFACT
    ref = registry.production()
    named = str(outside) if where == "absolute" else os.path.relpath(outside,
                                                                     registry.path(ref))
    edit_sidecar(registry.path(ref), artifact={
        "file": named, "sha256": hashlib.sha256(outside.read_bytes()).hexdigest(),
        "bytes": outside.stat().st_size})
    with pytest.raises(RegistryError, match=re.escape(
            f"names the artifact '{named}'; only model.joblib in the version folder is ever "
            "loaded")):
        load(registry, ref)
    assert not marker.exists()


def link_artifact(registry: ModelRegistry, outside: Path) -> ModelRef:
    """fraud-lgbm v1's artifact replaced by a link to `outside`, its sidecar updated."""
    ref = registry.production()
    artifact = outside / ARTIFACT
    (registry.path(ref) / ARTIFACT).unlink()
    (registry.path(ref) / ARTIFACT).symlink_to(artifact)
    edit_sidecar(registry.path(ref), artifact={
        "file": ARTIFACT, "sha256": hashlib.sha256(artifact.read_bytes()).hexdigest(),
        "bytes": artifact.stat().st_size})
    return ref


def link_version_folder(registry: ModelRegistry, outside: Path) -> ModelRef:
    """fraud-lgbm v2 a link to a folder outside whose sidecar says fraud-lgbm v2."""
    edit_sidecar(outside, version=2)
    (registry.root / "fraud-lgbm" / "2").symlink_to(outside, target_is_directory=True)
    return ModelRef("fraud-lgbm", 2)


def link_name_folder(registry: ModelRegistry, outside: Path) -> ModelRef:
    """A model name that is a link to a registry folder outside."""
    (registry.root / "fraud-lgbm").rename(registry.root.parent / "moved")
    (registry.root / "fraud-lgbm").symlink_to(outside.parent, target_is_directory=True)
    return ModelRef("fraud-lgbm", 1)


def link_sidecar(registry: ModelRegistry, outside: Path) -> ModelRef:
    """fraud-lgbm v1's artifact and sidecar replaced: the sidecar a link to one outside."""
    ref = registry.production()
    for name in (ARTIFACT, METADATA):
        (registry.path(ref) / name).unlink()
    shutil.copy(outside / ARTIFACT, registry.path(ref) / ARTIFACT)
    (registry.path(ref) / METADATA).symlink_to(outside / METADATA)
    return ref


@pytest.mark.parametrize(
    ("plant_link", "message"),
    [
        (link_artifact, "fraud-lgbm/1/model.joblib in the registry is a symbolic link"),
        (link_version_folder, "fraud-lgbm/2 in the registry is a symbolic link"),
        (link_name_folder, "fraud-lgbm in the registry is a symbolic link"),
        (link_sidecar, "fraud-lgbm/1/metadata.json in the registry is a symbolic link"),
    ],
)
def test_a_symbolic_link_anywhere_below_the_root_loads_nothing(
        registry, tmp_path, marker, plant_link, message) -> None:
    outside = plant(tmp_path / "outside", "fraud-lgbm", marker)
    ref = plant_link(registry, outside)
    point(registry, {"name": ref.name, "version": ref.version})
    with pytest.raises(UnsafeEntryError, match=f"{message}; the registry follows none"):
        load_production(registry)
    with pytest.raises(UnsafeEntryError):
        registry.promote(ref)
    assert not marker.exists()


def test_a_linked_pointer_is_refused(registry, tmp_path) -> None:
    elsewhere = tmp_path / "pointer.json"
    elsewhere.write_text(json.dumps({"name": "fraud-lgbm", "version": 1}))
    (registry.root / POINTER).unlink()
    (registry.root / POINTER).symlink_to(elsewhere)
    with pytest.raises(UnsafeEntryError, match=r"production\.json in the registry is a symbolic"):
        registry.production()


def test_linked_versions_are_not_listed_and_new_versions_skip_their_number(
        registry, tmp_path, marker) -> None:
    link_version_folder(registry, plant(tmp_path / "outside", "fraud-lgbm", marker))
    assert registry.versions() == [ModelRef("fraud-lgbm", 1)]
    original = load_production(registry)
    new = register_model(registry, original.pipeline, name="fraud-lgbm", threshold=0.5,
                         metrics={}, params={}, seed=1, data_sha256="x")
    assert new == ModelRef("fraud-lgbm", 3)
    assert load(registry, new).ref == new


def test_registering_into_a_linked_name_folder_is_refused(registry, tmp_path) -> None:
    (tmp_path / "outside").mkdir()
    (registry.root / "linked").symlink_to(tmp_path / "outside", target_is_directory=True)
    with pytest.raises(UnsafeEntryError, match="linked in the registry is a symbolic link"):
        registry.register(object(), name="linked", threshold=0.5, metrics={}, params={},
                          seed=1, data_sha256="x")
    assert list((tmp_path / "outside").iterdir()) == []


def test_a_fifo_as_artifact_is_refused_without_blocking(registry) -> None:
    ref = registry.production()
    (registry.path(ref) / ARTIFACT).unlink()
    os.mkfifo(registry.path(ref) / ARTIFACT)
    with pytest.raises(UnsafeEntryError, match=r"model\.joblib in the registry is not a regular"):
        load(registry, ref)


@pytest.mark.parametrize(
    ("copy_to", "message"),
    [
        (ModelRef("other", 1), "names 'fraud-lgbm' version 1, not other v1"),
        (ModelRef("fraud-lgbm", 5), "names 'fraud-lgbm' version 1, not fraud-lgbm v5"),
    ],
)
def test_a_sidecar_naming_another_model_is_refused(registry, copy_to, message) -> None:
    """A version folder copied under another name or number is not served as that one."""
    shutil.copytree(registry.path(registry.production()), registry.path(copy_to))
    point(registry, {"name": copy_to.name, "version": copy_to.version})
    with pytest.raises(RegistryError, match=message):
        load_production(registry)
    with pytest.raises(RegistryError, match=message):
        registry.promote(copy_to)


@pytest.mark.parametrize(
    ("artifact", "message"),
    [
        ({"file": ARTIFACT, "sha256": "abc", "bytes": 1}, "records the sha256 'abc'"),
        ({"file": ARTIFACT, "sha256": "0" * 64, "bytes": "1"}, "records the size '1'"),
        ("model.joblib", "names the artifact 'model.joblib'"),
    ],
)
def test_a_malformed_artifact_entry_is_refused(registry, artifact, message) -> None:
    ref = registry.production()
    edit_sidecar(registry.path(ref), artifact=artifact)
    with pytest.raises(RegistryError, match=message):
        load(registry, ref)


def test_a_pointer_that_is_not_an_object_is_refused(registry) -> None:
    (registry.root / POINTER).write_text("[1, 2]")
    with pytest.raises(RegistryError, match=r"production\.json is malformed, not a JSON"):
        registry.production()


# A writer that keeps replacing one file by another, as fast as it can, until told to stop.
SWAPPER = """
import os, sys, time
target, stop, mode = sys.argv[1:4]
blobs = [open(path, "rb").read() for path in sys.argv[4:]]
swaps = 0
open(stop + ".started", "w").close()
while not os.path.exists(stop):
    blob = blobs[swaps % 2]
    if mode == "rename":
        with open(target + ".swap", "wb") as handle:
            handle.write(blob)
        os.replace(target + ".swap", target)
    else:  # rewrite the same inode in place
        with open(target, "r+b") as handle:
            handle.truncate(0)
            handle.write(blob)
    swaps += 1
    time.sleep(0.0005)  # let each file be seen whole now and then, not only torn
print(swaps)
"""


@pytest.mark.parametrize("mode", ["rename", "in place"])
def test_under_a_racing_writer_only_the_verified_bytes_are_unpickled(
        registry, tmp_path, marker, mode) -> None:
    """Loads while another process swaps the artifact with a tripwire (same method as the
    figures measured before and after the one-read loader): every load returns the model
    whose checksum was verified, or is refused; the tripwire never runs."""
    ref = registry.production()
    target = registry.path(ref) / ARTIFACT
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.write_bytes(target.read_bytes())
    bad.write_bytes((plant(tmp_path / "outside", "x", marker) / ARTIFACT).read_bytes())
    stop = tmp_path / "stop"
    writer = subprocess.Popen([sys.executable, "-c", SWAPPER, str(target), str(stop), mode,
                               str(good), str(bad)], stdout=subprocess.PIPE, text=True)
    outcomes = {"verified": 0, "refused": 0}
    try:
        wait_for_file(tmp_path / "stop.started")
        for _ in range(300):
            try:  # the registry's own read and unpickle, without the compiled scorer's check
                model = registry.load_pipeline(ref)
            except IntegrityError:
                outcomes["refused"] += 1
                continue
            assert model.ref == ref and hasattr(model.pipeline, "predict_proba")
            outcomes["verified"] += 1
    finally:
        stop.touch()
        swaps = int(writer.communicate(timeout=60)[0])
    assert not marker.exists(), "the other file was unpickled"
    # The race was real (the other file was seen), and loads still succeed under it.
    assert swaps > 0 and outcomes["refused"] > 0, (swaps, outcomes)
    assert outcomes["verified"] > 0, (swaps, outcomes)


def wait_for_file(path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.01)
