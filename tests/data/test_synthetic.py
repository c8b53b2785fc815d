"""The synthetic stand-in has the schema and the published properties of the real file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tickml import schema
from tickml.data.synthetic import generate_transactions


@pytest.fixture(scope="module")
def full() -> pd.DataFrame:
    return generate_transactions(seed=42)


def test_full_size_has_real_rows_columns_and_fraud_share(full: pd.DataFrame) -> None:
    assert list(full.columns) == list(schema.COLUMNS)
    assert len(full) == schema.REAL_ROWS
    assert full[schema.LABEL].sum() == schema.REAL_FRAUDS  # 0.172 %
    assert set(full[schema.LABEL].unique()) == {0, 1}
    assert not full.isna().any().any()


def test_amount_is_heavy_tailed_like_the_real_file(full: pd.DataFrame) -> None:
    amount = full[schema.AMOUNT]
    assert 19 <= amount.median() <= 25  # real: 22.0
    assert 80 <= amount.mean() <= 96  # real: 88.3
    assert amount.max() > 5_000  # a long tail into the thousands
    assert (amount >= 0).all()


def test_time_spans_two_days_with_quiet_nights(full: pd.DataFrame) -> None:
    time = full[schema.TIME]
    assert time.is_monotonic_increasing
    assert time.min() >= 0 and 170_000 <= time.max() <= 172_792
    hour = (time // 3600) % 24
    per_hour = hour.value_counts()
    assert per_hour[range(2, 6)].mean() < per_hour[range(12, 18)].mean() / 4


def test_components_are_centred_with_decreasing_variance(full: pd.DataFrame) -> None:
    components = full[list(schema.PCA_COMPONENTS)]
    assert np.allclose(components.mean(), 0, atol=1e-9)
    std = components.std().to_numpy()
    assert std[0] > std[13] > std[27]
    assert np.all(np.diff(std[[0, 4, 9, 14, 19, 24, 27]]) < 0)


def test_frauds_are_shifted_on_the_known_components(full: pd.DataFrame) -> None:
    means = full.groupby(schema.LABEL)[["V14", "V12", "V10", "V17", "V4", "V11"]].mean()
    assert (means.loc[1, ["V14", "V12", "V10", "V17"]] < -2).all()
    assert (means.loc[1, ["V4", "V11"]] > 1.5).all()
    assert means.loc[0].abs().max() < 0.05


def test_same_seed_same_rows_other_seed_other_rows() -> None:
    first = generate_transactions(5_000, seed=3)
    pd.testing.assert_frame_equal(first, generate_transactions(5_000, seed=3))
    assert not first.equals(generate_transactions(5_000, seed=4))


@pytest.mark.parametrize(("rows", "rate"), [(1, 0.01), (100, 0.0), (100, 1.0)])
def test_impossible_arguments_are_refused(rows: int, rate: float) -> None:
    with pytest.raises(ValueError, match="must"):
        generate_transactions(rows, fraud_rate=rate)
