"""Integrity of logged models: the recorded sha256 is checked before unpickling, and damaged artifacts give
clear errors naming the file and the version (issue 13, items 5 and 10)."""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest

from common import cli, fastload, tracking, train
from common.errors import ModelIntegrityError, ModelLoadError, ModelNotFoundError
from projects import load_pipeline
from projects.house_prices import synthetic

PROJECT = "house_prices"


@pytest.fixture
def champion() -> Path:
    """A tiny house_prices champion (v1); returns its artifact folder."""
    result = train.run(PROJECT, {"model": "linear"}, dataset=synthetic.generate(80))
    assert result.version == "1" and result.promotion is not None and result.promotion.promoted
    path = fastload.model_dir(tracking.tracking_uri(), PROJECT, tracking.CHAMPION, None)
    assert path is not None
    return path


@pytest.fixture(params=["fast", "mlflow"])
def path_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test through the MLflow-free fast path and through MLflow's (the fast path switched off)."""
    if request.param == "mlflow":
        monkeypatch.setattr(fastload, "locate", lambda *args, **kwargs: None)
    return request.param


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _client() -> Any:
    import mlflow

    tracking.configure()
    return mlflow.MlflowClient()


def _rows() -> Any:
    return synthetic.generate(10, seed=2).X_predict


def test_the_digest_is_recorded_on_the_version_and_the_run(champion: Path) -> None:
    client = _client()
    mv = client.get_model_version(PROJECT, "1")
    assert mv.tags[fastload.DIGEST_TAG] == _sha(champion / "model.pkl")
    assert client.get_run(mv.run_id).data.tags[fastload.DIGEST_TAG] == mv.tags[fastload.DIGEST_TAG]
    assert fastload.locate(tracking.tracking_uri(), PROJECT, "champion", None).sha256 == mv.tags[fastload.DIGEST_TAG]
    assert len(load_pipeline(PROJECT).predict(_rows())) == len(_rows())


def test_loading_says_where_the_model_comes_from(champion: Path, path_kind: str,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="common"):
        load_pipeline(PROJECT)
    notes = [r for r in caplog.records if "runs code" in r.getMessage()]
    assert len(notes) == 1, caplog.text
    assert "champion v1 of house_prices" in notes[0].getMessage() and "stores you trust" in notes[0].getMessage()
    assert tracking.tracking_uri() in notes[0].getMessage()


def test_a_tampered_model_file_is_refused_before_unpickling(champion: Path, path_kind: str) -> None:
    with open(champion / "model.pkl", "ab") as f:
        f.write(b"payload")
    with pytest.raises(ModelIntegrityError) as err:
        load_pipeline(PROJECT)
    text = str(err.value)
    expected = _client().get_model_version(PROJECT, "1").tags[fastload.DIGEST_TAG]
    assert "champion v1 of house_prices" in text and str(champion / "model.pkl") in text
    assert expected in text and _sha(champion / "model.pkl") in text and "Retrain" in text
    with pytest.raises(ModelIntegrityError, match="v1 of house_prices"):
        load_pipeline(PROJECT, version=1)


def test_a_tampered_model_file_is_refused_when_loaded_by_run(champion: Path) -> None:
    run_id = _client().get_model_version(PROJECT, "1").run_id
    (champion / "model.pkl").write_bytes((champion / "model.pkl").read_bytes() + b"x")
    with pytest.raises(ModelIntegrityError, match=f"run {run_id}"):
        load_pipeline(PROJECT, run_id=run_id)


def test_a_truncated_pickle_with_a_matching_digest_names_the_file(champion: Path, path_kind: str) -> None:
    pkl = champion / "model.pkl"
    pkl.write_bytes(pkl.read_bytes()[:50])
    _client().set_model_version_tag(PROJECT, "1", fastload.DIGEST_TAG, _sha(pkl))
    with pytest.raises(ModelLoadError) as err:
        load_pipeline(PROJECT)
    assert not isinstance(err.value, ModelIntegrityError)
    assert str(pkl) in str(err.value) and "champion v1 of house_prices" in str(err.value)
    assert "could not be loaded" in str(err.value)


@pytest.mark.parametrize("content", ["flavors: [unclosed\n  : :", "flavors:\n  python_function: {}\n"])
def test_a_corrupt_mlmodel_names_the_file(champion: Path, path_kind: str, content: str) -> None:
    (champion / "MLmodel").write_text(content)
    with pytest.raises(ModelLoadError) as err:
        load_pipeline(PROJECT)
    assert str(champion / "MLmodel") in str(err.value) and "champion v1 of house_prices" in str(err.value)
    assert "Train one" not in str(err.value)


def test_a_missing_artifact_folder_says_the_champion_is_registered(champion: Path) -> None:
    shutil.rmtree(champion)
    with pytest.raises(ModelLoadError) as err:
        load_pipeline(PROJECT)
    text = str(err.value)
    assert not isinstance(err.value, ModelNotFoundError)
    assert "champion v1 of house_prices is registered" in text and str(champion) in text and "is missing" in text
    assert "Train one" not in text


def test_no_such_version_still_says_train_one(champion: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="make house-prices"):
        load_pipeline(PROJECT, version=7)


def test_a_version_without_a_digest_loads_with_a_warning(champion: Path, path_kind: str,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    _client().delete_model_version_tag(PROJECT, "1", fastload.DIGEST_TAG)
    with caplog.at_level(logging.WARNING, logger="common"):
        assert len(load_pipeline(PROJECT).predict(_rows())) == len(_rows())
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("champion v1 of house_prices has no recorded sha256" in w for w in warnings), caplog.text


def test_loading_disabled_by_mlflow_says_so(champion: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    with pytest.raises(ModelLoadError, match="MLFLOW_ALLOW_PICKLE_DESERIALIZATION"):
        load_pipeline(PROJECT)


def test_cli_predict_on_a_tampered_champion_is_one_message(champion: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    _rows().to_csv(tmp_path / "rows.csv", index=False)
    with open(champion / "model.pkl", "ab") as f:
        f.write(b"payload")
    code = cli.main(["predict", PROJECT, "--input", str(tmp_path / "rows.csv")])
    out = capsys.readouterr()
    text = out.out + out.err
    assert code == 2
    assert "champion v1 of house_prices" in text and "sha256" in text
    assert "Traceback" not in text


def test_mlflows_pickle_caution_is_shown_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow's own caution about saving a pickle reaches handlers once per process, not once per model."""
    monkeypatch.setattr(tracking._CAUTION_ONCE, "shown", False)  # as in a new process
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("mlflow.sklearn")
    handler = Keep(logging.WARNING)
    monkeypatch.setattr(logger, "level", logging.WARNING)
    logger.addHandler(handler)
    try:
        train.run(PROJECT, {"model": "linear"}, dataset=synthetic.generate(80))
        train.run(PROJECT, {"model": "linear"}, dataset=synthetic.generate(80))
    finally:
        logger.removeHandler(handler)
    cautions = [r for r in records if "pickle or cloudpickle format requires exercising caution" in r.getMessage()]
    assert len(cautions) == 1
