"""Reading, validating and writing transaction files in the Kaggle format.

The Kaggle download quotes its header and its `Class` values
(`"Time","V1",…,"Class"` then `0,-1.35…,149.62,"0"`). tickml reads that file as it
is and writes its synthetic stand-in the same way, so one reader serves both.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from tickml import schema

HEADER_LINE = 1  # data row i (0-based) sits on line i + 2 of the file


class DatasetError(ValueError):
    """A transaction file that does not match the schema; the message says where."""


def read_transactions(path: Path) -> pd.DataFrame:
    """Read and validate a transaction CSV in the Kaggle format.

    Raises:
        DatasetError: the file is missing, its columns differ from `schema.COLUMNS`,
            a value is empty or not a number, or a label is not 0 or 1. The message
            names the problem, the column and the line.
    """
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, engine="c")
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: not a readable CSV file ({exc})") from None
    check_columns(list(frame.columns), path)
    return _to_numeric(frame, path)


def check_columns(columns: list[str], path: Path) -> None:
    """Fail unless `columns` are exactly the schema's columns, in order."""
    if columns == list(schema.COLUMNS):
        return
    missing = [c for c in schema.COLUMNS if c not in columns]
    unexpected = [c for c in columns if c not in schema.COLUMNS]
    problems = []
    if missing:
        problems.append(f"missing columns {missing}")
    if unexpected:
        problems.append(f"unexpected columns {unexpected}")
    if not problems:
        problems.append(f"columns out of order: expected {list(schema.COLUMNS)}, got {columns}")
    raise DatasetError(f"{path}: wrong header: " + "; ".join(problems))


def _to_numeric(raw: pd.DataFrame, path: Path) -> pd.DataFrame:
    frame = pd.DataFrame(index=raw.index)
    for column in schema.COLUMNS:
        values = pd.to_numeric(raw[column], errors="coerce")
        bad = values.isna() | ~np.isfinite(values)
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            text = raw[column].iat[row]
            what = "an empty value" if text.strip() == "" else f"{text!r}, not a finite number"
            raise DatasetError(
                f"{path}: line {row + HEADER_LINE + 1}, column {column!r}: {what} "
                f"({int(bad.sum())} such rows)"
            )
        frame[column] = values.astype(np.float64)
    _check_labels(frame[schema.LABEL], path)
    frame[schema.LABEL] = frame[schema.LABEL].astype(np.int64)
    return frame


def _check_labels(labels: pd.Series, path: Path) -> None:
    bad = ~labels.isin(schema.LABEL_VALUES)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DatasetError(
            f"{path}: line {row + HEADER_LINE + 1}, column {schema.LABEL!r}: label "
            f"{labels.iat[row]:g} is not 0 or 1 ({int(bad.sum())} such rows)"
        )


def write_transactions(frame: pd.DataFrame, path: Path) -> None:
    """Write `frame` as a Kaggle-format CSV: quoted header, quoted `Class` values."""
    out = frame.loc[:, list(schema.COLUMNS)].copy()
    features = list(schema.FEATURES)
    # Ten significant decimals, like the real file; floats print in their shortest form.
    out[features] = out[features].astype(np.float64).round(10)
    out[schema.LABEL] = out[schema.LABEL].astype(np.int64).astype(str)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    # QUOTE_NONNUMERIC quotes the header and the string labels, and no number.
    out.to_csv(tmp, index=False, quoting=csv.QUOTE_NONNUMERIC)
    tmp.replace(path)
