"""A realistic synthetic stand-in for the Kaggle credit-card-fraud file.

The real data cannot be downloaded everywhere, so tickml generates rows with its
schema and its published properties: two days of transactions with a day/night
rhythm, centred PCA-like components whose variance decreases with the index,
a heavy-tailed `Amount` (median about 22, mean about 88), and 0.172 % frauds that
differ mainly on V14, V12, V10, V17, V4 and V11. Frauds are drawn with a varying
severity, and a few legitimate rows look suspicious, so a good model scores an
average precision close to what is published for the real data, not a perfect 1.0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tickml import schema

SECONDS = 172_792  # the real file spans two days, from 0 to 172,792 seconds
#: Standard deviations of V1…V28 in the real data (PCA order: decreasing variance).
COMPONENT_STD = np.array([
    1.96, 1.65, 1.52, 1.42, 1.38, 1.33, 1.24, 1.19, 1.10, 1.09, 1.02, 1.00, 1.00, 0.96,
    0.92, 0.88, 0.85, 0.84, 0.81, 0.77, 0.73, 0.73, 0.62, 0.61, 0.52, 0.48, 0.40, 0.33,
])
#: Mean offset of a fully typical fraud, per component (V1…V28), close to the real file.
FRAUD_SHIFT = dict(
    V14=-6.9, V12=-6.2, V10=-5.6, V17=-6.6, V4=4.5, V11=3.8,
    V3=-7.0, V16=-4.1, V7=-5.5, V2=3.6, V1=-4.7, V9=-2.5, V18=-2.2, V5=-3.1,
)
LEGIT_AMOUNT = dict(median=22.0, sigma=1.67, maximum=25_691.16)
FRAUD_AMOUNT = dict(median=9.25, sigma=2.0, maximum=2_125.87)
ZERO_AMOUNT_SHARE = 0.0064
#: Share of frauds that look almost legitimate, and of legit rows that look like fraud.
CAMOUFLAGED_FRAUD_SHARE = 0.08
SUSPICIOUS_LEGIT_SHARE = 0.0012


def generate_transactions(
    rows: int = schema.REAL_ROWS,
    *,
    seed: int = 42,
    fraud_rate: float = schema.REAL_FRAUD_RATE,
) -> pd.DataFrame:
    """Generate `rows` synthetic transactions in the schema's column order.

    Args:
        rows: number of transactions (the real file has 284,807).
        seed: random seed; the same seed always gives the same frame.
        fraud_rate: share of rows with `Class` 1.

    Returns:
        A frame with columns `schema.COLUMNS`, sorted by `Time` like the real file.
    """
    if rows < 2:
        raise ValueError(f"rows must be at least 2, got {rows}")
    if not 0 < fraud_rate < 1:
        raise ValueError(f"fraud_rate must lie strictly between 0 and 1, got {fraud_rate}")
    rng = np.random.default_rng(seed)
    label = _labels(rng, rows, fraud_rate)
    fraud = label == 1
    amount_latent = rng.standard_normal(rows)
    frame = pd.DataFrame({schema.TIME: _times(rng, fraud)})
    components = _components(rng, fraud, amount_latent)
    for i, name in enumerate(schema.PCA_COMPONENTS):
        frame[name] = components[:, i]
    frame[schema.AMOUNT] = _amounts(rng, fraud, amount_latent)
    frame[schema.LABEL] = label
    return frame.sort_values(schema.TIME, kind="stable").reset_index(drop=True)


def _labels(rng: np.random.Generator, rows: int, fraud_rate: float) -> np.ndarray:
    frauds = max(1, round(rows * fraud_rate))
    label = np.zeros(rows, dtype=np.int64)
    label[rng.choice(rows, size=frauds, replace=False)] = 1
    return label


def _times(rng: np.random.Generator, fraud: np.ndarray) -> np.ndarray:
    """Whole seconds over two days; legit traffic dips at night, fraud much less."""
    grid = np.arange(0, SECONDS + 1, 60, dtype=float)
    hour = (grid / 3600.0) % 24
    daylight = ((1 - np.cos(2 * np.pi * (hour - 4) / 24)) / 2) ** 1.5  # 0 at 4 am, 1 at 4 pm
    times = np.empty(fraud.size)
    times[~fraud] = _sample_from_intensity(rng, grid, 0.08 + 0.92 * daylight, (~fraud).sum())
    times[fraud] = _sample_from_intensity(rng, grid, 0.55 + 0.45 * daylight, fraud.sum())
    return np.minimum(np.floor(times), SECONDS)


def _sample_from_intensity(
    rng: np.random.Generator, grid: np.ndarray, intensity: np.ndarray, n: int
) -> np.ndarray:
    cumulative = np.concatenate([[0.0], np.cumsum(intensity[:-1] + intensity[1:])])
    return np.interp(rng.uniform(0, cumulative[-1], n), cumulative, grid)


def _components(
    rng: np.random.Generator, fraud: np.ndarray, amount_latent: np.ndarray
) -> np.ndarray:
    """V1…V28: heavy-tailed noise, fraud shifts of varying severity, then centred."""
    rows = fraud.size
    # Student-t with 5 degrees of freedom has variance 5/3: rescale to unit variance.
    noise = rng.standard_t(df=5, size=(rows, 28)) / np.sqrt(5 / 3)
    # Amount relates to a few components, as in the real file (V2 negatively, V7, V20).
    for column, weight in ((1, -0.5), (6, 0.35), (19, 0.4)):
        noise[:, column] = weight * amount_latent + np.sqrt(1 - weight**2) * noise[:, column]
    values = noise * COMPONENT_STD

    shift = np.zeros(28)
    for name, offset in FRAUD_SHIFT.items():
        shift[schema.PCA_COMPONENTS.index(name)] = offset
    severity = np.zeros(rows)
    severity[fraud] = _fraud_severity(rng, fraud.sum())
    suspicious = ~fraud & (rng.uniform(size=rows) < SUSPICIOUS_LEGIT_SHARE)
    severity[suspicious] = rng.uniform(0.1, 0.6, suspicious.sum())
    # Frauds also spread wider than legit traffic on the shifted components.
    spread = 1 + 1.0 * severity[:, None] * (shift != 0)
    values = values * spread + severity[:, None] * shift
    return values - values.mean(axis=0)


def _fraud_severity(rng: np.random.Generator, n: int) -> np.ndarray:
    severity = rng.beta(3.0, 1.3, n)
    camouflaged = rng.uniform(size=n) < CAMOUFLAGED_FRAUD_SHARE
    severity[camouflaged] = rng.uniform(0.0, 0.15, camouflaged.sum())
    return severity


def _amounts(
    rng: np.random.Generator, fraud: np.ndarray, amount_latent: np.ndarray
) -> np.ndarray:
    """Log-normal amounts in cents, with a few zero-value authorisations."""
    amount = np.empty(fraud.size)
    for mask, params in ((~fraud, LEGIT_AMOUNT), (fraud, FRAUD_AMOUNT)):
        log_amount = np.log(params["median"]) + params["sigma"] * amount_latent[mask]
        amount[mask] = np.minimum(np.exp(log_amount), params["maximum"])
    amount[rng.uniform(size=fraud.size) < ZERO_AMOUNT_SHARE] = 0.0
    return np.round(amount, 2)
