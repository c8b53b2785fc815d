"""The agent's client over real replicas of the API (`tickml serve` under gunicorn).

Each replica listens on the same port of its own loopback address (127.0.0.1,
127.0.0.2, ...), as the replicas of a scaled Compose service do on their own container
addresses. A test cannot edit /etc/hosts, so a stand-in resolver answers a made-up
name with the replicas' addresses, in place of Docker's DNS answering the service's
name; the client looks it up as it would the real one. Each replica's own
`/metrics` counts the batches it answered.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil
import pytest
import requests

from tests.api_metrics import V2_INFER_ROUTE, answered
from tests.polling import wait_until
from tests.udf.local_http import port_free_on
from tickml import schema
from tickml.api import MULTIPROC_ENV
from tickml.config import Settings
from tickml.data.prepare import load_split
from tickml.stack.process import Service
from tickml.stack.programs import api_program, tickml_env
from tickml.udf.client import PredictClient, Score, score_rows

NAME = "api.replicas.test"
ADDRESSES = ("127.0.0.1", "127.0.0.2", "127.0.0.3")
BATCH = 50


@dataclass
class Replicas:
    """Real APIs on one port of several loopback addresses, started and killed at will."""

    port: int
    models_dir: Path
    directory: Path
    services: dict[str, Service] = field(default_factory=dict)

    def url(self, address: str) -> str:
        return f"http://{address}:{self.port}"

    def start(self, address: str) -> None:
        """`tickml serve` on `address` (one gevent worker), once it answers /ready."""
        config = Settings(root=self.directory / address, models_dir=self.models_dir,
                          api_bind=f"{address}:{self.port}", api_url=self.url(address),
                          api_workers=1)
        metrics = self.directory / address / "metrics"
        metrics.mkdir(parents=True, exist_ok=True)
        program = api_program(config)
        service = Service(f"api-{address}", program.command, self.directory / address,
                          ready=program.ready,
                          env={**tickml_env(config), MULTIPROC_ENV: str(metrics)})
        self.services[address] = service
        service.start().wait_ready(program.timeout)

    def running(self, *addresses: str) -> None:
        """Start each of `addresses` that is not running."""
        for address in addresses:
            service = self.services.get(address)
            if service is None or service.process.poll() is not None:
                self.start(address)

    def kill(self, address: str) -> None:
        """SIGKILL gunicorn's master and each of its workers, by pid, as a crash would."""
        service = self.services[address]
        master = psutil.Process(service.process.pid)
        for process in [master, *master.children(recursive=True)]:
            os.kill(process.pid, signal.SIGKILL)
        service.process.wait(timeout=10)

    def requests(self, address: str, route: str = "/predict") -> int:
        """POSTs to `route` that `address` answered 200, by its own /metrics."""
        return answered(self.url(address), route)

    def stop(self) -> None:
        for service in self.services.values():
            service.stop()


@pytest.fixture(scope="module")
def api_replicas(small_project: Settings, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[Replicas]:
    directory = tmp_path_factory.mktemp("replicas")
    shutil.copytree(small_project.models_dir, directory / "models")
    replicas = Replicas(port_free_on(*ADDRESSES), directory / "models", directory)
    try:
        yield replicas
    finally:
        replicas.stop()


@pytest.fixture(scope="module")
def rows(small_project: Settings) -> list[list[float]]:
    test = load_split(small_project, "test")
    sample = test.sample(400, random_state=3)
    return sample[list(schema.FEATURES)].astype(float).to_numpy().tolist()


class Dns:
    """A stand-in for Docker's DNS: the name of the service answers `addresses`."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = list(addresses)

    def __call__(self, host: str) -> list[str]:
        assert host == NAME
        return list(self.addresses)


def client_for(replicas: Replicas, dns: Dns, resolve_interval: float = 5.0,
               path: str = "") -> PredictClient:
    return PredictClient(f"http://{NAME}:{replicas.port}{path}", timeout=5.0, retry_for=10.0,
                         resolve=dns, resolve_interval=resolve_interval)


def batches(rows: list[list[float]], count: int) -> list[list[list[float]]]:
    return [rows[(i * BATCH) % len(rows):][:BATCH] for i in range(count)]


def test_both_replicas_behind_a_name_whose_dns_answer_stands_in_for_dockers_serve_batches(
        api_replicas: Replicas, rows: list[list[float]]) -> None:
    first, second = ADDRESSES[:2]
    api_replicas.running(first, second)
    before = {a: api_replicas.requests(a) for a in (first, second)}
    client = client_for(api_replicas, Dns(first, second))
    try:
        outcomes = [score_rows(client, batch) for batch in batches(rows, 20)]
    finally:
        client.close()
    assert all(isinstance(o, Score) for batch in outcomes for o in batch)
    served = {a: api_replicas.requests(a) - before[a] for a in (first, second)}
    assert served == {first: 10, second: 10}, "each replica answers every other batch"


def test_a_sigkilled_replica_behind_a_stand_in_dns_answer_loses_no_row(
        api_replicas: Replicas, rows: list[list[float]]) -> None:
    survivor, victim = ADDRESSES[:2]
    api_replicas.running(survivor, victim)
    client = client_for(api_replicas, Dns(survivor, victim))
    try:
        for batch in batches(rows, 4):  # a kept-alive connection to each
            score_rows(client, batch)
        before = api_replicas.requests(survivor)
        api_replicas.kill(victim)
        later = batches(rows, 20)
        outcomes = [score_rows(client, batch) for batch in later]
    finally:
        client.close()
    assert [len(batch) for batch in outcomes] == [len(batch) for batch in later]
    unscored = [o for batch in outcomes for o in batch if not isinstance(o, Score)]
    assert unscored == [], "a row of a later batch was not scored"
    assert api_replicas.requests(survivor) - before == 20, "the survivor scored every batch"


def test_a_replica_started_later_is_used_within_the_interval_the_stand_in_dns_is_read(
        api_replicas: Replicas, rows: list[list[float]]) -> None:
    first, newcomer = ADDRESSES[0], ADDRESSES[2]
    api_replicas.running(first, newcomer)
    served_before = api_replicas.requests(newcomer)
    interval = 1.0
    dns = Dns(first)  # the new replica runs, but the service's name does not answer it yet
    client = client_for(api_replicas, dns, resolve_interval=interval)

    def score() -> None:
        assert all(isinstance(o, Score) for o in score_rows(client, rows[:BATCH]))

    try:
        score()  # the name is looked up now
        time.sleep(interval / 2)
        score()
        assert api_replicas.requests(newcomer) == served_before
        dns.addresses = [first, newcomer]  # Docker's DNS answers the new replica too
        added = time.monotonic()

        def newcomer_served() -> bool:
            score()
            return api_replicas.requests(newcomer) > served_before

        assert wait_until(newcomer_served, timeout=10 * interval, interval=0.05)
        waited = time.monotonic() - added
    finally:
        client.close()
    print(f"the new replica got its first batch {waited:.2f}s after the DNS answer named it")
    assert waited <= interval + 0.5, f"the new replica got its first batch after {waited:.2f}s"


def test_the_v2_endpoint_scores_as_predict_does(api_replicas: Replicas,
                                                rows: list[list[float]]) -> None:
    address = ADDRESSES[0]
    api_replicas.running(address)
    model = requests.get(f"{api_replicas.url(address)}/model", timeout=10).json()
    v2_path = f"/v2/models/{model['name']}/infer"
    v2_before = api_replicas.requests(address, V2_INFER_ROUTE)
    dns = Dns(address)
    predict, v2 = client_for(api_replicas, dns), client_for(api_replicas, dns, path=v2_path)
    try:
        by_predict, by_v2 = predict.predict(rows), v2.predict(rows)
    finally:
        predict.close()
        v2.close()
    assert api_replicas.requests(address, V2_INFER_ROUTE) == v2_before + 1
    np.testing.assert_allclose(by_v2.probabilities, by_predict.probabilities, rtol=0,
                               atol=1e-12)
    assert by_v2.verdicts == by_predict.verdicts
    assert (by_v2.model, by_v2.version, by_v2.threshold) == \
        (by_predict.model, by_predict.version, by_predict.threshold)
