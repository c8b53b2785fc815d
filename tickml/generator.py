"""The mock transaction publisher: test-split rows stamped with the current time.

Each point goes to measurement `transactions` with the schema's features as float
fields, the ground-truth `Class` as an integer field (so dashboards can compare
verdicts with the truth) and a unique `transaction_id`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tickml import schema
from tickml.influx import to_line

MEASUREMENT = "transactions"


def transaction_lines(
    rows: pd.DataFrame,
    start_ns: int,
    tags: dict[str, str] | None = None,
    spacing_ns: int = 1,
) -> list[str]:
    """Line-protocol points for `rows`, the i-th stamped `start_ns + i * spacing_ns`.

    Distinct timestamps matter: InfluxDB keys a point by series and time, so two
    transactions at the same nanosecond would overwrite each other.
    """
    features = rows.loc[:, list(schema.FEATURES)].to_numpy(dtype=np.float64)
    labels = rows[schema.LABEL].to_numpy(dtype=np.int64)
    source_ids = rows["id"].to_numpy() if "id" in rows else np.arange(len(rows))
    lines = []
    for i in range(len(rows)):
        time_ns = start_ns + i * spacing_ns
        fields: dict[str, float | int | str] = dict(
            zip(schema.FEATURES, features[i].tolist(), strict=True))
        fields[schema.LABEL] = int(labels[i])
        fields[schema.TRANSACTION_ID] = f"tx-{int(source_ids[i])}-{time_ns}"
        lines.append(to_line(MEASUREMENT, fields, time_ns, tags))
    return lines
