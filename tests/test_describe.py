"""What the MLflow UI shows: dataset entities, descriptions of experiments, models, versions and runs."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
import pytest

from common import cli, describe, registry, tracking, train
from common.datasets import Dataset, FileInfo
from projects.house_prices import synthetic


@pytest.fixture(scope="module")
def house_data() -> Dataset:
    return synthetic.generate(80)


@pytest.fixture
def trained(house_data: Dataset) -> train.RunResult:
    return train.run("house_prices", {"model": "linear"}, dataset=house_data)


def _client():
    import mlflow

    return mlflow.MlflowClient()


def test_run_logs_real_dataset_inputs(trained: train.RunResult, house_data: Dataset) -> None:
    run = _client().get_run(trained.run_id)
    inputs = run.inputs.dataset_inputs
    assert [(i.dataset.name, i.dataset.digest) for i in inputs] == [("synthetic", house_data.sha256[:16])]
    assert {t.key: t.value for t in inputs[0].tags}["mlflow.data.context"] == "train"
    ds = inputs[0].dataset
    assert ds.source_type == "code" and "generated:house_prices" in ds.source
    assert '"num_rows": 80' in ds.profile and "SalePrice" in ds.schema
    # The params and tags that identified the data before stay.
    assert run.data.params["dataset.sha256"] == house_data.sha256[:16]
    assert run.data.tags["dataset.sha256"] == house_data.sha256


def test_test_part_is_logged_with_test_context(tmp_path) -> None:
    import mlflow

    (tmp_path / "train.csv").write_text("x\n")
    (tmp_path / "test.csv").write_text("x\n")
    ds = Dataset(X=["good day", "bad day", "meh"], y=np.array(["pos", "neg", "neu"]), X_test=["fine"],
                 y_test=np.array(["pos"]), name="kaggle",
                 files=[FileInfo(str(tmp_path / "train.csv"), "a" * 64, "mirror"),
                        FileInfo(str(tmp_path / "test.csv"), "b" * 64, "mirror")])
    spec = registry.get("sentiment").spec
    with mlflow.start_run(experiment_id=tracking.experiment(spec, create=True)) as run:
        tracking.log_dataset(ds, spec)
    inputs = _client().get_run(run.info.run_id).inputs.dataset_inputs
    got = {i.dataset.name: ({t.key: t.value for t in i.tags}["mlflow.data.context"], i.dataset) for i in inputs}
    assert set(got) == {"kaggle", "kaggle-test"}
    assert got["kaggle"][0] == "train" and got["kaggle-test"][0] == "test"
    assert all(d.digest == ds.sha256[:16] for _, d in got.values())
    assert "train.csv" in got["kaggle"][1].source and "test.csv" in got["kaggle-test"][1].source
    assert "sentiment" in got["kaggle"][1].schema  # the target column


def test_large_tables_are_profiled_on_a_sample_with_the_real_counts() -> None:
    rows = describe.PROFILE_ROWS + 5
    frame = pd.DataFrame({"a": np.arange(rows), "b": np.ones(rows)})
    ds = describe.mlflow_dataset(frame, pd.Series(np.zeros(rows), name="y"), name="big", digest="d" * 16,
                                 source=describe.dataset_source(Dataset(X=frame)), target="y")
    assert len(ds.df) == describe.PROFILE_ROWS
    assert ds.profile["num_rows"] == rows and ds.digest == "d" * 16
    images = describe.mlflow_dataset(np.zeros((30, 28, 28), dtype=np.uint8), np.zeros(30), name="img",
                                     digest="e" * 16, source=describe.dataset_source(Dataset(X=None)), target="digit")
    assert images.profile["features_shape"] == (30, 28, 28)
    # Without labels, a column that happens to carry the target's name is no target (the recommender).
    catalogue = describe.mlflow_dataset(pd.DataFrame({"title": ["Up"]}), None, name="c", digest="f" * 16,
                                        source=describe.dataset_source(Dataset(X=None)), target="title")
    assert catalogue.targets is None


def test_a_failed_dataset_log_is_a_warning(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
                                           house_data: Dataset) -> None:
    import mlflow

    def broken(*args, **kwargs):
        raise RuntimeError("store says no")

    monkeypatch.setattr(describe, "log_dataset_inputs", broken)
    exp_id = tracking.experiment(registry.get("house_prices").spec, create=True)
    with caplog.at_level(logging.WARNING, logger="common.tracking"), mlflow.start_run(experiment_id=exp_id) as run:
        tracking.log_dataset(house_data)
    assert any(r.levelno == logging.WARNING and "store says no" in r.getMessage() for r in caplog.records)
    assert _client().get_run(run.info.run_id).data.params["dataset.name"] == "synthetic"


def test_experiment_and_registered_model_describe_the_project(trained: train.RunResult) -> None:
    client = _client()
    spec = registry.get("house_prices").spec
    note = client.get_experiment_by_name("house_prices").tags[describe.NOTE_TAG]
    model_text = client.get_registered_model("house_prices").description
    for text in (note, model_text):
        assert spec.title in text and "regression" in text
        assert "cv_rmsle" in text and "lower is better" in text
        assert "generated:house_prices" in text and "docs/house_prices.md" in text


def test_docs_url_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(describe.DOCS_URL_ENV, raising=False)
    assert describe.docs_url("spam").startswith("file://") and describe.docs_url("spam").endswith("/docs/spam.md")
    monkeypatch.setenv(describe.DOCS_URL_ENV, "https://example.org/repo/docs/")
    assert describe.docs_url("spam") == "https://example.org/repo/docs/spam.md"


def test_version_carries_metrics_data_commit_and_params(trained: train.RunResult, house_data: Dataset) -> None:
    version = _client().get_model_version("house_prices", trained.version)
    text = version.description
    assert "cv_rmsle" in text and f"{trained.metrics['cv_rmsle']:.6g}" in text
    assert house_data.sha256[:16] in text and tracking.git_commit().split("-")[0] in text
    assert '"model": "linear"' in text and trained.run_id in text
    assert "baseline_" not in text  # key metrics only
    assert version.tags["dataset_digest"] == house_data.sha256[:16]
    assert version.tags["git_commit"] and version.tags["model_id"].startswith("m-")


def test_run_description_says_what_happened(trained: train.RunResult) -> None:
    note = _client().get_run(trained.run_id).data.tags[describe.NOTE_TAG]
    assert "synthetic" in note and "cv_rmsle" in note and "version 1" in note and "@champion" in note


def test_metrics_are_linked_to_the_logged_model(trained: train.RunResult) -> None:
    import mlflow

    (model_id,) = describe.model_ids(trained.run_id)
    metrics = {m.key: m.value for m in mlflow.get_logged_model(model_id).metrics}
    assert metrics["cv_rmsle"] == pytest.approx(trained.metrics["cv_rmsle"])
    describe.link_metrics(model_id, trained.metrics)  # idempotent: nothing is logged twice
    assert len(mlflow.get_logged_model(model_id).metrics) == len(metrics)


def test_model_record_has_the_model_id(house_data: Dataset) -> None:
    import mlflow

    spec = registry.get("house_prices").spec
    model = registry.get("house_prices").build({"model": "linear"}).fit(house_data.X, house_data.y)
    with mlflow.start_run(experiment_id=tracking.experiment(spec, create=True)):
        record = tracking.log_model(model, spec, house_data.X.head(3), model.predict(house_data.X.head(3)))
    assert record.model_id and mlflow.get_logged_model(record.model_id).model_id == record.model_id


def test_descriptions_are_overwritten_not_appended(house_data: Dataset) -> None:
    train.run("house_prices", {"model": "linear"}, dataset=house_data)
    second = train.run("house_prices", {"model": "linear"}, dataset=house_data)
    client = _client()
    spec = registry.get("house_prices").spec
    assert client.get_registered_model("house_prices").description.count(spec.title) == 1
    assert "version 2" in client.get_run(second.run_id).data.tags[describe.NOTE_TAG]


def test_signature_hides_the_integer_column_hint() -> None:
    frame = pd.DataFrame({"a": [1, 2, 3]})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tracking.signature_for(frame, np.array([1, 2, 3]))
        tracking.signature_for(np.array([[1, 2]]), np.array([1]))
    assert not [w for w in caught if "integer column" in str(w.message)]


def test_cli_does_not_print_mlflow_registry_chatter(capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch, house_data: Dataset) -> None:
    from mlflow.tracking._model_registry import fluent

    monkeypatch.setattr(fluent, "eprint", fluent.eprint)  # restored after the test
    monkeypatch.setattr(train, "load_dataset", lambda *a, **k: house_data)
    for _ in range(2):
        assert cli.main(["train", "house_prices", "--param", "model=linear"]) == 0
    out = capsys.readouterr()
    text = out.out + out.err
    assert "v2" in text
    assert "already exists" not in text and "Created version" not in text


def test_link_metrics_attaches_metrics_to_a_model_without_any() -> None:
    import mlflow
    from sklearn.linear_model import LinearRegression

    spec = registry.get("house_prices").spec
    model = LinearRegression().fit(np.arange(6.0).reshape(-1, 1), np.arange(6.0))
    with mlflow.start_run(experiment_id=tracking.experiment(spec, create=True)) as run:
        info = mlflow.sklearn.log_model(model, name="model")
    assert not mlflow.get_logged_model(info.model_id).metrics
    describe.link_metrics(info.model_id, {"cv_rmsle": 0.2, "nan": float("nan")})  # after the run ended
    assert [(m.key, m.value) for m in mlflow.get_logged_model(info.model_id).metrics] == [("cv_rmsle", 0.2)]
    assert mlflow.active_run() is None and _client().get_run(run.info.run_id).data.metrics == {"cv_rmsle": 0.2}
