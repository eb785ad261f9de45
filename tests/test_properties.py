"""Property-based tests (Hypothesis) over every project's predict entry point.

Random well-formed raw input never crashes and predicts one answer per row; random malformed input always
raises the project's ``InputError`` (never a scikit-learn, numpy or pandas error), naming the row and column
where the contract can. Models are trained once on synthetic data (shared with tests/test_input_contracts.py).

Determinism in CI: ``derandomize=True`` draws the same examples on every run and machine (Hypothesis derives
them from each test's source), and ``database=None`` keeps no example database between runs, so CI can never
replay something a developer's machine found. A failure found this way is pinned below with ``@example``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from common.errors import InputError
from tests.test_input_contracts import store, trained  # noqa: F401 (store is a fixture used by name)

pytestmark = pytest.mark.slow

PROPERTY = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


def _rejects(model: Any, X: Any, *parts: str) -> None:
    """``model.predict(X)`` raises the project's InputError and its message names every part."""
    with pytest.raises(InputError) as info:
        model.predict(X)
    for part in parts:
        assert part in str(info.value), f"{part!r} not in: {info.value}"


# --------------------------------------------------------------------------------- tabular (contracts)
def _contract(project: str) -> Any:
    from importlib import import_module

    return import_module(f"projects.{project}.contract").CONTRACT


def _good_value(draw: Any, rule: Any, seen: list[Any]) -> Any:
    """A value the rule accepts: a number in range (maybe as text), a seen or unseen level, or missing."""
    options = []
    if rule.kind == "number":
        low = rule.min if rule.min is not None else -1e6
        high = rule.max if rule.max is not None else low + 1e6
        number = st.one_of(st.integers(int(math.ceil(low)), int(math.floor(high))),
                           st.floats(low, high, allow_nan=False, allow_infinity=False))
        options += [number, number.map(str)]
        if rule.tokens:
            options.append(st.sampled_from(rule.tokens))
    else:
        options.append(st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=20)
                       .filter(lambda t: t.strip() != ""))
        if seen:
            options.append(st.sampled_from(seen))
    if rule.allow_missing:
        options.append(st.none())
    return draw(st.one_of(*options))


def _not_a_number(text: str, tokens: tuple[str, ...]) -> bool:
    if text.strip() == "" or text in tokens:
        return False
    try:
        float(text)
    except ValueError:
        return True
    return False


@st.composite
def _tabular_input(draw: Any, project: str, base: pd.DataFrame, malformed: bool) -> tuple[pd.DataFrame, str | None]:
    """A few real synthetic rows with random columns redrawn; when ``malformed``, one value made invalid."""
    contract = _contract(project)
    n = draw(st.integers(1, 4))
    rows = base.head(n).astype(object).reset_index(drop=True)
    columns = [c for c in contract.columns if c in rows.columns]
    for column in draw(st.lists(st.sampled_from(columns), max_size=6, unique=True)):
        rule = contract.columns[column]
        seen = [v for v in base[column].dropna().unique().tolist() if isinstance(v, str)][:20]
        for i in range(n):
            rows.at[i, column] = _good_value(draw, rule, seen)
    if not malformed:
        return rows, None
    column = draw(st.sampled_from(columns))
    rule = contract.columns[column]
    row = draw(st.integers(0, n - 1))
    if rule.kind == "number":
        bad = [st.text(max_size=12).filter(lambda t: _not_a_number(t, rule.tokens)), st.just([1, 2])]
        if rule.min is not None:
            bad.append(st.floats(max_value=rule.min, exclude_max=True, allow_nan=False, allow_infinity=False,
                                 min_value=rule.min - 1e6))
        if rule.max is not None:
            bad.append(st.floats(min_value=rule.max, exclude_min=True, allow_nan=False, max_value=rule.max + 1e6))
    else:
        bad = [st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False)]
        if rule.max_chars:
            bad.append(st.just("x" * (rule.max_chars + 1)))
    rows.at[row, column] = draw(st.one_of(*bad))
    return rows, column


@pytest.mark.parametrize("project", ["house_prices", "churn"])
def test_tabular_rows_predict_and_malformed_rows_are_refused(store: str, project: str) -> None:  # noqa: F811
    model, ds = trained(project, store)
    base = ds.X.reset_index(drop=True)
    present = [c for c in _contract(project).columns if c in base.columns]

    @PROPERTY
    @given(_tabular_input(project, base, malformed=False))
    def good(drawn: tuple[pd.DataFrame, str | None]) -> None:
        rows, _ = drawn
        # A row whose every column is missing is refused by design (documented): such draws are skipped.
        if rows[present].map(lambda v: v is None or (isinstance(v, str) and not v.strip())).all(axis=1).any():
            return
        pred = np.asarray(model.predict(rows))
        assert len(pred) == len(rows)
        if pred.dtype.kind == "f":
            assert np.isfinite(pred).all()

    @PROPERTY
    @given(_tabular_input(project, base, malformed=True))
    def bad(drawn: tuple[pd.DataFrame, str | None]) -> None:
        rows, column = drawn
        _rejects(model, rows, repr(column))

    good()
    bad()


# ----------------------------------------------------------------------------------------------- texts
_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=300)


@pytest.mark.parametrize("project", ["spam", "sentiment"])
def test_text_projects_any_text_predicts_and_non_text_is_refused(store: str, project: str) -> None:  # noqa: F811
    model, _ = trained(project, store)
    classes = {str(c) for c in model.classes_}

    @PROPERTY
    @given(st.lists(_TEXT, min_size=1, max_size=5))
    @example([""]).via("an empty text is a text")
    def good(texts: list[str]) -> None:
        pred = model.predict(texts)
        assert len(pred) == len(texts) and {str(p) for p in pred} <= classes

    @PROPERTY
    @given(st.lists(_TEXT, min_size=1, max_size=4), st.data())
    def bad(texts: list[str], data: Any) -> None:
        row = data.draw(st.integers(0, len(texts)))
        value = data.draw(st.one_of(st.none(), st.integers(), st.floats(), st.just("x" * 100_001)))
        _rejects(model, texts[:row] + [value] + texts[row:], f"row {row}", "'text'")

    good()
    bad()


# ----------------------------------------------------------------------------------------------- mnist
def test_mnist_any_image_predicts_and_bad_pixels_are_refused(store: str) -> None:  # noqa: F811
    from projects.mnist.features import PIXEL_NAMES

    model, _ = trained("mnist", store)
    names = PIXEL_NAMES["kaggle"]

    @PROPERTY
    @given(st.integers(1, 4), st.integers(0, 2**32 - 1), st.booleans())
    def good(n: int, seed: int, as_table: bool) -> None:
        images = np.random.default_rng(seed).integers(0, 256, size=(n, 784)).astype(float)
        images[:, 0] = 255  # a 0-255 image has bright pixels; an all-dark one reads as scaled to 0-1
        X = pd.DataFrame(images, columns=names) if as_table else images
        pred = np.asarray(model.predict(X))
        assert len(pred) == n and set(pred.astype(int).tolist()) <= set(range(10))

    @PROPERTY
    @given(st.integers(1, 3), st.integers(0, 783), st.one_of(st.floats(max_value=-1e-3, allow_nan=False, allow_infinity=False),
                                                              st.floats(min_value=255.001, allow_infinity=False),
                                                              st.just(float("nan")), st.just("dark")))
    def bad(n: int, pixel: int, value: Any) -> None:
        images = np.full((n, 784), 128.0)
        table = pd.DataFrame(images, columns=names).astype(object)
        table.iat[n - 1, pixel] = value
        _rejects(model, table, repr(names[pixel]))

    good()
    bad()


# ---------------------------------------------------------------------------------------------- stocks
def _bars(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    high, low = close * (1 + rng.uniform(0, 0.02, n)), close * (1 - rng.uniform(0, 0.02, n))
    return pd.DataFrame({"Date": pd.bdate_range("2020-01-02", periods=n).strftime("%Y-%m-%d"),
                         "Open": (high + low) / 2, "High": high, "Low": low, "Close": close,
                         "Volume": rng.integers(1_000, 1_000_000, n)})


def test_stocks_any_price_history_predicts_and_bad_prices_are_refused(store: str) -> None:  # noqa: F811
    from projects.stocks.features import WARMUP

    model, _ = trained("stocks", store)

    @PROPERTY
    @given(st.integers(WARMUP, WARMUP + 60), st.integers(0, 2**32 - 1))
    def good(n: int, seed: int) -> None:
        pred = np.asarray(model.predict(_bars(n, seed)))
        assert len(pred) >= 1 and np.isfinite(pred).all()

    @PROPERTY
    @given(st.integers(WARMUP, WARMUP + 30), st.integers(0, 2**32 - 1), st.data())
    def bad(n: int, seed: int, data: Any) -> None:
        bars = _bars(n, seed)
        row = data.draw(st.integers(0, n - 1))
        column = data.draw(st.sampled_from(["Open", "High", "Low", "Close"]))
        bars.loc[row, column] = data.draw(st.one_of(st.floats(max_value=0, allow_nan=False, allow_infinity=False),
                                                    st.just(float("nan"))))
        _rejects(model, bars, f"row {row}", repr(column))

    good()
    bad()


# ----------------------------------------------------------------------------------------- recommender
def test_recommender_any_title_is_answered_and_long_titles_are_refused(store: str) -> None:  # noqa: F811
    model, ds = trained("recommender", store)
    catalogue = [str(t) for t in ds.X["title"].head(20)]

    @PROPERTY
    @given(st.lists(st.one_of(st.sampled_from(catalogue), _TEXT.filter(lambda t: len(t) <= 500)), min_size=1, max_size=3))
    def good(titles: list[str]) -> None:
        model.predict(titles)  # found titles get neighbours, unknown ones an empty answer: never a crash

    @PROPERTY
    @given(st.lists(st.sampled_from(catalogue), min_size=1, max_size=3), st.data())
    def bad(titles: list[str], data: Any) -> None:
        row = data.draw(st.integers(0, len(titles)))
        # Integers are TMDB ids (accepted); a missing title, a fraction or a flag is refused.
        value = data.draw(st.one_of(st.just("y" * 501), st.none(), st.just(float("nan")), st.booleans(),
                                    st.floats(0.1, 0.9)))
        _rejects(model, titles[:row] + [value] + titles[row:], f"row {row}")

    good()
    bad()
