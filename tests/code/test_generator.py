"""The generator: unique timestamps, fraud share, and a bounded buffer through outages."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from tickml import schema
from tickml.data.synthetic import generate_transactions
from tickml.generator import Publisher, PublishOptions, TransactionSampler, transaction_lines
from tickml.influx import InfluxClient, to_line
from tickml.stack.programs import free_port
from tickml.stack.services import start_influxd
from tickml.stack.users import Login


@pytest.fixture(scope="module")
def rows():
    frame = generate_transactions(20_000, seed=3)
    frame.insert(0, "id", np.arange(len(frame)))
    return frame


def test_lines_carry_features_label_and_unique_ids_and_times(rows) -> None:
    lines = transaction_lines(rows.head(3), 1_000, tags={"source": "test"}, spacing_ns=5)
    assert [line.rsplit(" ", 1)[1] for line in lines] == ["1000", "1005", "1010"]
    assert lines[0].startswith("transactions,source=test ")
    assert "Class=0i" in lines[0] or "Class=1i" in lines[0]
    assert 'transaction_id="tx-0-1000"' in lines[0]
    assert all(f"{name}=" in lines[0] for name in schema.FEATURES)


def test_fast_lines_are_exactly_what_the_general_formatter_writes(rows) -> None:
    sample = rows.head(50)
    tags = {"source": "a b,c", "run": "x=y"}
    expected = []
    for i, (_, row) in enumerate(sample.iterrows()):
        fields = {name: float(row[name]) for name in schema.FEATURES}
        fields[schema.LABEL] = int(row[schema.LABEL])
        fields[schema.TRANSACTION_ID] = f"tx-{int(row['id'])}-{7 + i}"
        expected.append(to_line(schema.TRANSACTIONS, fields, 7 + i, tags))
    assert transaction_lines(sample, 7, tags=tags) == expected


def test_a_non_finite_feature_is_refused_not_written(rows) -> None:
    broken = rows.head(3).copy()
    broken.loc[broken.index[1], "V4"] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        transaction_lines(broken, 0)


def test_fraud_share_is_raised_when_asked(rows) -> None:
    drawn = TransactionSampler(rows, fraud_share=0.25, seed=1).draw(4_000)
    assert 0.22 < drawn[schema.LABEL].mean() < 0.28
    natural = TransactionSampler(rows, fraud_share=None, seed=1).draw(4_000)
    assert natural[schema.LABEL].mean() < 0.02


def test_unreachable_influxdb_fills_a_bounded_buffer_and_counts_drops(rows, caplog) -> None:
    influx = InfluxClient(f"http://127.0.0.1:{free_port()}", "fraud", timeout=1)
    options = PublishOptions(rate=10_000, count=50, buffer_limit=10, flush_interval=0.01)
    publisher = Publisher(influx, rows, options)
    with caplog.at_level(logging.WARNING, logger="tickml.generator"):
        publisher._generate(50)
        publisher._try_flush()
    influx.close()
    assert publisher.report.generated == 50
    assert publisher.report.dropped == 40
    assert len(publisher.buffer) == 10
    assert "dropped the 40 oldest points" in caplog.text
    assert "keeping 10 points" in caplog.text


@pytest.mark.parametrize("rate", [0, -1])
def test_a_rate_must_be_positive(rows, rate: float) -> None:
    with pytest.raises(ValueError, match="rate must be positive"):
        Publisher(InfluxClient("http://127.0.0.1:1", "fraud"), rows, PublishOptions(rate=rate))


@pytest.mark.integration
def test_the_generator_creates_its_database_on_a_fresh_influxdb(rows, tmp_path) -> None:
    admin = Login("admin", "admin-secret")  # only an admin may create a database
    influxd, config = start_influxd(tmp_path, admin)
    try:
        influx = InfluxClient(config.url, "fraud", username=admin.user, password=admin.password)
        assert "fraud" not in {row["name"] for row in influx.records("SHOW DATABASES")}
        options = PublishOptions(rate=1_000, count=30, flush_interval=0.01)
        report = Publisher(influx, rows, options).run()
        assert (report.generated, report.written, report.dropped) == (30, 30, 0)
        assert influx.count("transactions", "Amount") == 30
        influx.close()
    finally:
        influxd.stop()
