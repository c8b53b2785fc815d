"""What the stack needs before it starts: a prepared dataset and a production model."""

from __future__ import annotations

from collections.abc import Callable

from tickml.config import Settings


def ensure_dataset_and_model(settings: Settings, rows: int,
                             report: Callable[[str], None] = print) -> None:
    """Prepare the dataset and train the default model when they are missing.

    Args:
        rows: rows of the synthetic stand-in, if the dataset has to be prepared.
        report: receives one line per step taken.
    """
    from tickml.data.prepare import prepare_dataset
    from tickml.modeling.train import train_default_model
    from tickml.registry import ModelRegistry

    if not (settings.processed_dir / "test.parquet").is_file():
        report("dataset: preparing (first run)…")
        prepare_dataset(settings, rows=rows, seed=settings.seed)
    if ModelRegistry(settings.models_dir).production() is None:
        report("model: training the default model (first run)…")
        result = train_default_model(settings)
        report(f"model: {result.ref} in production, test AUPRC "
               f"{result.fitted.test['average_precision']:.3f}")
