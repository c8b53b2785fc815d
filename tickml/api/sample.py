"""The built-in sample transaction that `GET /test` scores and the docs show.

Shipped with the package rather than read from `data/`, so `/test` answers wherever
the API runs, with or without a dataset.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tickml import schema

NAME = "kaggle-first-fraud"
DESCRIPTION = ("The first fraud in the Kaggle creditcard.csv file (Time 406, Amount 0.00), "
               "its values rounded to two decimals.")

_VALUES = (406, -2.31, 1.95, -1.61, 4.0, -0.52, -1.43, -2.54, 1.39, -2.77, -2.77, 3.2, -2.9,
           -0.6, -4.29, 0.39, -1.14, -2.83, -0.02, 0.42, 0.13, 0.52, -0.04, -0.47, 0.32, 0.04,
           0.18, 0.26, -0.14, 0.0)
#: The sample's features by name, in schema order.
FEATURES: dict[str, float] = dict(zip(schema.FEATURES, map(float, _VALUES), strict=True))


def matrix() -> np.ndarray:
    """The sample as a one-row float64 matrix in schema order."""
    return np.array([list(FEATURES.values())], dtype=np.float64)


def describe() -> dict[str, Any]:
    """Which sample this is: its name, where it comes from, and its features."""
    return {"name": NAME, "description": DESCRIPTION, "features": FEATURES}
