"""A real-format CSV (quoted header, quoted labels) is read; bad files get clear errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tickml import schema
from tickml.data.transactions import DatasetError, read_transactions

HEADER = ",".join(f'"{c}"' for c in schema.COLUMNS)


def kaggle_row(time: str = "0", amount: str = "149.62", label: str = '"0"', v14: str = "-0.31"):
    components = ["0.1"] * 28
    components[13] = v14
    return ",".join([time, *components, amount, label])


def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_real_format_file_is_read_with_numeric_columns(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "creditcard.csv", HEADER,
                     [kaggle_row(), kaggle_row("1", "2.69", '"1"', "-7.5")])
    frame = read_transactions(path)
    assert list(frame.columns) == list(schema.COLUMNS)
    assert frame[schema.LABEL].tolist() == [0, 1]
    assert frame["V14"].tolist() == [-0.31, -7.5]
    assert frame[schema.AMOUNT].dtype.kind == "f"


@pytest.mark.parametrize(
    ("header", "rows", "message"),
    [
        (HEADER.replace('"V14",', ""), [kaggle_row()], "missing columns ['V14']"),
        (HEADER + ',"extra"', [kaggle_row() + ",1"], "unexpected columns ['extra']"),
        (HEADER.replace('"V1","V2"', '"V2","V1"'), [kaggle_row()], "columns out of order"),
        (HEADER, [kaggle_row(), kaggle_row(amount="abc")],
         "line 3, column 'Amount': 'abc', not a finite number"),
        (HEADER, [kaggle_row(v14="")], "line 2, column 'V14': an empty value"),
        (HEADER, [kaggle_row(v14="inf")], "line 2, column 'V14': 'inf', not a finite number"),
        (HEADER, [kaggle_row(), kaggle_row(), kaggle_row(label='"2"')],
         "line 4, column 'Class': label 2 is not 0 or 1"),
        (HEADER, [kaggle_row(label='"0.5"')], "line 2, column 'Class': label 0.5 is not 0 or 1"),
    ],
    ids=["missing-column", "extra-column", "wrong-order", "non-numeric", "empty",
         "infinite", "label-2", "label-fraction"],
)
def test_bad_file_gets_an_error_naming_problem_and_line(
    tmp_path: Path, header: str, rows: list[str], message: str
) -> None:
    path = write_csv(tmp_path / "creditcard.csv", header, rows)
    with pytest.raises(DatasetError, match=re.escape(message)):
        read_transactions(path)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such file"):
        read_transactions(tmp_path / "creditcard.csv")
