"""Each project's raw-input contract (common/contract.py), end to end on a model trained on synthetic data.

Good rows still predict; each malformed class raises ``InputError`` naming the row, the column and the
value, in-process (``model.predict``) and through the CLI's predict path (``common/predict.py``), which runs
the same pipeline and therefore gives the same message.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from common import train
from common.contract import ColumnRule, InputContract, ValidateInput
from common.errors import InputError
from common.predict import predict_cli
from tests.settings import TEST_PARAMS


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One tracking store for the module: each project is trained once and its champion reused."""
    root = tmp_path_factory.mktemp("contracts")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("MLPROJECTS_CACHE_DIR", str(root / "cache"))
        mp.setenv("MPLBACKEND", "Agg")
        mp.setenv("MLPROJECTS_OFFLINE", "1")
        mp.delenv("MLPROJECTS_DATA_DIR", raising=False)
        yield uri


_TRAINED: dict[tuple[str, str], Any] = {}  # (project, store) -> (model, dataset): a model is registered in its store


def trained(project: str, store: str, n: int | None = None) -> tuple[Any, Any]:
    """(fitted pipeline, synthetic dataset) for ``project``, trained and registered once per module."""
    if (project, store) not in _TRAINED:
        synthetic = importlib.import_module(f"projects.{project}.synthetic")
        ds = synthetic.generate(n) if n else synthetic.generate()
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("MLFLOW_TRACKING_URI", store)
            result = train.run(project, dict(TEST_PARAMS.get(project, {})), dataset=ds)
        _TRAINED[project, store] = (result.model, ds)
    return _TRAINED[project, store]


def raises_naming(model: Any, X: Any, *parts: str) -> str:
    with pytest.raises(InputError) as info:
        model.predict(X)
    message = str(info.value)
    for part in parts:
        assert part in message, f"{part!r} not in: {message}"
    return message


# ---------------------------------------------------------------------------------------------- common
def test_validate_input_passes_data_through_unchanged() -> None:
    contract = InputContract("demo", {"a": ColumnRule("number"), "b": ColumnRule("category")}, what="a and b")
    frame = pd.DataFrame({"a": ["1", 2.0, None], "b": ["x", None, "y"]})
    step = ValidateInput(contract)
    assert step.fit_transform(frame) is frame and step.transform(frame) is frame


@pytest.mark.parametrize(("frame", "parts"), [
    (pd.DataFrame({"a": [1.0, "zz"], "b": ["x", "y"]}), ("row 1", "'a'", "'zz'", "a number")),
    (pd.DataFrame({"a": [1.0, -1.0], "b": ["x", "y"]}, index=[10, 11]), ("row 1 (index 11)", "'a'", ">= 0")),
    (pd.DataFrame({"a": [1.0, 2.0], "b": ["x", 3]}), ("row 1", "'b'", "3 (type int)", "a category")),
    (pd.DataFrame({"a": [1.0, None], "b": ["x", " "]}), ("row 1", "every column missing")),
    (pd.DataFrame({"b": ["x"]}), ("missing required column(s) a",)),
    (pd.DataFrame({"a": [], "b": []}), ("no rows to predict", "expects at least one row")),
])
def test_contract_errors_name_row_column_value(frame: pd.DataFrame, parts: tuple[str, ...]) -> None:
    contract = InputContract("demo", {"a": ColumnRule("number", min=0), "b": ColumnRule("category")}, what="a and b")
    with pytest.raises(InputError) as info:
        ValidateInput(contract).transform(frame)
    for part in parts:
        assert part in str(info.value), str(info.value)


# ----------------------------------------------------------------------------------------------- churn
def _churn_rows(store: str) -> tuple[Any, pd.DataFrame]:
    model, ds = trained("churn", store)
    return model, ds.X.head(5).astype(object).reset_index(drop=True)


def test_churn_good_rows_and_blank_total_charges_predict(store: str) -> None:
    model, rows = _churn_rows(store)
    rows.loc[0, "TotalCharges"] = " "  # Telco's blank for a first-month customer: documented as fine
    rows.loc[1, "Contract"] = "Ten year"  # an unseen level is fine
    assert len(model.predict(rows)) == 5


@pytest.mark.parametrize(("column", "value", "expected"), [
    ("tenure", "abc", "a number"),
    ("MonthlyCharges", "twelve", "a number"),
    ("TotalCharges", "n/a", "a number"),
    ("tenure", -3, ">= 0"),
    ("Contract", 7, "a category"),
])
def test_churn_wrong_values_name_row_column_value(store: str, column: str, value: Any, expected: str) -> None:
    model, rows = _churn_rows(store)
    rows.loc[2, column] = value
    raises_naming(model, rows, "row 2", repr(column), repr(value), expected)


def test_churn_empty_and_all_missing_rows(store: str) -> None:
    model, rows = _churn_rows(store)
    raises_naming(model, rows.iloc[:0], "no rows to predict", "at least one row")
    raises_naming(model, [], "no rows to predict")
    rows.loc[3, :] = None
    raises_naming(model, rows, "row 3", "every column missing")


def test_churn_cli_predict_gives_the_same_message(store: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    model, rows = _churn_rows(store)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    rows.loc[2, "tenure"] = "abc"
    rows.to_csv(tmp_path / "bad.csv", index=False)
    in_process = raises_naming(model, pd.read_csv(tmp_path / "bad.csv"), "row 2")
    with pytest.raises(InputError) as info:
        predict_cli("churn", input_path=str(tmp_path / "bad.csv"))
    assert str(info.value) == in_process
    rows.iloc[:0].to_csv(tmp_path / "empty.csv", index=False)
    with pytest.raises(InputError, match="no rows to predict"):
        predict_cli("churn", input_path=str(tmp_path / "empty.csv"))
    good = tmp_path / "good.csv"
    _churn_rows(store)[1].to_csv(good, index=False)
    assert len(predict_cli("churn", input_path=str(good))) == 5


# ----------------------------------------------------------------------------------------- house_prices
def _house_rows(store: str) -> tuple[Any, pd.DataFrame]:
    model, ds = trained("house_prices", store)
    return model, ds.X.head(4).astype(object).reset_index(drop=True)


def test_house_prices_good_rows_predict(store: str) -> None:
    model, rows = _house_rows(store)
    rows.loc[0, "LotArea"] = "8450"  # a number sent as text is fine
    rows.loc[1, "Neighborhood"] = "Atlantis"  # an unseen level is fine
    assert np.isfinite(model.predict(rows)).all()


@pytest.mark.parametrize(("column", "value", "expected"), [
    ("LotArea", "big", "a number"),
    ("GrLivArea", -5, ">= 0"),
    ("MSZoning", 3, "a category"),
])
def test_house_prices_wrong_values_name_row_column_value(store: str, column: str, value: Any,
                                                          expected: str) -> None:
    model, rows = _house_rows(store)
    rows.loc[1, column] = value
    raises_naming(model, rows, "row 1", repr(column), repr(value), expected)


def test_house_prices_empty_and_all_missing_rows(store: str) -> None:
    model, rows = _house_rows(store)
    raises_naming(model, rows.iloc[:0], "no rows to predict", "at least one row")
    raises_naming(model, [], "no rows to predict")
    rows.loc[0, :] = None
    raises_naming(model, rows, "row 0", "every column missing")


# ------------------------------------------------------------------------------------- spam, sentiment
@pytest.mark.parametrize("project", ["spam", "sentiment"])
def test_text_contract(store: str, project: str) -> None:
    model, ds = trained(project, store)
    good = list(ds.X[:3])
    assert len(model.predict(good + [""])) == 4
    assert len(model.predict(pd.DataFrame({"text": good}))) == 3
    raises_naming(model, [], "no rows to predict", "at least one row")
    raises_naming(model, pd.DataFrame({"text": []}), "no rows to predict")
    raises_naming(model, [good[0], None], "row 1", "'text'", "None", "may not be missing")
    raises_naming(model, [good[0], float("nan")], "row 1", "nan")
    raises_naming(model, pd.DataFrame({"text": [good[0], 42]}, index=[7, 8]), "row 1 (index 8)", "42 (type int)")
    raises_naming(model, ["x" * 100_001], "row 0", "100,001 characters", "at most 100,000")


# ----------------------------------------------------------------------------------------------- mnist
def test_mnist_contract(store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from projects.mnist.features import PIXEL_NAMES

    model, ds = trained("mnist", store)
    flat = ds.X_test[:8].reshape(8, -1)
    table = pd.DataFrame(flat, columns=PIXEL_NAMES["kaggle"])
    expected = model.predict(flat)
    # Columns are matched by name: a shuffled table predicts exactly what the array does.
    shuffled = table[list(reversed(table.columns))]
    np.testing.assert_array_equal(model.predict(shuffled), expected)
    raises_naming(model, pd.concat([table.drop(columns=["pixel5"]), pd.DataFrame({"extra": [0] * 8})], axis=1),
                  "missing pixel5", "unknown extra")
    raises_naming(model, table.astype(object).assign(pixel7=["dark"] + [0] * 7), "'pixel7'", "row 0", "'dark'")
    raises_naming(model, flat / 255.0, "0-255", "scaled to 0-1", "X * 255")
    raises_naming(model, table.iloc[:0], "no rows to predict")
    raises_naming(model, flat[:0], "no rows to predict")
    # The CLI passes the table, so a non-numeric column is named there too (it used to be dropped).
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    shuffled.to_csv(tmp_path / "good.csv", index=False)
    np.testing.assert_array_equal(predict_cli("mnist", input_path=str(tmp_path / "good.csv"))["digit"], expected)
    bad = table.astype(object).assign(pixel7=["dark"] + [0] * 7)
    bad.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(InputError, match="'pixel7'"):
        predict_cli("mnist", input_path=str(tmp_path / "bad.csv"))


# ----------------------------------------------------------------------------------------- recommender
def test_recommender_title_length_and_empty_input(store: str) -> None:
    import time

    model, ds = trained("recommender", store)
    title = str(ds.X["title"].iloc[0])
    assert len(model.predict([title])) > 0
    started = time.perf_counter()
    raises_naming(model, [title, "x" * 1_000_000], "row 1", "'title'", "1,000,000 characters", "at most 500")
    assert time.perf_counter() - started < 5  # refused before any fuzzy matching
    raises_naming(model, pd.DataFrame({"title": ["y" * 501]}), "row 0", "501 characters")
    raises_naming(model, [], "no rows to predict")
    assert len(model.predict(["z" * 500])) >= 0  # at the limit: searched (not found is an answer, not an error)


# ---------------------------------------------------------------------------------------------- stocks
def test_stocks_contract(store: str, caplog: pytest.LogCaptureFixture) -> None:
    from projects.stocks.features import WARMUP

    model, ds = trained("stocks", store)
    bars = ds.X.iloc[-80:].reset_index(drop=True)
    assert np.isfinite(model.predict(bars)).all()
    for value, shown in ((np.nan, "nan"), (0.0, "0.0"), (-5.0, "-5.0")):
        bad = bars.copy()
        bad.loc[10, "Close"] = value
        date = pd.Timestamp(bad.loc[10, "Date"]).strftime("%Y-%m-%d")
        raises_naming(model, bad, "row 10", f"Date {date}", "'Close'", shown, "positive price")
    dup = bars.copy()
    dup.loc[20, "Date"] = dup.loc[19, "Date"]
    raises_naming(model, dup, "row 20", "'Date'", "one row per trading day")
    raises_naming(model, bars.iloc[-(WARMUP - 1):], f"has {WARMUP - 1} daily bar", f"at least {WARMUP}")
    raises_naming(model, bars.iloc[:0], "no rows to predict")
    gap = bars.copy()
    gap.loc[40:, "Date"] = pd.to_datetime(gap.loc[40:, "Date"]) + pd.Timedelta(days=30)
    with caplog.at_level("WARNING"):
        assert np.isfinite(model.predict(gap)).all()  # a long gap is a warning, not an error
    assert "business days between" in caplog.text


# ------------------------------------------------------------------------------------------------ REST
# Every project behind `mlprojects serve`: each payload form MLflow documents, and CSV, gives what the
# in-process model gives; a bad row gives 400 with only the project's message. This calls MLflow's own
# `invocations` (what the server's /invocations route runs) on the adapter `mlprojects serve` installs;
# tests/test_serve.py runs the real server for the HTTP layer (413, 415, the JSON bodies).
def _rest_sample(project: str, store: str) -> tuple[Any, pd.DataFrame, Any, Any, dict[str, Any], str]:
    """(model, table, bare ``inputs`` value or None, reference input, a bad payload, a phrase its error has)."""
    model, ds = trained(project, store)
    if project in ("spam", "sentiment"):
        texts = [str(t) for t in list(ds.X[:4])]
        return model, pd.DataFrame({"text": texts}), texts, texts, {"inputs": ["fine", 42]}, "row 1, column 'text'"
    if project == "mnist":
        from projects.mnist.features import PIXEL_NAMES

        flat = ds.X_test[:3].reshape(3, -1).astype(float)
        table = pd.DataFrame(flat, columns=PIXEL_NAMES["kaggle"])
        bad = table.astype(object).assign(pixel7=["dark", 0, 0]).to_dict(orient="records")
        return model, table, flat.tolist(), flat, {"dataframe_records": bad}, "'pixel7'"
    if project == "recommender":
        titles = [str(t) for t in ds.X["title"].iloc[:2]]
        return (model, pd.DataFrame({"title": titles}), titles, pd.DataFrame({"title": titles}),
                {"inputs": ["x" * 600]}, "at most 500")
    if project == "stocks":
        bars = ds.X.iloc[-80:].reset_index(drop=True)
        table = bars.assign(Date=pd.to_datetime(bars["Date"]).dt.strftime("%Y-%m-%d"))
        bad = json.loads(table.assign(Close=table["Close"].where(table.index != 10, -5.0)).to_json(orient="split", index=False))
        return model, table, None, table, {"dataframe_split": bad}, "row 10"
    table = ds.X.head(4).reset_index(drop=True)
    column = "tenure" if project == "churn" else "LotArea"
    bad = json.loads(table.astype(object).assign(**{column: ["abc"] + [1] * 3}).to_json(orient="records"))
    return model, table, None, table, {"dataframe_records": bad}, f"row 0, column '{column}': got 'abc'"


def _invoke(served: Any, body: str, content_type: str = "application/json") -> tuple[int, Any]:
    """What MLflow's /invocations route answers: (status, parsed body)."""
    from mlflow.exceptions import MlflowException
    from mlflow.pyfunc import scoring_server

    from common.serve import request_body

    try:
        with request_body(body, content_type):  # what the server's RequestGuard does for each request
            result = scoring_server.invocations(body, content_type, served, served.metadata.get_input_schema())
    except MlflowException as exc:  # the route's decorator answers with these two
        return exc.get_http_status_code(), json.loads(exc.serialize_as_json())
    return result.status, json.loads(result.response)


def _same(got: Any, expected: Any) -> None:
    if got and isinstance(got[0], dict):  # a table of predictions (the recommender's)
        got_frame, want_frame = pd.json_normalize(got), pd.json_normalize(expected)
    else:
        got_frame, want_frame = pd.DataFrame({"p": got}), pd.DataFrame({"p": expected})
    pd.testing.assert_frame_equal(got_frame, want_frame, check_dtype=False, rtol=1e-9)


@pytest.mark.parametrize("project", ["house_prices", "churn", "spam", "sentiment", "mnist", "stocks", "recommender"])
def test_rest_payload_forms_and_errors(store: str, project: str) -> None:
    import io

    import mlflow
    from mlflow.pyfunc import scoring_server

    from common import registry, tracking
    from common.serve import ServedPipeline

    model, table, bare, reference, bad, phrase = _rest_sample(project, store)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", store)
        tracking.configure()
        metadata = mlflow.models.Model.load(tracking.model_uri(registry.get_spec(project).name))
    served = ServedPipeline(project, model, metadata)
    buffer = io.StringIO()
    scoring_server.predictions_to_json(model.predict(reference), buffer)
    expected = json.loads(buffer.getvalue())["predictions"]

    records = json.loads(table.to_json(orient="records"))
    payloads = {
        "dataframe_split": {"dataframe_split": json.loads(table.to_json(orient="split", index=False))},
        "dataframe_records": {"dataframe_records": records},
        "inputs as columns": {"inputs": {c: json.loads(table[c].to_json(orient="values")) for c in table.columns}},
        "instances as rows": {"instances": records},
    }
    if bare is not None:
        payloads["inputs as values"] = {"inputs": bare}
        payloads["instances as values"] = {"instances": bare}
    for form, payload in payloads.items():
        status, body = _invoke(served, json.dumps(payload))
        assert status == 200, (form, body)
        _same(body["predictions"], expected)
    status, body = _invoke(served, table.to_csv(index=False), "text/csv")
    assert status == 200, ("csv", body)
    _same(body["predictions"], expected)

    status, body = _invoke(served, json.dumps(bad))
    assert status == 400 and set(body) == {"error_code", "message"}, body
    assert body["error_code"] == "BAD_REQUEST" and phrase in body["message"], body
    with pytest.raises(InputError) as info:  # the in-process message, word for word
        model.predict(served_input(bad))
    assert body["message"] == str(info.value)
    status, body = _invoke(served, json.dumps({"inputs": []}))
    assert status == 400 and "no rows to predict" in body["message"], body


def served_input(payload: dict[str, Any]) -> Any:
    """The raw input a payload stands for, as a client would pass it in-process."""
    (form, value), = payload.items()
    if form == "dataframe_split":
        return pd.DataFrame(value["data"], columns=value["columns"])
    if form == "dataframe_records":
        return pd.DataFrame(value)
    return value
