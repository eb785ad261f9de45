"""Contract of ``common.fastload`` with MLflow: on a real sqlite store both must agree on every scenario.

The fast path reads MLflow's private registry tables. For each scenario these tests ask MLflow
(``mlflow.sklearn.load_model`` / ``MlflowClient``) and the fast path (``fastload.model_dir`` +
``load_sklearn``), and the public entries (``tracking.load_model``, ``projects.load_pipeline``), and
assert that they agree: where MLflow serves a model the fast path serves the same one or ``None``;
where MLflow raises the fast path returns ``None`` and the public entry reports MLflow's error.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np
import pytest

PROJECT = "house_prices"  # a real project, so that projects.load_pipeline accepts it
X = np.array([[0.0], [1.0], [2.0]])


def _fit(slope: float) -> Any:
    from sklearn.linear_model import LinearRegression

    return LinearRegression().fit(np.array([[0.0], [1.0]]), np.array([0.0, slope]))


@pytest.fixture
def store(tmp_path: Path) -> str:
    """A fresh sqlite store with ``house_prices`` v1 (slope 1, ``@champion``) and v2 (slope 2)."""
    import mlflow

    from common import tracking

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert tracking.tracking_uri() == uri  # conftest points MLFLOW_TRACKING_URI at the same file
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = mlflow.MlflowClient()
    exp = client.create_experiment("contract", artifact_location=(tmp_path / "mlartifacts").as_uri())
    for slope in (1.0, 2.0):
        with mlflow.start_run(experiment_id=exp):
            mlflow.sklearn.log_model(_fit(slope), name="model", registered_model_name=PROJECT,
                                     serialization_format="cloudpickle", pip_requirements=["scikit-learn"])
    client.set_registered_model_alias(PROJECT, "champion", 1)
    return uri


def _sql(uri: str, statement: str, params: tuple = ()) -> None:
    """Write to the store behind MLflow's back (only where no public API produces the state)."""
    with closing(sqlite3.connect(uri.removeprefix("sqlite:///"))) as con, con:
        con.execute(statement, params)


def _agree(project: str, alias: str | None = None, version: int | None = None, *,
           pipeline: bool = False) -> tuple[Any, Any]:
    """Load through MLflow, the fast path and the public entry; assert they agree.

    Returns (MLflow's model or its exception, the fast path's model or ``None``).
    """
    import mlflow

    from common import fastload, tracking
    from common.errors import ModelNotFoundError

    uri = tracking.model_uri(project, alias, version)
    try:
        expected: Any = mlflow.sklearn.load_model(uri)
    except mlflow.exceptions.MlflowException as exc:
        expected = exc
    path = fastload.model_dir(tracking.tracking_uri(), project, alias or tracking.CHAMPION, version)
    fast = fastload.load_sklearn(path) if path is not None else None

    def public() -> Any:
        if pipeline:
            from projects import load_pipeline

            return load_pipeline(project, alias=alias, version=version)
        return tracking.load_model(project, alias=alias, version=version)

    if isinstance(expected, Exception):
        assert path is None, f"fast path served {path} where MLflow says: {expected}"
        with pytest.raises(ModelNotFoundError) as err:
            public()
        assert expected.message.splitlines()[0] in str(err.value)
        return expected, None
    np.testing.assert_allclose(public().predict(X), expected.predict(X))
    if path is not None:
        client = mlflow.MlflowClient()
        mv = client.get_model_version(project, version) if version is not None else \
            client.get_model_version_by_alias(project, alias or tracking.CHAMPION)
        download = client.get_model_version_download_uri(project, mv.version)
        assert path == Path(unquote(urlparse(download).path))
        # The digest tag read with SQL is the one MLflow reports for the same version.
        found = fastload.locate(tracking.tracking_uri(), project, alias or tracking.CHAMPION, version)
        assert found is not None and found.path == path and found.version == str(mv.version)
        assert found.sha256 == (mv.tags or {}).get(fastload.DIGEST_TAG)
        np.testing.assert_allclose(fast.predict(X), expected.predict(X))
    return expected, fast


def _slope(model: Any) -> float:
    return float(model.coef_[0])


# ------------------------------------------------------------------------------------------ scenarios
def test_a_normal_version_and_alias(store: str) -> None:
    for version, slope in ((1, 1.0), (2, 2.0)):
        expected, fast = _agree(PROJECT, version=version)
        assert fast is not None and _slope(fast) == pytest.approx(slope)
    expected, fast = _agree(PROJECT, pipeline=True)  # no alias: the champion
    assert fast is not None and _slope(fast) == pytest.approx(1.0)
    _agree(PROJECT, version=2, pipeline=True)


def test_b_deleted_version_is_not_served(store: str) -> None:
    import mlflow

    mlflow.MlflowClient().delete_model_version(PROJECT, 2)
    # MLflow keeps the row (status READY, storage_location intact) and only sets its stage.
    with closing(sqlite3.connect(store.removeprefix("sqlite:///"))) as con:
        row = con.execute("SELECT status, current_stage, storage_location FROM model_versions "
                          "WHERE name = ? AND version = 2", (PROJECT,)).fetchone()
    assert row[0] == "READY" and row[1] == "Deleted_Internal" and row[2]
    expected, _ = _agree(PROJECT, version=2)
    assert isinstance(expected, Exception)
    _agree(PROJECT, version=2, pipeline=True)
    assert _agree(PROJECT, version=1)[1] is not None


def test_c_alias_moved_from_v1_to_v2(store: str) -> None:
    import mlflow

    mlflow.MlflowClient().set_registered_model_alias(PROJECT, "champion", 2)
    expected, fast = _agree(PROJECT, alias="champion", pipeline=True)
    assert fast is not None and _slope(fast) == pytest.approx(2.0) == _slope(expected)


def test_d_deleted_alias(store: str) -> None:
    import mlflow

    mlflow.MlflowClient().delete_registered_model_alias(PROJECT, "champion")
    expected, _ = _agree(PROJECT, alias="champion")
    assert isinstance(expected, Exception)
    _agree(PROJECT, pipeline=True)


def test_e_renamed_registered_model(store: str) -> None:
    import mlflow

    mlflow.MlflowClient().rename_registered_model(PROJECT, "house_prices_renamed")
    for kwargs in ({"version": 1}, {"alias": "champion"}):
        assert isinstance(_agree(PROJECT, **kwargs)[0], Exception)
        expected, fast = _agree("house_prices_renamed", **kwargs)
        assert fast is not None and _slope(fast) == pytest.approx(1.0)
    _agree(PROJECT, pipeline=True)


def test_f_pending_registration_is_left_to_mlflow(store: str) -> None:
    import mlflow

    # No public API creates a PENDING_REGISTRATION version on a sqlite store (SqlAlchemyStore's
    # create_model_version always writes READY, the column default), so the status row is updated in sqlite.
    _sql(store, "UPDATE model_versions SET status = 'PENDING_REGISTRATION' WHERE name = ? AND version = 1",
         (PROJECT,))
    assert mlflow.MlflowClient().get_model_version(PROJECT, 1).status == "PENDING_REGISTRATION"
    for kwargs in ({"version": 1}, {"alias": "champion"}):
        expected, fast = _agree(PROJECT, **kwargs, pipeline=True)
        # MLflow 3.x loads a pending version anyway; the fast path does not vouch for it and falls back.
        assert fast is None and not isinstance(expected, Exception)


def test_g_alias_whose_version_was_deleted(store: str) -> None:
    import mlflow

    client = mlflow.MlflowClient()
    client.set_registered_model_alias(PROJECT, "challenger", 2)
    client.delete_model_version(PROJECT, 2)
    assert isinstance(_agree(PROJECT, alias="challenger")[0], Exception)  # MLflow drops the alias itself
    # An alias row left pointing at the deleted version (as a store written by another client could
    # have): MLflow says the version does not exist, and so must the fast path.
    _sql(store, "INSERT INTO registered_model_aliases (alias, version, name) VALUES ('challenger', 2, ?)",
         (PROJECT,))
    expected, _ = _agree(PROJECT, alias="challenger")
    assert isinstance(expected, Exception) and "not found" in expected.message
    assert _agree(PROJECT, alias="champion")[1] is not None


def test_h_unverified_schema_revision_falls_back(store: str, tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    import mlflow

    from common import fastload
    from common.errors import ModelNotFoundError
    from common.tracking import load_model

    assert fastload.model_dir(store, PROJECT, "champion", None) is not None
    copy = tmp_path / "copy.db"
    shutil.copy(store.removeprefix("sqlite:///"), copy)
    copy_uri = f"sqlite:///{copy}"
    _sql(copy_uri, "UPDATE alembic_version SET version_num = '0123456789ab'")
    with caplog.at_level(logging.DEBUG, logger="common.fastload"):
        assert fastload.model_dir(copy_uri, PROJECT, "champion", None) is None
        assert fastload.model_dir(copy_uri, PROJECT, None, 1) is None
    assert "0123456789ab" in caplog.text and "VERIFIED_SCHEMA_REVISIONS" in caplog.text
    # The caller then gets MLflow's own verdict on that store (here: it wants `mlflow db upgrade`).
    mlflow.set_tracking_uri(copy_uri)
    mlflow.set_registry_uri(copy_uri)
    with pytest.raises(mlflow.exceptions.MlflowException) as mlflow_err:
        mlflow.sklearn.load_model(f"models:/{PROJECT}@champion")
    with pytest.MonkeyPatch.context() as m:
        m.setenv("MLFLOW_TRACKING_URI", copy_uri)
        with pytest.raises(ModelNotFoundError) as err:
            load_model(PROJECT)
    assert mlflow_err.value.message.splitlines()[0] in str(err.value)


def test_i_digest_tag_agrees_with_mlflow(store: str) -> None:
    """``locate`` reads ``model_sha256`` from ``model_version_tags`` exactly as ``get_model_version`` reports it:
    absent, set, overwritten, on the right version only, after a rename, and deleted."""
    import mlflow

    from common import fastload, tracking

    client = mlflow.MlflowClient()
    uri = tracking.tracking_uri()

    def check() -> None:
        for name in [m.name for m in client.search_registered_models()]:
            for number in (1, 2):
                found = fastload.locate(uri, name, None, number)
                assert found is not None
                assert found.sha256 == client.get_model_version(name, str(number)).tags.get(fastload.DIGEST_TAG)
            champion = fastload.locate(uri, name, "champion", None)
            assert champion is not None
            assert champion.sha256 == client.get_model_version_by_alias(name, "champion").tags.get(fastload.DIGEST_TAG)

    check()  # no tag yet: None on both sides
    client.set_model_version_tag(PROJECT, "1", fastload.DIGEST_TAG, "a" * 64)
    client.set_model_version_tag(PROJECT, "2", "other", "b" * 64)  # another key on another version
    check()
    client.set_model_version_tag(PROJECT, "1", fastload.DIGEST_TAG, "c" * 64)
    check()
    client.rename_registered_model(PROJECT, "house_prices_renamed")
    check()
    assert fastload.locate(uri, "house_prices_renamed", None, 1).sha256 == "c" * 64
    client.delete_model_version_tag("house_prices_renamed", "1", fastload.DIGEST_TAG)
    check()
    _agree("house_prices_renamed", version=1)


def test_verified_revisions_include_the_installed_mlflow(tmp_path: Path) -> None:
    """An MLflow upgrade that changes the schema must fail here, not silently disable or break the fast path."""
    import mlflow

    from common import fastload

    uri = f"sqlite:///{tmp_path}/fresh.db"
    mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri).search_registered_models()  # creates the schema
    with closing(sqlite3.connect(tmp_path / "fresh.db")) as con:
        (revision,) = con.execute("SELECT version_num FROM alembic_version").fetchone()
    assert revision in fastload.VERIFIED_SCHEMA_REVISIONS, (
        f"MLflow {mlflow.__version__} creates stores at schema revision {revision!r}, which common/fastload.py "
        f"was not verified on (VERIFIED_SCHEMA_REVISIONS = {sorted(fastload.VERIFIED_SCHEMA_REVISIONS)}). "
        "Until it is added the fast path is off and every load goes through MLflow. Re-verify the contract: "
        "check how this MLflow stores deletions, aliases, renames and statuses (mlflow/store/model_registry/"
        "sqlalchemy_store.py), update fastload's queries if needed, add the revision to "
        "VERIFIED_SCHEMA_REVISIONS and run tests/test_fastload_contract.py."
    )
