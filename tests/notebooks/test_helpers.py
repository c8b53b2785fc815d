"""The notebooks' helpers: sample mode, display-safe paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tickml import schema
from tickml.data.synthetic import generate_transactions
from tickml.notebook import (
    SAMPLE_ENV,
    Mode,
    display_path,
    limit_rows,
    running_precision_recall,
    sample_mode,
    separation_table,
)


@pytest.mark.parametrize(("value", "expected"), [
    (None, False), ("", False), ("0", False), ("false", False), ("No", False),
    ("1", True), ("true", True), ("YES", True), (" on ", True),
])
def test_sample_mode_reads_the_variable(value, expected) -> None:
    environ = {} if value is None else {SAMPLE_ENV: value}
    assert sample_mode(environ) is expected
    assert Mode.from_env(environ).name == ("sample" if expected else "full")


def test_sample_mode_refuses_other_words() -> None:
    with pytest.raises(ValueError, match=SAMPLE_ENV):
        sample_mode({SAMPLE_ENV: "maybe"})


def test_mode_picks_the_value_of_its_mode() -> None:
    assert Mode(sample=False).pick(40, 5) == 40
    assert Mode(sample=True).pick(40, 5) == 5


def test_limit_rows_keeps_the_fraud_share_and_the_order() -> None:
    frame = generate_transactions(20_000, seed=2, fraud_rate=0.01)
    small = limit_rows(frame, 5_000, seed=1)
    assert len(small) == pytest.approx(5_000, abs=2)
    assert small[schema.LABEL].mean() == pytest.approx(frame[schema.LABEL].mean(), rel=0.05)
    assert small[schema.TIME].is_monotonic_increasing
    assert not small.duplicated().any()
    assert limit_rows(frame, 5_000, seed=1).equals(small)


def test_limit_rows_and_full_mode_leave_small_frames_alone() -> None:
    frame = generate_transactions(500, seed=2)
    assert limit_rows(frame, 1_000) is frame
    assert Mode(sample=False).limit(frame, 10) is frame
    assert len(Mode(sample=True).limit(frame, 100)) <= 101


def test_limit_rows_refuses_a_silly_limit() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        limit_rows(pd.DataFrame({schema.LABEL: [0, 1]}), 1)


@pytest.mark.parametrize(("path", "expected"), [
    ("/srv/project/models/fraud/1/pr.png", "models/fraud/1/pr.png"),
    ("/srv/project", "."),
    ("/elsewhere/file.csv", "…/file.csv"),
])
def test_display_path_never_shows_the_machine_folders(path, expected) -> None:
    assert display_path(Path(path), Path("/srv/project")) == expected


def test_separation_table_ranks_the_informative_feature_first() -> None:
    frame = pd.DataFrame({schema.LABEL: [0, 0, 0, 1, 1], "noise": [1, 5, 3, 2, 4],
                          "signal": [5, 6, 7, -3, -4]})
    table = separation_table(frame, ["noise", "signal"])
    assert table["feature"].tolist() == ["signal", "noise"]
    assert table.loc[0, "separation"] == 1.0
    assert table.loc[0, "direction"] == "lower in frauds"
    assert table.loc[0, "median_fraud"] == -3.5


def test_separation_table_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="both classes"):
        separation_table(pd.DataFrame({schema.LABEL: [0, 0], "x": [1, 2]}), ["x"])


def test_running_precision_recall() -> None:
    table = running_precision_recall([0, 1, 1, 0, 1], [0, 1, 0, 1, 1])
    assert table["seen"].tolist() == [1, 2, 3, 4, 5]
    assert table["precision"].tolist()[1:] == [1.0, 1.0, 0.5, 2 / 3]
    assert np.isnan(table["precision"].iloc[0])
    assert np.isnan(table["recall"].iloc[0])
    assert table["recall"].tolist()[1:] == [1.0, 0.5, 0.5, 2 / 3]


def test_running_precision_recall_needs_aligned_inputs() -> None:
    with pytest.raises(ValueError, match="verdicts"):
        running_precision_recall([0, 1], [1])
