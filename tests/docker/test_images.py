"""The Docker tests leave no untagged builds of tickml's images behind, and touch no others."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .engine import TICKML_IMAGE_LABEL, Engine, docker, remove_dangling_tickml_images

LABELLED = "tickml-test/labelled:latest"
FOREIGN = "tickml-test/foreign:latest"


def build(tag: str, directory: Path, *labels: str) -> str:
    """Build an empty image with `labels` as `tag`; its id."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = ["FROM scratch", *(f"LABEL {label}" for label in labels)]
    (directory / "Dockerfile").write_text("\n".join(lines) + "\n")
    docker("build", "--quiet", "-t", tag, str(directory))
    return docker("image", "inspect", "--format", "{{.Id}}", tag).stdout.strip()


def exists(image_id: str) -> bool:
    return docker("image", "inspect", image_id, check=False).returncode == 0


@pytest.fixture
def images(docker_engine: Engine) -> Iterator[list[str]]:
    """Ids to remove after the test, whatever it left."""
    made: list[str] = []
    yield made
    for image in made:
        docker("image", "rm", "--force", image, check=False)


def test_an_untagged_tickml_build_is_removed_and_nothing_else(
        images: list[str], tmp_path: Path) -> None:
    old_tickml = build(LABELLED, tmp_path / "a", TICKML_IMAGE_LABEL, "build=1")
    new_tickml = build(LABELLED, tmp_path / "b", TICKML_IMAGE_LABEL, "build=2")
    old_foreign = build(FOREIGN, tmp_path / "c", "build=1")
    new_foreign = build(FOREIGN, tmp_path / "d", "build=2")
    images.extend([old_tickml, new_tickml, old_foreign, new_foreign])
    assert len(set(images)) == 4

    remove_dangling_tickml_images()

    assert not exists(old_tickml), "tickml's untagged build is still there"
    assert exists(new_tickml), "the tagged tickml image was removed"
    assert exists(old_foreign), "someone else's untagged image was removed"
    assert exists(new_foreign)
