"""Streaming scoring (``mlprojects predict --input F --output F``): chunked reads and writes that give exactly
the in-memory predictions, errors naming the file's row and column, and no half-written output."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from common import predict, stream
from common.cli import main
from common.errors import InputError
from tests.scoring_fixtures import champion_store, champions, raw_rows  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.usefixtures("champions"), pytest.mark.xdist_group("stream")]
BATCH = 128


def _write(frame: pd.DataFrame, path: Path) -> Path:
    suffix = path.suffix
    if suffix == ".parquet":
        frame.to_parquet(path, index=False, row_group_size=100)  # row groups smaller than a batch, too
    elif suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_json(path, orient="records", lines=True)
    return path


def _read(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".csv":
        return pd.read_csv(path, keep_default_na=False) if "spam" in path.name else pd.read_csv(path)
    return pd.read_json(path, lines=True)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".part-" in p.name)


@pytest.mark.parametrize(("project", "rows", "formats"), [
    ("house_prices", 700, [(".parquet", ".parquet"), (".csv", ".csv"), (".jsonl", ".parquet")]),
    ("churn", 700, [(".parquet", ".parquet"), (".csv", ".jsonl")]),
    ("spam", 600, [(".parquet", ".parquet"), (".csv", ".csv")]),
    ("mnist", 300, [(".parquet", ".parquet")]),
])
def test_streaming_equals_in_memory(tmp_path: Path, project: str, rows: int,
                                    formats: list[tuple[str, str]]) -> None:
    frame = raw_rows(project, rows)
    assert len(frame) > 2 * BATCH
    for src_suffix, out_suffix in formats:
        src = _write(frame, tmp_path / f"{project}-in{src_suffix}")
        expected = predict.predict_cli(project, input_path=str(src))
        out = tmp_path / f"{project}-out-{src_suffix[1:]}{out_suffix}"
        result = stream.score_file(project, src, out, batch_size=BATCH, progress=False)
        # (a CSV line holding only an empty text is a blank line, which pandas skips in both paths)
        assert (result.rows, result.scored, result.rejected) == (len(expected), len(expected), 0)
        assert len(expected) >= len(frame) - 2
        got = _read(out)
        pd.testing.assert_frame_equal(got, expected, check_dtype=False, check_exact=False, rtol=1e-12)
        assert _leftovers(tmp_path) == []


def test_csv_chunks_read_category_columns_as_a_whole_file_read_does(tmp_path: Path) -> None:
    """A category whose values look numeric in one chunk (codes) and not in another stays a category."""
    frame = raw_rows("churn", 3 * BATCH)
    frame["PaymentMethod"] = frame["PaymentMethod"].astype(object)
    frame.loc[: BATCH - 1, "PaymentMethod"] = "12"  # the whole first chunk: an unseen level that looks numeric
    src = _write(frame, tmp_path / "codes.csv")
    expected = predict.predict_cli("churn", input_path=str(src))
    result = stream.score_file("churn", src, tmp_path / "out.csv", batch_size=BATCH, progress=False)
    assert result.scored == len(frame) and result.rejected == 0
    pd.testing.assert_frame_equal(_read(tmp_path / "out.csv"), expected, check_dtype=False, rtol=1e-12)


def test_pipeline_never_sees_more_than_a_batch(tmp_path: Path) -> None:
    """Constant memory by construction: each call scores at most ``batch_size`` rows."""
    from common import tracking

    model = tracking.load_model("churn")
    seen: list[int] = []

    class Spy:
        classes_ = model.classes_

        def predict(self, X):
            seen.append(len(X))
            return model.predict(X)

        def predict_proba(self, X):
            return model.predict_proba(X)

    src = _write(raw_rows("churn", 1000), tmp_path / "rows.parquet")
    stream.score_file("churn", src, tmp_path / "out.parquet", batch_size=BATCH, progress=False, model=Spy())
    assert sum(seen) == 1000 and max(seen) == BATCH and len(seen) == 8


def _with_bad_rows(tmp_path: Path) -> tuple[pd.DataFrame, Path]:
    frame = raw_rows("churn", 1000).astype({"tenure": object, "MonthlyCharges": object})
    frame.loc[937, "tenure"] = "abc"
    frame.loc[415, "MonthlyCharges"] = -5.0
    return frame, _write(frame, tmp_path / "rows.csv")


def test_bad_row_names_the_row_of_the_file_and_leaves_no_output(tmp_path: Path) -> None:
    frame, src = _with_bad_rows(tmp_path)
    out = tmp_path / "out.parquet"
    with pytest.raises(InputError) as err:
        stream.score_file("churn", src, out, batch_size=BATCH, progress=False)
    message = str(err.value)
    assert str(src) in message and "index 415" in message and "column 'MonthlyCharges'" in message
    assert "batch 4" in message  # rows 384-511
    assert not out.exists() and _leftovers(tmp_path) == []


def test_skip_writes_rejects_and_scores_the_rest(tmp_path: Path, capsys) -> None:
    frame, src = _with_bad_rows(tmp_path)
    out = tmp_path / "out.csv"
    code = main(["predict", "churn", "--input", str(src), "--output", str(out), "--batch-size", str(BATCH),
                 "--on-error", "skip"])
    assert code == 0
    err = capsys.readouterr().err
    assert "Refused 2 of 1,000 rows" in err and "out.rejects.csv" in err
    rejects = pd.read_csv(tmp_path / "out.rejects.csv")
    assert rejects["row"].tolist() == [415, 937]
    assert rejects["column"].tolist() == ["MonthlyCharges", "tenure"]
    assert "'abc'" in rejects["reason"].iloc[1]
    got = pd.read_csv(out)
    good = frame.drop(index=[415, 937])
    assert got["customerID"].tolist() == good["customerID"].tolist()  # input order, ids kept
    expected = predict.predict_cli("churn", input_path=str(_write(good, tmp_path / "good.csv")))
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)


def test_empty_and_header_only_inputs_are_clear_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    header = tmp_path / "header.csv"
    header.write_text("customerID,tenure,MonthlyCharges\n")
    no_rows = tmp_path / "none.parquet"
    raw_rows("churn", 5).head(0).to_parquet(no_rows)
    blank_jsonl = tmp_path / "blank.jsonl"
    blank_jsonl.write_text("")
    for src, words in [(empty, "is empty"), (header, "no rows"), (no_rows, "no rows"), (blank_jsonl, "is empty")]:
        out = tmp_path / "out.parquet"
        with pytest.raises(InputError, match=words):
            stream.score_file("churn", src, out, progress=False)
        assert not out.exists() and _leftovers(tmp_path) == []


def test_interrupted_run_keeps_the_previous_output(tmp_path: Path, monkeypatch) -> None:
    src = _write(raw_rows("house_prices", 700), tmp_path / "rows.parquet")
    out = tmp_path / "out.parquet"
    out.write_bytes(b"previous results")
    real = stream.score_chunk
    calls = {"n": 0}

    def dies_on_the_third(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(stream, "score_chunk", dies_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        stream.score_file("house_prices", src, out, batch_size=BATCH, progress=False)
    assert out.read_bytes() == b"previous results"
    assert _leftovers(tmp_path) == []


def test_cli_streams_parquet_to_parquet(tmp_path: Path, capsys) -> None:
    frame = raw_rows("house_prices", 300)
    src = _write(frame, tmp_path / "rows.parquet")
    out = tmp_path / "pred.parquet"
    assert main(["predict", "house_prices", "--input", str(src), "--output", str(out), "--batch-size", "100"]) == 0
    assert "Wrote 300 predictions" in capsys.readouterr().err
    got = pd.read_parquet(out)
    assert list(got.columns) == ["Id", "SalePrice"] and got["Id"].tolist() == frame["Id"].tolist()


@pytest.mark.parametrize("project", ["stocks", "recommender"])
@pytest.mark.parametrize("flags", [["--batch-size", "10"], ["--engine", "spark"]])
def test_not_row_scorable_projects_say_what_to_use(project: str, flags: list[str], tmp_path: Path, capsys) -> None:
    code = main(["predict", project, "--input", str(tmp_path / "in.parquet"), "--output",
                 str(tmp_path / "out.parquet"), *flags])
    err = capsys.readouterr().err
    assert code != 0 and "not batch-scorable" in err and f"mlprojects predict {project} --input" in err


def test_unknown_formats_and_same_file_are_refused(tmp_path: Path) -> None:
    src = _write(raw_rows("churn", 10), tmp_path / "rows.csv")
    with pytest.raises(InputError, match="use .parquet, .csv or .jsonl"):
        stream.score_file("churn", src, tmp_path / "out.xlsx", progress=False)
    with pytest.raises(InputError, match="is the input file"):
        stream.score_file("churn", src, src, progress=False)
