"""Predicting with registered pipelines on raw input files or texts."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from common import registry, tracking
from common.errors import InputError, MLProjectsError

ID_COLUMNS = ("id", "textid", "customerid", "row", "date")

# Tasks whose model does not map one input row to one prediction, and what to use for them instead.
_NOT_ROW_SCORABLE = {
    "forecast": ("its forecast for a day needs the window of earlier bars (up to 64 days) of the same "
                 "series, so rows cannot be scored one by one or split between workers",
                 "score a price history in one piece with `mlprojects predict {name} --input history.csv` "
                 "(one forecast per bar, each from the bars before it)"),
    "recommendation": ("one input is a query (a liked title) answered with a ranked list of titles, not a "
                       "row with one prediction",
                       "ask for recommendations with `mlprojects predict {name} --input titles.csv` or over "
                       "REST with `mlprojects serve {name}`"),
}


class NotRowScorableError(MLProjectsError):
    """The project's model does not predict row by row, so it cannot be streamed or scored on Spark."""


def row_scorable(spec: Any) -> bool:
    """True when the project's champion predicts each input row on its own (streaming and Spark apply)."""
    return spec.task not in _NOT_ROW_SCORABLE


def require_row_scorable(spec: Any) -> None:
    """Raise ``NotRowScorableError`` saying why and what to use instead when the project is not row-scorable."""
    if row_scorable(spec):
        return
    why, instead = _NOT_ROW_SCORABLE[spec.task]
    raise NotRowScorableError(
        f"{spec.name} is not batch-scorable by streaming or Spark: {why}. Instead, {instead.format(name=spec.name)}."
    )


def id_columns(columns: Iterable[Any]) -> list[Any]:
    """The input columns copied to the output beside the predictions (Id, textID, customerID, row, Date)."""
    return [c for c in columns if str(c).lower() in ID_COLUMNS]


def read_table(path: Path, texts: bool = False) -> pd.DataFrame:
    """Read raw input rows from CSV, JSON lines (``.jsonl``/``.ndjson``), JSON or Parquet.

    Args:
        path: the file.
        texts: the rows are texts: a CSV cell is read as written, so an empty cell is the empty text and a
            message "NA" stays "NA" (pandas would make both missing, which the text contracts refuse).

    Raises:
        InputError: for a missing file or an unknown format.
    """
    if not path.is_file():
        raise InputError(f"Input file {path} does not exist.")
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".txt", ".tsv"):
            return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", keep_default_na=not texts)
        if suffix in (".jsonl", ".ndjson"):
            return pd.read_json(path, lines=True)
        if suffix == ".json":
            return pd.read_json(path)
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
    except (ValueError, pd.errors.ParserError) as exc:
        raise InputError(f"Could not read {path}: {exc}") from exc
    raise InputError(f"Unknown input format '{suffix}' for {path}: use .csv, .jsonl, .json or .parquet.")


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """Write predictions as CSV, or JSON lines when the suffix says so."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_csv(path, index=False)


NOT_PIXELS = {"id", "row", "index", "label", "digit", "target", "y"}


def model_input(input_kind: str, frame: pd.DataFrame | None, texts: list[str] | None) -> Any:
    """Turn a file's rows (or ``--text`` values) into what the project's pipeline takes."""
    if texts:
        if input_kind != "text":
            raise InputError("--text is only for text projects (spam, sentiment).")
        return list(texts)
    if frame is None:
        raise InputError("Give --input FILE" + (" or --text" if input_kind == "text" else "") + ".")
    if input_kind == "text":
        if "text" not in frame.columns:
            raise InputError(f"Text input needs a 'text' column; found {list(frame.columns)}.")
        return frame["text"].tolist()
    if input_kind == "array":
        # A CSV of images often carries an id or its label beside the pixel columns: never feed those.
        # The table goes to the pipeline as it is (not as an array), so its pixel columns are matched by
        # name and a non-numeric one is named in the error instead of silently dropped.
        extra = [c for c in frame.columns if str(c).lower() in NOT_PIXELS]
        return frame.drop(columns=extra)
    if input_kind == "titles":
        col = "title" if "title" in frame.columns else frame.columns[0]
        return frame[col].astype(str).tolist()
    return frame


def predict_frame(model: Any, X: Any, target: str) -> pd.DataFrame:
    """Predictions (plus class probabilities when the model has them) as a table."""
    pred = model.predict(X)
    if isinstance(pred, pd.DataFrame):
        return pred
    out = pd.DataFrame({target: np.asarray(pred)})
    if hasattr(model, "predict_proba"):
        try:
            proba = np.asarray(model.predict_proba(X))
            for i, cls in enumerate(getattr(model, "classes_", range(proba.shape[1]))):
                out[f"proba_{cls}"] = proba[:, i]
        except (AttributeError, NotImplementedError):
            pass
    return out


def predict_cli(project: str, input_path: str | None = None, texts: list[str] | None = None,
                version: str | None = None, alias: str | None = None, run_id: str | None = None) -> pd.DataFrame:
    """Load a registered pipeline (the champion by default) and predict on a file or texts."""
    spec = registry.get_spec(project)
    frame = read_table(Path(input_path), texts=spec.input_kind == "text") if input_path else None
    X = model_input(spec.input_kind, frame, texts)
    model = tracking.load_model(spec.name, alias=alias, version=version, run_id=run_id, make_target=spec.make_target)
    out = predict_frame(model, X, spec.target)
    if frame is not None:
        ids = id_columns(frame.columns)
        for col in reversed(ids):
            out.insert(0, col, frame[col].to_numpy())
    elif texts:
        out.insert(0, "text", texts)
    return out
