"""The fast scoring path: equal to the pipeline it comes from, or not used at all."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from lightgbm import LGBMClassifier
from sklearn.ensemble import VotingClassifier

from tickml import schema
from tickml.config import Settings
from tickml.data.prepare import load_split
from tickml.loader import LoadedModel, load_production
from tickml.modeling.ensembles import as_pipeline
from tickml.modeling.fastpath import (
    ARTEFACT,
    TOLERANCE,
    FastPathIntegrityError,
    FastPathMismatch,
    FastScorer,
    build_fast_scorer,
)
from tickml.modeling.features import SECONDS_PER_DAY, derive_features
from tickml.modeling.pipeline import build_pipeline
from tickml.registry import ModelRegistry


@pytest.fixture(scope="module")
def model(small_registry: ModelRegistry) -> LoadedModel:
    return load_production(small_registry)


@pytest.fixture(scope="module")
def test_split(small_project: Settings) -> np.ndarray:
    return schema.as_feature_matrix(load_split(small_project, "test"))


@pytest.fixture(scope="module")
def scorer(model: LoadedModel) -> FastScorer:
    built = build_fast_scorer(model.pipeline)
    assert built is not None, "the default pipeline has a fast form"
    return built


@pytest.fixture
def saved(scorer: FastScorer, tmp_path: Path) -> tuple[Path, str]:
    return tmp_path, scorer.save(tmp_path)


def test_probabilities_equal_the_pipeline_on_the_whole_test_split(
        scorer: FastScorer, model: LoadedModel, test_split: np.ndarray) -> None:
    expected = model.predict_proba(test_split)
    actual = scorer.predict_proba(test_split)
    assert actual.shape == expected.shape == (len(test_split),)
    assert np.max(np.abs(actual - expected)) <= TOLERANCE
    verdicts = actual >= model.threshold
    assert np.array_equal(verdicts, expected >= model.threshold)
    assert verdicts.any(), "the test split holds rows above the threshold"


def test_verify_reports_the_comparison_on_the_test_split(
        scorer: FastScorer, model: LoadedModel, test_split: np.ndarray) -> None:
    result = scorer.verify(model.pipeline, test_split, model.threshold)
    assert result.ok and result.rows == len(test_split) and result.verdict_differences == 0
    assert result.max_abs_difference <= TOLERANCE


def test_one_row_at_a_time_scores_as_in_a_batch(scorer: FastScorer,
                                                 test_split: np.ndarray) -> None:
    rows = test_split[:50]
    one_by_one = np.concatenate([scorer.predict_proba(row[None, :]) for row in rows])
    assert np.array_equal(one_by_one, scorer.predict_proba(rows))
    assert scorer.predict_proba(np.empty((0, len(schema.FEATURES)))).shape == (0,)


def test_a_frame_is_read_by_column_name(scorer: FastScorer, small_project: Settings) -> None:
    frame = load_split(small_project, "test").head(20)
    shuffled = frame[list(reversed(frame.columns))]
    assert np.array_equal(scorer.predict_proba(shuffled),
                          scorer.predict_proba(schema.as_feature_matrix(frame)))


def test_a_matrix_of_the_wrong_width_is_refused(scorer: FastScorer) -> None:
    with pytest.raises(ValueError, match="30 columns in schema order"):
        scorer.predict_proba(np.zeros((1, 31)))


@pytest.mark.parametrize(("time", "amount", "log_amount", "angle"), [
    (0.0, 0.0, 0.0, 0.0),
    (SECONDS_PER_DAY + 21_600.0, 99.0, np.log1p(99.0), np.pi / 2),  # day 2, 06:00
    (43_200.0, -5.0, 0.0, np.pi),  # negative amounts count as zero
])
def test_the_feature_step_derives_log_amount_and_the_hour_on_the_circle(
        time: float, amount: float, log_amount: float, angle: float) -> None:
    row = np.arange(len(schema.FEATURES), dtype=np.float64)[None, :]
    row[0, 0], row[0, -1] = time, amount
    derived = derive_features(row)[0]
    assert np.array_equal(derived[:28], row[0, 1:29])
    assert derived[28] == pytest.approx(log_amount, abs=1e-15)
    assert (derived[29], derived[30]) == pytest.approx((np.sin(angle), np.cos(angle)),
                                                       abs=1e-12)


def test_an_ensemble_has_no_fast_form(test_split: np.ndarray, model: LoadedModel) -> None:
    labels = model.predict_proba(test_split[:4_000]) >= 0.5
    labels[:20] = True  # both classes, whatever the small model says
    members = [(f"lgbm{i}", LGBMClassifier(n_estimators=5, random_state=i, verbose=-1))
               for i in range(2)]
    ensemble = as_pipeline(VotingClassifier(members, voting="soft"))
    ensemble.fit(test_split[:4_000], labels.astype(int))
    assert build_fast_scorer(ensemble) is None
    assert build_fast_scorer(object()) is None


def test_a_scorer_from_another_model_fails_verification(
        model: LoadedModel, test_split: np.ndarray) -> None:
    labels = (model.predict_proba(test_split[:5_000]) >= model.threshold).astype(int)
    labels[:20] = 1
    other = build_pipeline({"n_estimators": 10}, seed=3, n_jobs=1)
    other.fit(test_split[:5_000], labels)
    other_scorer = build_fast_scorer(other)
    assert other_scorer is not None
    assert not other_scorer.built_from(model.pipeline)
    with pytest.raises(FastPathMismatch, match="differs from the pipeline"):
        other_scorer.verify(model.pipeline, test_split, model.threshold)


def test_a_saved_scorer_loads_and_scores_the_same(
        scorer: FastScorer, saved: tuple[Path, str], model: LoadedModel,
        test_split: np.ndarray) -> None:
    directory, sha256 = saved
    loaded = FastScorer.load(directory, sha256)
    assert np.array_equal(loaded.predict_proba(test_split), scorer.predict_proba(test_split))
    assert loaded.built_from(model.pipeline)
    assert loaded.describe()["path"] == "compiled"
    assert loaded.describe()["compiler"].startswith("lleaves ")


def test_a_tampered_artefact_is_refused(saved: tuple[Path, str]) -> None:
    directory, sha256 = saved
    artefact = directory / ARTEFACT
    data = bytearray(artefact.read_bytes())
    data[len(data) // 2] ^= 0x01
    artefact.write_bytes(bytes(data))
    with pytest.raises(FastPathIntegrityError, match="changed after it was saved"):
        FastScorer.load(directory, sha256)


def built_by_another_llvmlite(artefact: bytes) -> bytes:
    """`artefact` with a manifest saying it was compiled by llvmlite 0.1.0."""
    original = zipfile.ZipFile(io.BytesIO(artefact))
    manifest = json.loads(original.read("manifest.json"))
    manifest["libraries"]["llvmlite"] = "0.1.0"
    rewritten = io.BytesIO()
    with zipfile.ZipFile(rewritten, "w") as archive:
        for name in original.namelist():
            archive.writestr(name, json.dumps(manifest) if name == "manifest.json"
                             else original.read(name))
    return rewritten.getvalue()


def test_an_artefact_built_by_another_compiler_version_is_refused(
        scorer: FastScorer, tmp_path: Path) -> None:
    with pytest.raises(FastPathIntegrityError, match=r"llvmlite.*rebuild it"):
        FastScorer.from_bytes(built_by_another_llvmlite(scorer.to_bytes()))


def test_a_missing_artefact_says_so(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        FastScorer.load(tmp_path, "0" * 64)
