"""Fixtures for the Docker end-to-end tests: the engine, the stand-in images, the stack.

Where no engine answers and none can be started, these tests fail under CI=true
(CI installs and starts everything itself) and are skipped with the reason elsewhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import NoReturn

import pytest

from tickml.config import Settings
from tickml.data.prepare import prepare_dataset

from .engine import (
    Engine,
    EngineUnavailable,
    build_standins,
    compose_version,
    dangling_tickml_app_images,
    ensure_engine,
    remove_dangling_tickml_images,
)
from .stack import ComposeStack, copy_repository, stack_environment

#: Rows of the stack's dataset: small enough to train in seconds inside a container.
DATASET_ROWS = 40_000
#: A uid and gid that exist neither on the host nor in the image, as a laptop user's would not.
FOREIGN_ID = 4321


def unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"the Docker end-to-end tests must run in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def docker_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    try:
        engine = ensure_engine(tmp_path_factory.mktemp("dockerd") / "dockerd.log")
    except EngineUnavailable as exc:
        unavailable(str(exc))
    try:
        compose_version()
    except EngineUnavailable as exc:
        engine.stop()
        unavailable(str(exc))
    try:
        yield engine
        remove_dangling_tickml_images()
    finally:
        engine.stop()


@pytest.fixture(scope="session")
def standin_images(docker_engine: Engine) -> dict[str, str]:
    return build_standins()


def host_user(directory) -> tuple[int, int]:
    """As root, hand the mounted folders to a foreign uid; otherwise keep one's own."""
    if os.geteuid() != 0:
        return os.getuid(), os.getgid()
    for name in ("data", "models", "notebooks"):
        for path in [directory / name, *(directory / name).rglob("*")]:
            os.chown(path, FOREIGN_ID, FOREIGN_ID)
    return FOREIGN_ID, FOREIGN_ID


@pytest.fixture(scope="module")
def stack(standin_images: dict[str, str], tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[ComposeStack]:
    """./up.sh --without-dashboards in a fresh copy, on free ports, with stand-in images."""
    directory = copy_repository(tmp_path_factory.mktemp("compose") / "tickml")
    prepare_dataset(Settings(root=directory), rows=DATASET_ROWS, seed=5)
    uid, gid = host_user(directory)
    compose_stack = ComposeStack(directory, stack_environment(standin_images, uid, gid,
                                                              generator_rate=20),
                                 dangling_before=dangling_tickml_app_images())
    try:
        up = compose_stack.script("up.sh", "--without-dashboards", timeout=1800)
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        compose_stack.up_output = up.stdout + up.stderr
        yield compose_stack
    finally:
        compose_stack.remove()
