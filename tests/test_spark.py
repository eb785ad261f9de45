"""Scoring on Spark (``mlprojects predict --engine spark``): a real local[2] SparkSession on 127.0.0.1 scores
through ``mlflow.pyfunc.spark_udf`` and gives the in-process predictions, probabilities included."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from common import predict, spark_scoring
from common.cli import main
from common.errors import InputError
from tests.scoring_fixtures import champion_store, champions, raw_rows  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.spark, pytest.mark.usefixtures("champions"), pytest.mark.xdist_group("spark")]


def _skip_without_spark() -> None:
    pytest.importorskip("pyspark", reason="pyspark is not installed (the spark extra)")
    if spark_scoring.java_executable() is None:
        pytest.skip("no Java runtime: Spark needs one (`.ci/run` installs default-jre-headless)")


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    """One local[2] session for the module (starting one takes about 10 s), bound to 127.0.0.1."""
    _skip_without_spark()
    with spark_scoring.session("local[2]", driver_memory="1g") as session:
        assert session.conf.get("spark.driver.host") == "127.0.0.1"
        yield session


@pytest.mark.parametrize("project", ["house_prices", "spam", "churn", "mnist"])
def test_spark_equals_in_process(spark, tmp_path: Path, project: str) -> None:
    frame = raw_rows(project, 400)
    src = tmp_path / "rows.parquet"
    frame.to_parquet(src, index=False)
    expected = predict.predict_cli(project, input_path=str(src))
    out = tmp_path / "scored"
    result = spark_scoring.score(project, str(src), str(out), spark=spark)
    assert result.rows == len(frame) and result.master == "local[2]"
    got = pd.read_parquet(out)  # Spark keeps the input order across its part files
    assert list(got.columns) == list(expected.columns)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, check_exact=False, rtol=1e-12)
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_spark_reads_a_parquet_folder_and_replaces_the_output(spark, tmp_path: Path) -> None:
    folder = tmp_path / "rows"
    folder.mkdir()
    frame = raw_rows("churn", 300)
    frame.iloc[:150].to_parquet(folder / "part-0.parquet", index=False)
    frame.iloc[150:].to_parquet(folder / "part-1.parquet", index=False)
    out = tmp_path / "scored"
    out.mkdir()
    (out / "old.txt").write_text("previous")
    spark_scoring.score("churn", str(folder), str(out), spark=spark)
    got = pd.read_parquet(out)
    assert sorted(got["customerID"]) == sorted(frame["customerID"]) and not (out / "old.txt").exists()


def test_spark_bad_row_is_a_clear_error_and_leaves_the_output(spark, tmp_path: Path) -> None:
    frame = raw_rows("churn", 50).astype({"tenure": str})  # a text column: numbers as strings are accepted
    frame.loc[7, "tenure"] = "abc"
    src = tmp_path / "rows.parquet"
    frame.to_parquet(src, index=False)
    out = tmp_path / "scored"
    with pytest.raises(spark_scoring.SparkScoringError) as err:
        spark_scoring.score("churn", str(src), str(out), spark=spark)
    assert "column 'tenure'" in str(err.value) and "'abc'" in str(err.value)
    assert not out.exists() and not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_spark_missing_input_is_a_clear_error(spark, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        spark_scoring.score("churn", str(tmp_path / "nowhere.parquet"), str(tmp_path / "out"), spark=spark)


def test_cli_engine_spark_end_to_end(tmp_path: Path, capsys) -> None:
    """The command a user runs: its own session on local[2], started and stopped."""
    _skip_without_spark()
    frame = raw_rows("house_prices", 200)
    src = tmp_path / "rows.parquet"
    frame.to_parquet(src, index=False)
    out = tmp_path / "scored"
    code = main(["predict", "house_prices", "--engine", "spark", "--master", "local[2]", "--driver-memory", "1g",
                 "--input", str(src), "--output", str(out)])
    assert code == 0, capsys.readouterr().err
    assert "Wrote 200 predictions" in capsys.readouterr().err
    assert pd.read_parquet(out)["Id"].tolist() == frame["Id"].tolist()


def test_missing_java_says_how_to_install_it(monkeypatch, tmp_path: Path) -> None:
    pytest.importorskip("pyspark", reason="pyspark is not installed (the spark extra)")
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    with pytest.raises(spark_scoring.SparkUnavailableError, match="default-jre-headless"):
        spark_scoring.require_spark()


def test_spark_reads_a_table_by_name(spark, tmp_path: Path) -> None:
    frame = raw_rows("churn", 120)
    src = tmp_path / "rows.parquet"
    frame.to_parquet(src, index=False)
    spark.read.parquet(str(src)).createOrReplaceTempView("churn_rows")
    expected = predict.predict_cli("churn", input_path=str(src))
    spark_scoring.score("churn", "churn_rows", str(tmp_path / "scored"), spark=spark)
    got = pd.read_parquet(tmp_path / "scored")
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, check_exact=False, rtol=1e-12)
