"""One declarative raw-input contract per project, enforced by a pipeline step.

A project declares its ``InputContract`` next to its spec (``projects/<p>/contract.py``): per raw column its
kind (``number``, ``category`` or ``text``), whether it must be present, a range, whether a missing value is
allowed; plus size limits and the policy for rows whose every column is missing. ``ValidateInput(contract)``
is the first step of the project's pipeline, so the same checks run wherever the pipeline runs: in-process
(``model.predict``), in ``mlprojects predict`` and behind ``mlprojects serve`` (which answers 400 with the
exception's message). It checks at fit time and at predict time, and passes its input through unchanged: it
never converts, imputes or drops a value, so a model's metrics on valid data are exactly what they were.

Size limits are per value (``max_chars`` of a text or category; mnist, stocks and the recommender check
their own shapes), not per call: how many rows one in-process call scores is the caller's choice (streamed
files are scored in batches), and a request to ``mlprojects serve`` is bounded by its body limit (413).

Categories: an unseen level is fine (the encoders after this step handle it); a value of the wrong type (a
number where a category string is expected) is an error. Every error is an ``InputError`` naming the row
(its position and, for a DataFrame, its index label), the column, the value and what was expected.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from common.errors import InputError

Kind = Literal["number", "category", "text"]
# How many offending values an error message shows at most (the first one is always named in full).
_SHOWN = 3
_VALUE_CHARS = 60


@dataclass(frozen=True)
class ColumnRule:
    """What one raw column may hold.

    Args:
        kind: ``number`` (a number, or a string that parses as one), ``category`` (a string; unseen levels
            are fine) or ``text`` (a string of at most ``max_chars`` characters).
        required: the column must be present (a missing column is an error naming it).
        min, max: inclusive bounds of a number.
        allow_missing: a missing value (None, NaN, or a blank string) is accepted.
        tokens: strings accepted in a number column besides numbers (e.g. ``Yes``/``No`` flags).
        max_chars: the longest text or category string accepted.
    """

    kind: Kind
    required: bool = True
    min: float | None = None
    max: float | None = None
    allow_missing: bool = True
    tokens: tuple[str, ...] = ()
    max_chars: int | None = None


@dataclass(frozen=True)
class InputContract:
    """A project's raw-input contract.

    Args:
        project: the project's name (it starts every message).
        columns: raw column name -> its rule; other columns are ignored (never read).
        what: what one row is, for messages ("raw customer columns (Telco or Kaggle schema)").
        all_missing: ``error`` (a row whose every declared column present is missing is refused) or
            ``allow``.
        as_frame: turns an accepted raw input (list of row dicts, list of texts...) into a DataFrame with the
            declared columns; it must raise ``InputError`` for an input it does not accept.
    """

    project: str
    columns: Mapping[str, ColumnRule]
    what: str
    all_missing: Literal["error", "allow"] = "error"
    as_frame: Callable[[Any], pd.DataFrame] | None = field(default=None, compare=False, repr=False)

    def frame(self, X: Any) -> pd.DataFrame:
        """The raw input as a DataFrame (the input itself when it already is one)."""
        if self.as_frame is not None:
            return self.as_frame(X)
        if isinstance(X, pd.DataFrame):
            return X
        raise InputError(f"{self.project} expects a DataFrame of {self.what}; got {type(X).__name__}.")

    def check(self, X: Any, action: str = "predict") -> None:
        """Raise ``InputError`` for the first broken rule (checked in this order: rows, columns, values).

        Args:
            X: the raw input.
            action: ``predict`` or ``fit``, for the empty-input message.
        """
        # An empty list or array never reaches as_frame: "no rows" is the one message for every empty input.
        frame = pd.DataFrame() if _is_empty(X) else self.frame(X)
        if len(frame) == 0:
            raise InputError(f"no rows to {action}: {self.project} expects at least one row of {self.what}.")
        missing = [c for c, rule in self.columns.items() if rule.required and c not in frame.columns]
        if missing:
            raise InputError(f"{self.project} input is missing required column(s) {', '.join(missing)}; "
                             f"it expects {self.what}.")
        present = [c for c in self.columns if c in frame.columns]
        all_missing = np.ones(len(frame), dtype=bool)
        for column in present:
            values = frame[column]
            if isinstance(values, pd.DataFrame):
                raise InputError(f"{self.project} input has more than one column named {column!r}.")
            is_missing = _check_column(self, column, self.columns[column], values)
            all_missing &= is_missing
        if self.all_missing == "error" and present and all_missing.any():
            row = int(np.flatnonzero(all_missing)[0])
            raise InputError(
                f"{self.project} input {_where(frame.index, row)} has every column missing "
                f"({', '.join(present[:8])}{' ...' if len(present) > 8 else ''}); expected at least one value: "
                f"a row with no data cannot be scored. Drop it before predicting."
            )


def _is_empty(X: Any) -> bool:
    return (isinstance(X, list | tuple) and len(X) == 0) or (isinstance(X, np.ndarray) and X.size == 0 and X.ndim <= 1)


def _where(index: pd.Index, row: int) -> str:
    """'row 3' or 'row 3 (index 'c-17')' when the index label differs from the position."""
    label = index[row]
    label = label.item() if isinstance(label, np.generic) else label
    return f"row {row}" if label == row else f"row {row} (index {label!r})"


def _show(value: Any) -> str:
    """The value as the caller wrote it, cut when long; its type too when it is not a string."""
    value = value.item() if isinstance(value, np.generic) else value  # 3.0, not np.float64(3.0)
    text = repr(value) if isinstance(value, str) else f"{value!r} (type {type(value).__name__})"
    return text if len(text) <= _VALUE_CHARS else text[:_VALUE_CHARS] + f"... ({len(text)} chars)"


def _fail(contract: InputContract, column: str, values: pd.Series, bad: np.ndarray, expected: str) -> None:
    rows = np.flatnonzero(bad)
    if not len(rows):
        return
    first = int(rows[0])
    more = f" ({len(rows)} rows in all, e.g. rows {', '.join(str(int(r)) for r in rows[:_SHOWN])})" if len(
        rows) > 1 else ""
    raise InputError(f"{contract.project} input {_where(values.index, first)}, column {column!r}: got "
                     f"{_show(values.iloc[first])}; expected {expected}{more}.")


def _all_strings(values: pd.Series) -> bool:
    """Every non-missing value is a string (a string dtype, or an object column of strings)."""
    if values.dtype != object:
        return pd.api.types.is_string_dtype(values.dtype)
    return pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty")


def _per_value(values: pd.Series, func: Callable[[Any], Any], missing: Any) -> np.ndarray:
    """``func`` of each row's value, computed once per distinct value (columns repeat a few levels, and
    per-row Python calls were most of the cost on 100k-row batches); ``missing`` for missing rows."""
    try:
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
    except TypeError:  # unhashable values (lists, dicts): one call per row
        return np.asarray([missing if v is None else func(v) for v in values])
    return np.asarray([*(func(u) for u in uniques), missing])[codes]


def _all_numbers(values: pd.Series) -> bool:
    """An object column whose non-missing values are all Python/NumPy numbers (not bools)."""
    return values.dtype == object and pd.api.types.infer_dtype(values, skipna=True) in (
        "integer", "floating", "mixed-integer-float", "empty")


def _missing_mask(values: pd.Series, blank: bool = True) -> np.ndarray:
    """None, NaN, NA and (when ``blank``) blank (whitespace-only) strings count as missing."""
    mask = values.isna().to_numpy()
    if blank and (values.dtype == object or pd.api.types.is_string_dtype(values.dtype)):
        if _all_strings(values):  # vectorised: the common case, and 100k-row batches must stay cheap
            blank = _per_value(values, lambda v: not v.strip(), False).astype(bool)
        elif _all_numbers(values):
            blank = np.zeros(len(values), dtype=bool)
        else:
            blank = _per_value(values, lambda v: isinstance(v, str) and not v.strip(), False).astype(bool)
        mask = mask | blank
    return mask


def _range_text(rule: ColumnRule) -> str:
    if rule.min is not None and rule.max is not None:
        return f" from {rule.min:g} to {rule.max:g}"
    if rule.min is not None:
        return f" >= {rule.min:g}"
    if rule.max is not None:
        return f" <= {rule.max:g}"
    return ""


def _check_column(contract: InputContract, column: str, rule: ColumnRule, values: pd.Series) -> np.ndarray:
    """Check one column; return its missing mask (for the all-missing-row policy)."""
    # An empty text is still a text (it predicts like any other); a blank number or category is a gap.
    missing = _missing_mask(values, blank=rule.kind != "text")
    optional = ", or missing" if rule.allow_missing else ""
    if not rule.allow_missing:
        _fail(contract, column, values, missing, f"a {rule.kind} value: this column may not be missing")
    if rule.kind == "number":
        if pd.api.types.is_bool_dtype(values.dtype):
            numbers = values.astype(float).to_numpy()
        elif pd.api.types.is_numeric_dtype(values.dtype):
            numbers = values.to_numpy(dtype=float, na_value=np.nan)
        elif _all_numbers(values):
            numbers = pd.to_numeric(values).to_numpy(dtype=float, na_value=np.nan)
        else:
            # Numbers sent as text ("42.5", " 7 ") are fine: the feature steps parse them the same way.
            stripped = values.map(lambda v: v.strip() if isinstance(v, str) else v)
            token = stripped.isin(rule.tokens).to_numpy() if rule.tokens else np.zeros(len(values), bool)
            parsed = pd.to_numeric(stripped.where(~token & ~missing, None), errors="coerce")
            numbers = parsed.to_numpy(dtype=float, na_value=np.nan)
            bad = ~missing & ~token & np.isnan(numbers)
            accepted = f" or one of {', '.join(map(repr, rule.tokens))}" if rule.tokens else ""
            _fail(contract, column, values, bad, f"a number{_range_text(rule)}{accepted}{optional}")
        with np.errstate(invalid="ignore"):
            bad = ~missing & ~np.isnan(numbers) & ~np.isfinite(numbers)
            _fail(contract, column, values, bad, f"a finite number{_range_text(rule)}{optional}")
            out = np.zeros(len(values), dtype=bool)
            if rule.min is not None:
                out |= numbers < rule.min
            if rule.max is not None:
                out |= numbers > rule.max
        _fail(contract, column, values, out & ~missing, f"a number{_range_text(rule)}{optional}")
        return missing
    if isinstance(values.dtype, pd.CategoricalDtype):
        categories = values.cat.categories
        wrong = [c for c in categories if not isinstance(c, str)]
        bad = values.isin(wrong).to_numpy() & ~missing
        strings = values.astype(object)
    else:
        strings = values
        if pd.api.types.is_string_dtype(values.dtype) and values.dtype != object:
            bad = np.zeros(len(values), dtype=bool)
        else:
            # Bytes are text too (decoded as UTF-8 by the text steps).
            allowed = (str, bytes) if rule.kind == "text" else str
            bad = (np.zeros(len(values), dtype=bool) if _all_strings(values)
                   else ~missing & ~_per_value(values, lambda v: isinstance(v, allowed), False).astype(bool))
    what = "text" if rule.kind == "text" else "a category (a string; unseen values are fine)"
    _fail(contract, column, values, bad, f"{what}{optional}")
    if rule.max_chars is not None:
        lengths = _per_value(strings, lambda v: len(v) if isinstance(v, str | bytes) else 0, 0).astype(np.int64)
        too_long = lengths > rule.max_chars
        if too_long.any():
            row = int(np.flatnonzero(too_long)[0])
            raise InputError(
                f"{contract.project} input {_where(values.index, row)}, column {column!r}: got a {rule.kind} of "
                f"{lengths[row]:,} characters ({_show(strings.iloc[row])}); expected at most "
                f"{rule.max_chars:,} characters."
            )
    return missing


class ValidateInput(TransformerMixin, BaseEstimator):
    """First pipeline step: check raw input against the project's ``InputContract``; pass it on unchanged.

    Stateless: ``fit`` checks the training rows (so a training file with a broken row fails loudly, naming
    it) and learns nothing; ``transform`` checks and returns ``X`` itself.

    Args:
        contract: the project's contract.
    """

    def __init__(self, contract: InputContract | None = None) -> None:
        self.contract = contract

    def _check(self, X: Any, action: str) -> None:
        if self.contract is None:
            raise InputError("ValidateInput needs a contract (the project's InputContract).")
        self.contract.check(X, action)

    def fit(self, X: Any, y: Any = None) -> ValidateInput:
        self._check(X, "fit")
        self.fitted_ = True
        return self

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> Any:
        # One check, not two (fit then transform): it walks every value of the training rows.
        self.fit(X, y)
        return X

    def transform(self, X: Any) -> Any:
        self._check(X, "predict")
        return X

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """The input columns, unchanged."""
        return np.asarray(list(input_features) if input_features is not None else list(self.contract.columns),
                          dtype=object)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.input_tags.allow_nan = True
        tags.input_tags.string = True
        tags.input_tags.categorical = True
        tags.input_tags.two_d_array = False
        return tags


def rows_frame(X: Any) -> pd.DataFrame | None:
    """Raw tabular input as a DataFrame: a DataFrame as it is, a list of row dicts, or one row dict; None for
    anything else (the caller says what it expects)."""
    if isinstance(X, pd.DataFrame):
        return X
    if isinstance(X, list | tuple) and X and isinstance(X[0], dict):
        return pd.DataFrame(list(X))
    if isinstance(X, dict):
        return pd.DataFrame([X])
    return None


# A bound on one request's cost: 100k characters is ~50 pages, far beyond any SMS, e-mail or tweet seen.
MAX_TEXT_CHARS = 100_000


def text_contract(project: str) -> InputContract:
    """The raw-input contract of a text project (spam, sentiment).

    The input is texts: a list/Series/array of strings, one string, or a DataFrame with a ``text`` column
    (what ``mlflow models serve`` passes). Per text:

    * a string (or UTF-8 bytes) is accepted; an empty string is a text like any other and predicts;
    * None, NaN or a number is an ``InputError`` naming the row and the value: a missing message cannot be
      classified, and a number is a broken client;
    * a text longer than ``MAX_TEXT_CHARS`` characters is an ``InputError`` naming the row (texts up to that
      size are accepted, and the pipeline's ``TextInput`` step still cuts them to its ``max_chars``);
    * no texts at all (``[]``, an empty file) is an ``InputError``: "no rows to predict".

    All-missing rows: a row is one text, so a missing text is the all-missing row, and it is refused.
    """
    from common.text import TEXT_COLUMN, text_frame

    return InputContract(
        project=project,
        columns={TEXT_COLUMN: ColumnRule("text", required=True, allow_missing=False, max_chars=MAX_TEXT_CHARS)},
        what="texts (a list of strings, or a DataFrame with a 'text' column)",
        all_missing="error",
        as_frame=text_frame,
    )
