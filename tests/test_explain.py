"""common.explain: permutation importance of raw columns, single-column substitution contributions, top
weights and confused pairs on tiny data, and (integration) the explanation artifacts of real runs and
their place in the report."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from common import explain
from tests.settings import TEST_PARAMS


@pytest.fixture(scope="module")
def frame() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    n = 400
    X = pd.DataFrame({"relevant": rng.normal(size=n), "irrelevant": rng.normal(size=n),
                      "colour": rng.choice(["red", "green", "blue"], size=n)})
    y = 3 * X["relevant"].to_numpy() + 2 * (X["colour"] == "red").to_numpy() + rng.normal(scale=0.1, size=n)
    return X, y


def _linear(columns: list[str], categorical: list[str] = ()) -> object:
    """A pipeline that reads only ``columns`` (+ one-hot ``categorical``): the rest is ignored exactly."""
    steps = [("num", "passthrough", columns)]
    if categorical:
        steps.append(("cat", OneHotEncoder(), list(categorical)))
    return make_pipeline(ColumnTransformer(steps), LinearRegression())


# ------------------------------------------------------------------------------------------------ units
def test_permutation_importance_separates_relevant_from_ignored_columns(frame) -> None:
    X, y = frame
    model = _linear(["relevant", "irrelevant"], ["colour"]).fit(X.iloc[:300], y[:300])
    table = explain.permutation_table(model, X.iloc[300:], y[300:], "r2", repeats=5)
    assert list(table.columns) == ["column", "importance_mean", "importance_std"]
    assert set(table["column"]) == set(X.columns) and len(table) == 3
    imp = table.set_index("column")["importance_mean"]
    assert imp["relevant"] > 0.5 and imp["colour"] > 0.05
    assert abs(imp["irrelevant"]) < 0.01  # learned weight ~0
    assert table["column"].iloc[0] == "relevant"  # sorted by decreasing importance
    ignored = _linear(["relevant"], ["colour"]).fit(X.iloc[:300], y[:300])
    table = explain.permutation_table(ignored, X.iloc[300:], y[300:], "r2").set_index("column")
    assert table.loc["irrelevant", "importance_mean"] == 0 and table.loc["irrelevant", "importance_std"] == 0


def test_permutation_importance_caps_rows(frame) -> None:
    X, y = frame
    Xs, ys = explain.subsample(X, y, 50, seed=1)
    assert len(Xs) == len(ys) == 50 and Xs.index.is_monotonic_increasing
    assert np.array_equal(ys, y[Xs.index.to_numpy()])


class _Echo(RegressorMixin, BaseEstimator):
    """Predicts its input column ``p`` as it is."""

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> _Echo:
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.asarray(X["p"], dtype=float)


def test_rmsle_scorer_is_negated_rmse_of_logs() -> None:
    model = _Echo()
    X = pd.DataFrame({"p": [100.0, 200.0]})
    y = np.array([100.0, 100.0])
    expected = np.sqrt(np.mean((np.log1p([100, 100]) - np.log1p([100, 200])) ** 2))
    assert explain.rmsle_scorer()(model, X, y) == pytest.approx(-expected)


def test_typical_values_are_observed_medians_and_modes() -> None:
    X = pd.DataFrame({"n": [1, 2, 3, 4], "f": [1.0, np.nan, 5.0, 9.0], "s": ["a", "b", "b", None],
                      "empty": [np.nan] * 4})
    typical = explain.typical_values(X)
    assert typical["n"] == 2  # the lower median: a value the column has
    assert typical["f"] == 5.0 and typical["s"] == "b" and np.isnan(typical["empty"])


def test_pick_rows_spreads_over_predictions() -> None:
    scores = np.array([0.5, 0.1, 0.9, 0.3, 0.7])
    assert explain.pick_rows(scores, 3).tolist() == [1, 0, 2]  # lowest, middle, highest
    assert explain.pick_rows(scores[:1], 3).tolist() == [0]


def test_substitution_contributions_of_an_additive_model(frame) -> None:
    """For a model additive in the raw columns, each contribution is coef * (value - typical) and they sum to
    the prediction minus the all-typical prediction (nothing left unattributed)."""
    X, y = frame
    model = _linear(["relevant", "irrelevant"], ["colour"]).fit(X, y)
    typical = explain.typical_values(X)
    rows = X.iloc[[3, 7, 11]]
    table = explain.substitution_contributions(model.predict, rows, typical)
    assert len(table) == 3 * X.shape[1]
    assert list(table.columns) == ["row", "column", "value", "typical", "contribution", "prediction", "baseline",
                                   "rest"]
    coef = model[-1].coef_
    for label, part in table.groupby("row", sort=False):
        part = part.set_index("column")
        pred = model.predict(X.loc[[label]])[0]
        assert part["prediction"].iloc[0] == pytest.approx(pred)
        assert part["contribution"].sum() == pytest.approx(pred - part["baseline"].iloc[0])
        assert abs(part["rest"].iloc[0]) < 1e-9
        assert part.loc["relevant", "contribution"] == pytest.approx(coef[0] * (X.loc[label, "relevant"] - typical["relevant"]))
        if X.loc[label, "colour"] == typical["colour"]:
            assert part.loc["colour", "contribution"] == 0
    baseline = model.predict(pd.DataFrame([typical.to_dict()]).astype({"relevant": float, "irrelevant": float}))[0]
    assert table["baseline"].iloc[0] == pytest.approx(baseline)


def test_substitution_reports_what_interactions_leave_unattributed() -> None:
    X = pd.DataFrame({"a": [0.0, 1.0, 1.0, 0.0, 0.0], "b": [0.0, 1.0, 0.0, 1.0, 0.0]})
    product = lambda frame: (frame["a"] * frame["b"]).to_numpy()  # noqa: E731
    table = explain.substitution_contributions(product, X.iloc[[1]], explain.typical_values(X))
    # Typical values are 0: either column alone at 0 drops the product from 1 to 0.
    assert table["contribution"].tolist() == [1.0, 1.0]
    assert table["baseline"].iloc[0] == 0 and table["rest"].iloc[0] == pytest.approx(-1.0)


def test_confused_pairs_from_a_hand_made_matrix() -> None:
    cm = np.array([[50, 3, 0],
                   [7, 40, 7],
                   [1, 0, 60]])
    table = explain.pairs_from_matrix(cm, ["a", "b", "c"], k=3)
    assert table[["true", "predicted", "count"]].values.tolist() == [["b", "a", 7], ["b", "c", 7], ["a", "b", 3]]
    assert table["share_of_true"].iloc[0] == pytest.approx(7 / 54)
    y_true = [0, 0, 1, 1, 1, 2]
    y_pred = [0, 1, 2, 2, 1, 2]
    pairs = explain.confused_pairs(y_true, y_pred)
    assert pairs[["true", "predicted", "count"]].values.tolist() == [[1, 2, 2], [0, 1, 1]]
    assert explain.confused_pairs([1, 2], [1, 2]).empty


def test_top_weights_multiclass_and_binary() -> None:
    names = ["words__good", "words__bad", "chars__ ok", "lex"]
    coef = np.array([[1.0, -2.0, 0.5, 0.0], [-1.0, 3.0, 0.0, 0.2]])
    table = explain.top_weights(names, coef, ["pos", "neg"], k=2)
    assert table[table["class"] == "pos"]["feature"].tolist() == ["good", " ok"]
    assert table[table["class"] == "neg"][["kind", "feature", "weight"]].values.tolist() == [
        ["words", "bad", 3.0], ["", "lex", 0.2]]
    binary = explain.top_weights(names, coef[0], ["ham", "spam"], k=1)
    assert binary[["class", "feature", "weight"]].values.tolist() == [["spam", "good", 1.0], ["ham", "bad", -2.0]]


def test_plots_are_written(tmp_path: Path, frame) -> None:
    X, y = frame
    model = _linear(["relevant", "irrelevant"], ["colour"]).fit(X, y)
    table = explain.permutation_table(model, X, y, "r2", repeats=2)
    contrib = explain.substitution_contributions(model.predict, X.iloc[[0, 1]], explain.typical_values(X))
    pairs = explain.pairs_from_matrix(np.array([[5, 1], [2, 6]]), [0, 1])
    weights = explain.top_weights(["a", "b"], np.array([1.0, -1.0]), ["no", "yes"], k=1)
    paths = [
        explain.plot_importance(table, tmp_path / "imp.png", "t", "drop in R2"),
        explain.plot_contributions(contrib, tmp_path / "rows.png", "t", "prediction"),
        explain.plot_confused_pairs(pairs, tmp_path / "pairs.png", "t"),
        explain.plot_confused_pairs(pairs.iloc[:0], tmp_path / "none.png", "t"),
        explain.plot_top_weights(weights, tmp_path / "top.png", "t"),
    ]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_mnist_report_writes_confused_pairs(tmp_path: Path) -> None:
    from projects.mnist import report

    y = np.array([3, 3, 5, 5, 8, 8, 8, 1])
    pred = np.array([5, 5, 3, 5, 3, 8, 8, 1])
    model = SimpleNamespace(classes_=np.arange(10),
                            predict_proba=lambda X: np.eye(10)[pred[: len(X)]] * 0.9 + 0.01)
    ctx = SimpleNamespace(params={"model": "stub"}, artifact=lambda name: tmp_path / name)
    X = np.zeros((len(y), 784))
    report.report(ctx, model, X, y)
    pairs = pd.read_csv(tmp_path / "confused_pairs.csv")
    assert pairs[["true", "predicted", "count"]].values.tolist() == [[3, 5, 2], [5, 3, 1], [8, 3, 1]]
    for name in ("confused_pairs.png", "confused_examples.png"):
        assert (tmp_path / name).stat().st_size > 0


# ------------------------------------------------------------------------------------------ integration
def _artifacts(run_id: str) -> set[str]:
    import mlflow

    return {a.path for a in mlflow.MlflowClient().list_artifacts(run_id)}


EXPLAINED = {"permutation_importance.png", "permutation_importance.csv", "row_contributions.png",
             "row_contributions.csv"}


def test_house_prices_run_logs_explanations_and_the_report_shows_them(tmp_path: Path) -> None:
    import mlflow

    from common import report, train
    from projects.house_prices import synthetic

    ds = synthetic.generate(120)
    result = train.run("house_prices", {"model": "linear"}, dataset=ds)
    assert EXPLAINED <= _artifacts(result.run_id)
    path = mlflow.MlflowClient().download_artifacts(result.run_id, "permutation_importance.csv", str(tmp_path))
    table = pd.read_csv(path)
    assert set(table["column"]) == set(ds.X.columns)
    path = mlflow.MlflowClient().download_artifacts(result.run_id, "row_contributions.csv", str(tmp_path))
    rows = pd.read_csv(path)
    assert rows["row"].nunique() == 3 and len(rows) == 3 * ds.X.shape[1]
    assert not any("importance" in k or "contribution" in k for k in result.metrics)  # artifacts only
    _, page, report_rows = report.write(tmp_path / "reports")
    row = next(r for r in report_rows if r.project == "house_prices")
    assert set(row.explanations) == {"permutation_importance.png", "row_contributions.png"}
    assert row.plots and not set(row.plots) & set(row.explanations)
    html = page.read_text()
    assert "<h3>Explanations</h3>" in html and "row_contributions.png" in html
    assert "single-column substitution" in html and html.count("data:image/png;base64,") == len(row.plots) + 2


@pytest.mark.slow
def test_churn_run_logs_explanations() -> None:
    from common import train
    from projects.churn import synthetic

    result = train.run("churn", TEST_PARAMS["churn"], dataset=synthetic.generate(400))
    assert EXPLAINED <= _artifacts(result.run_id)
