"""The command line: error paths give one clear message and a non-zero exit; the happy path works."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from common import cli, train
from projects.house_prices import synthetic


@pytest.fixture
def synthetic_house(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the house_prices loader return generated data (no real data in unit tests)."""
    real = train.load_dataset

    def fake(project, data_params, sample=None, data_dir=None):
        if project.name == "house_prices":
            return synthetic.generate(120, seed=1)
        return real(project, data_params, sample, data_dir)

    monkeypatch.setattr(train, "load_dataset", fake)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out + out.err


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    code, text = _run(capsys, "list")
    assert code == 0 and "house_prices" in text and "cv_rmsle" in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "nope"], "Unknown project 'nope'"),
        (["train", "house_prices", "--param", "bogus=1"], "Unknown parameter 'bogus'"),
        (["train", "house_prices", "--param", "gbm_iter=lots"], "expects int"),
        (["train", "house_prices", "--param", "novalue"], "--param expects key=value"),
        (["predict", "house_prices", "--input", "nowhere.csv"], "does not exist"),
    ],
)
def test_user_errors_are_one_message_without_traceback(capsys, argv, message) -> None:
    code, text = _run(capsys, *argv)
    assert code == 2
    assert message in text
    assert "Traceback" not in text


def test_missing_data_says_how_to_get_it(capsys: pytest.CaptureFixture[str]) -> None:
    code, text = _run(capsys, "train", "house_prices")
    assert code == 2
    assert "house-prices/train.csv is not available" in text
    assert "kaggle competitions download" in text and "Traceback" not in text


def test_predict_without_champion_names_the_make_target(capsys, tmp_path: Path) -> None:
    ds = synthetic.generate(30)
    ds.X_predict.to_csv(tmp_path / "rows.csv", index=False)
    code, text = _run(capsys, "predict", "house_prices", "--input", str(tmp_path / "rows.csv"))
    assert code == 2 and "make house-prices" in text


def test_train_predict_and_champion_flow(capsys, tmp_path: Path, synthetic_house: None) -> None:
    code, text = _run(capsys, "train", "house_prices", "--param", "model=linear")
    assert code == 0, text
    assert "@champion" in text and "cv_rmsle" in text

    # Retraining the same model scores the same (up to float noise): the champion stays.
    code, text = _run(capsys, "train", "house_prices", "--param", "model=linear")
    assert code == 0 and "does not beat champion v1" in text, text

    # A deliberately weak model stays a challenger, and the CLI says so with both numbers.
    code, text = _run(capsys, "train", "house_prices", "--param", "model=linear", "--param", "linear_alpha=1e6")
    assert code == 0, text
    assert "challenger" in text and "does not beat champion v1" in text

    code, text = _run(capsys, "train", "house_prices", "--param", "model=linear", "--param",
                      "linear_alpha=1e6", "--promote")
    assert code == 0 and "--promote given" in text

    rows = synthetic.generate(30).X_predict
    rows.insert(0, "Id", range(5000, 5000 + len(rows)))
    rows.to_csv(tmp_path / "rows.csv", index=False)
    code, text = _run(capsys, "predict", "house_prices", "--input", str(tmp_path / "rows.csv"),
                      "--output", str(tmp_path / "pred.csv"), "--version", "1")
    assert code == 0, text
    pred = pd.read_csv(tmp_path / "pred.csv")
    assert list(pred.columns) == ["Id", "SalePrice"] and len(pred) == len(rows)
    assert (pred["SalePrice"] > 10_000).all()


def test_evaluate_registers_nothing(capsys, synthetic_house: None) -> None:
    import mlflow

    code, text = _run(capsys, "evaluate", "house_prices", "--param", "model=linear")
    assert code == 0, text
    assert mlflow.MlflowClient().search_registered_models() == []


def test_champion_loads_without_importing_mlflow(capsys, tmp_path: Path, synthetic_house: None,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The local fast path finds the same model MLflow does (both formats); a new process never imports MLflow."""
    import json
    import os
    import subprocess
    import sys

    import mlflow

    from common import fastload, tracking
    from common.errors import ModelNotFoundError

    assert _run(capsys, "train", "house_prices", "--param", "model=linear")[0] == 0
    with monkeypatch.context() as m:
        m.setenv("MLPROJECTS_MODEL_FORMAT", "skops")
        assert _run(capsys, "train", "house_prices", "--param", "model=linear", "--param", "linear_alpha=1e6")[0] == 0
    uri = tracking.tracking_uri()
    champion = fastload.model_dir(uri, "house_prices", "champion", None)
    second = fastload.model_dir(uri, "house_prices", "champion", 2)
    assert champion is not None and second is not None and champion != second
    assert fastload.model_dir(uri, "house_prices", "nope", None) is None
    assert fastload.model_dir("http://127.0.0.1:5000", "house_prices", "champion", None) is None
    assert fastload.model_dir(f"sqlite:///{tmp_path / 'absent.db'}", "house_prices", "champion", None) is None

    rows = synthetic.generate(20, seed=3).X_predict
    expected = mlflow.sklearn.load_model("models:/house_prices@champion").predict(rows)
    pd.testing.assert_series_equal(pd.Series(tracking.load_model("house_prices").predict(rows)), pd.Series(expected))
    weak = mlflow.sklearn.load_model("models:/house_prices/2").predict(rows)
    pd.testing.assert_series_equal(pd.Series(tracking.load_model("house_prices", version=2).predict(rows)),
                                   pd.Series(weak))
    with pytest.raises(ModelNotFoundError, match="make house-prices"):
        tracking.load_model("house_prices", alias="nope")

    rows.to_pickle(tmp_path / "rows.pkl")
    code = (
        "import json, sys, pandas as pd\n"
        "from projects import load_pipeline\n"
        f"pred = load_pipeline('house_prices').predict(pd.read_pickle({str(tmp_path / 'rows.pkl')!r}))\n"
        "print(json.dumps({'mlflow': 'mlflow' in sys.modules, 'pred': [float(v) for v in pred]}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "MLFLOW_TRACKING_URI": uri})
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["mlflow"] is False
    assert got["pred"] == pytest.approx([float(v) for v in expected])

    code_, text = _run(capsys, "load-time", "house_prices", "--runs", "1", "--json", str(tmp_path / "t.json"))
    assert code_ == 0, text
    (row,) = json.loads((tmp_path / "t.json").read_text())
    assert row["project"] == "house_prices" and row["median_s"] > 0 and row["mlflow"] is False
