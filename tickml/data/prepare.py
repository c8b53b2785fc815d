"""`tickml data prepare`: find or generate the dataset, split it, write the splits."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from tickml import schema
from tickml.config import Settings
from tickml.data.synthetic import generate_transactions
from tickml.data.transactions import DatasetError, read_transactions, write_transactions
from tickml.files import sha256_of, write_json_atomically

REAL_FILE = "creditcard.csv"
SYNTHETIC_FILE = "creditcard-synthetic.csv"
SIDECAR_SUFFIX = ".json"
ID = "id"  # row number in the source file, kept so splits can be traced and compared
SplitKind = Literal["time", "stratified"]


@dataclass(frozen=True)
class PreparedData:
    """What `prepare_dataset` produced; also written as `processed/manifest.json`."""

    source: str  # "real" or "synthetic"
    source_file: str
    split: str
    test_size: float
    seed: int
    train_rows: int
    test_rows: int
    train_frauds: int
    test_frauds: int
    train_sha256: str


def raw_dataset_path(settings: Settings) -> tuple[Path, bool]:
    """The dataset file to use and whether it is synthetic (the real file wins)."""
    real = settings.data_dir / REAL_FILE
    if real.is_file():
        return real, False
    return settings.data_dir / SYNTHETIC_FILE, True


def load_raw_dataset(settings: Settings, rows: int, seed: int) -> tuple[pd.DataFrame, Path, bool]:
    """Read the real file, or the synthetic one (generating it unless it matches)."""
    path, synthetic = raw_dataset_path(settings)
    if not synthetic:
        return read_transactions(path), path, False
    wanted = {"synthetic": True, "rows": rows, "seed": seed, "generator": "tickml"}
    if path.is_file() and _read_sidecar(path) == wanted:
        return read_transactions(path), path, True
    frame = generate_transactions(rows, seed=seed)
    write_transactions(frame, path)
    _sidecar(path).write_text(json.dumps(wanted, indent=2) + "\n")
    return frame, path, True


def _sidecar(path: Path) -> Path:
    return path.with_suffix(SIDECAR_SUFFIX)


def _read_sidecar(path: Path) -> dict | None:
    try:
        return json.loads(_sidecar(path).read_text())
    except (OSError, ValueError):
        return None


def split_transactions(
    frame: pd.DataFrame, kind: SplitKind = "time", test_size: float = 0.2, seed: int = 42
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split into train and test without sharing a row.

    `time` trains on the earlier period and tests on the later one, the honest
    protocol for fraud (a model only ever scores transactions after its training
    data). `stratified` draws a random split that keeps the fraud share in both.
    """
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must lie strictly between 0 and 1, got {test_size}")
    frame = frame.copy()
    if ID not in frame:
        frame.insert(0, ID, np.arange(len(frame), dtype=np.int64))
    if kind == "time":
        ordered = frame.sort_values([schema.TIME, ID], kind="stable")
        cut = len(ordered) - max(1, round(len(ordered) * test_size))
        return ordered.iloc[:cut].reset_index(drop=True), ordered.iloc[cut:].reset_index(drop=True)
    if kind == "stratified":
        train, test = train_test_split(
            frame, test_size=test_size, stratify=frame[schema.LABEL], random_state=seed
        )
        return _by_id(train), _by_id(test)
    raise ValueError(f"unknown split {kind!r}: use 'time' or 'stratified'")


def _by_id(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(ID).reset_index(drop=True)


def prepare_dataset(
    settings: Settings,
    *,
    rows: int = schema.REAL_ROWS,
    seed: int = 42,
    split: SplitKind = "time",
    test_size: float = 0.2,
) -> PreparedData:
    """Load or generate the dataset, split it and write `data/processed/`."""
    frame, path, synthetic = load_raw_dataset(settings, rows, seed)
    train, test = split_transactions(frame, split, test_size, seed)
    out = settings.processed_dir
    out.mkdir(parents=True, exist_ok=True)
    _write_parquet(train, out / "train.parquet")
    _write_parquet(test, out / "test.parquet")
    prepared = PreparedData(
        source="synthetic" if synthetic else "real",
        source_file=path.name,
        split=split,
        test_size=test_size,
        seed=seed,
        train_rows=len(train),
        test_rows=len(test),
        train_frauds=int(train[schema.LABEL].sum()),
        test_frauds=int(test[schema.LABEL].sum()),
        train_sha256=sha256_of(out / "train.parquet"),
    )
    write_json_atomically(out / "manifest.json", asdict(prepared))
    return prepared


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)


def load_split(settings: Settings, name: Literal["train", "test"]) -> pd.DataFrame:
    """Read a prepared split; a clear error says how to create it when missing."""
    path = settings.processed_dir / f"{name}.parquet"
    if not path.is_file():
        raise DatasetError(f"{path} does not exist: run `tickml data prepare` first")
    return pd.read_parquet(path)


def load_manifest(settings: Settings) -> PreparedData:
    """The manifest `prepare_dataset` wrote."""
    path = settings.processed_dir / "manifest.json"
    if not path.is_file():
        raise DatasetError(f"{path} does not exist: run `tickml data prepare` first")
    return PreparedData(**json.loads(path.read_text()))
