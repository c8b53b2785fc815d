"""The throw-away copy of the project the Docker soak runs: what it keeps and leaves out."""

from __future__ import annotations

from pathlib import Path

from tickml.stack.compose import copy_project


def test_a_copy_keeps_the_package_and_takes_its_dataset_and_models_from_elsewhere(
        tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    for name in ("docker-compose.yml", "up.sh", ".env", "tickml/data/prepare.py",
                 "tickml/__pycache__/x.pyc", "data/stale.csv", "models/stale/model.json",
                 "run/influxdb/wal", ".git/HEAD"):
        (checkout / name).parent.mkdir(parents=True, exist_ok=True)
        (checkout / name).write_text(name)
    data, models = tmp_path / "mine" / "data", tmp_path / "mine" / "models"
    (data / "processed").mkdir(parents=True)
    (data / "processed" / "test.parquet").write_text("rows")
    (models / "fraud-lgbm").mkdir(parents=True)

    copy = copy_project(checkout, tmp_path / "copy", data, models)

    kept = sorted(str(p.relative_to(copy)) for p in copy.rglob("*") if p.is_file())
    assert kept == ["data/processed/test.parquet", "docker-compose.yml",
                    "tickml/data/prepare.py", "up.sh"]
    assert (copy / "models" / "fraud-lgbm").is_dir()
