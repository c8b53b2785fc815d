"""`prepare_dataset` writes disjoint splits and never overwrites the real file."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tickml import schema
from tickml.config import Settings
from tickml.data.prepare import (
    ID,
    REAL_FILE,
    SYNTHETIC_FILE,
    load_split,
    prepare_dataset,
    split_transactions,
)
from tickml.data.synthetic import generate_transactions
from tickml.data.transactions import DatasetError, write_transactions


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return generate_transactions(20_000, seed=1)


def test_time_split_trains_on_the_past_and_tests_on_the_future(frame: pd.DataFrame) -> None:
    train, test = split_transactions(frame, "time", 0.2)
    assert len(train) + len(test) == len(frame)
    assert len(test) == 4_000
    assert train[schema.TIME].max() <= test[schema.TIME].min()
    assert set(train[ID]).isdisjoint(test[ID])


def test_stratified_split_keeps_the_fraud_share(frame: pd.DataFrame) -> None:
    train, test = split_transactions(frame, "stratified", 0.25, seed=0)
    assert set(train[ID]).isdisjoint(test[ID])
    assert len(set(train[ID]) | set(test[ID])) == len(frame)
    rate = frame[schema.LABEL].mean()
    assert abs(test[schema.LABEL].mean() - rate) < 0.2 * rate


def test_unknown_split_is_refused(frame: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="unknown split 'random'"):
        split_transactions(frame, "random")  # type: ignore[arg-type]


def test_prepare_generates_a_marked_stand_in_and_disjoint_splits(tmp_settings: Settings) -> None:
    prepared = prepare_dataset(tmp_settings, rows=5_000, seed=2)
    assert prepared.source == "synthetic"
    sidecar = json.loads((tmp_settings.data_dir / "creditcard-synthetic.json").read_text())
    assert sidecar["synthetic"] is True
    assert (tmp_settings.data_dir / SYNTHETIC_FILE).is_file()
    train, test = load_split(tmp_settings, "train"), load_split(tmp_settings, "test")
    assert len(train) + len(test) == 5_000
    assert set(train[ID]).isdisjoint(test[ID])
    merged = train.merge(test, on=list(schema.COLUMNS))
    assert merged.empty, "a transaction appears in both splits"


def test_real_file_wins_and_is_not_overwritten(tmp_settings: Settings) -> None:
    real = tmp_settings.data_dir / REAL_FILE
    write_transactions(generate_transactions(1_000, seed=9), real)
    before = real.read_bytes()
    prepared = prepare_dataset(tmp_settings, rows=5_000)
    assert prepared.source == "real"
    assert prepared.train_rows + prepared.test_rows == 1_000
    assert real.read_bytes() == before
    assert not (tmp_settings.data_dir / SYNTHETIC_FILE).exists()


def test_a_broken_real_file_stops_preparation_and_stays_untouched(tmp_settings: Settings) -> None:
    real = tmp_settings.data_dir / REAL_FILE
    write_transactions(generate_transactions(100, seed=9), real)
    lines = real.read_text().splitlines()
    lines[5] = lines[5].replace(',"0"', ',"7"').replace(',"1"', ',"7"')
    real.write_text("\n".join(lines) + "\n")
    before = real.read_bytes()
    with pytest.raises(DatasetError, match="line 6, column 'Class': label 7"):
        prepare_dataset(tmp_settings)
    assert real.read_bytes() == before
    assert not tmp_settings.processed_dir.exists()


def test_missing_splits_say_how_to_create_them(tmp_settings: Settings) -> None:
    with pytest.raises(DatasetError, match="run `tickml data prepare` first"):
        load_split(tmp_settings, "test")
