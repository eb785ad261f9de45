"""Explanations people can look at: what a fitted pipeline relies on, computed on the untouched test part.

Everything here is model-agnostic and works on the *raw* input columns a user sends, because every
project's pipeline takes raw input:

* ``permutation_table``: ``sklearn.inspection.permutation_importance`` of each raw column of the test
  part, scoring the whole pipeline (how much the score gets worse when the column is shuffled), with the
  spread over repeats; ``plot_importance`` draws the top columns with error bars.
* ``substitution_contributions``: for a few test rows, the change in prediction when each raw column alone
  is replaced by its typical training value (median for numbers, most frequent value otherwise). It is a
  single-column substitution, not a SHAP decomposition: the contributions need not add up to the
  difference from the all-typical prediction, and the table says by how much they do not (``rest``).
* ``top_weights``: the largest weights per class of a linear model over named features (text n-grams).
* ``confused_pairs``: the most frequent (true, predicted) mistakes from a confusion matrix.

``explain_tabular`` writes the first two as run artifacts for a tabular project's ``artifacts`` hook.
Costs are bounded (at most ``max_rows`` test rows, ``repeats`` shuffles, a few rows explained) so an
explanation adds seconds, not minutes, to a run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.inspection import permutation_importance

from common import plots

if TYPE_CHECKING:
    from common.protocol import Context, Evaluation

# Artifact names the report shows as explanations, with the caption it gives each.
PLOTS = {
    "permutation_importance.png": "global: permutation importance of the raw columns on the test part",
    "row_contributions.png": "per prediction: single-column substitution contributions for three test rows",
    "top_ngrams.png": "the strongest n-gram weights per class",
    "confused_pairs.png": "the most confused (true, predicted) pairs on the test part",
    "confused_examples.png": "test examples of the most confused pairs",
}


# ------------------------------------------------------------------------------------- global importance
def subsample(X: pd.DataFrame, y: Any, max_rows: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """At most ``max_rows`` rows of ``(X, y)``: a fixed random subset in the original order."""
    y = np.asarray(y)
    if len(y) <= max_rows:
        return X, y
    idx = np.sort(np.random.default_rng(seed).choice(len(y), size=max_rows, replace=False))
    return X.iloc[idx], y[idx]


def rmsle_scorer() -> Any:
    """A scorer for RMSE of log1p values (greater is worse, so scikit-learn negates it)."""

    def rmsle(y_true: np.ndarray, y_pred: np.ndarray) -> float:
        # A shuffled column can push a prediction below zero; clip so the log stays defined.
        yp = np.log1p(np.clip(np.asarray(y_pred, dtype=float), 0, None))
        return float(np.sqrt(np.mean((np.log1p(np.asarray(y_true, dtype=float)) - yp) ** 2)))

    return skm.make_scorer(rmsle, greater_is_better=False)


def permutation_table(model: Any, X: pd.DataFrame, y: Any, scoring: Any, max_rows: int = 2000,
                      repeats: int = 5, seed: int = 0) -> pd.DataFrame:
    """Permutation importance of every raw column of ``X`` for the whole fitted pipeline ``model``.

    Args:
        model: a fitted estimator taking the raw frame.
        X, y: labelled rows the model never saw (the test part), at most ``max_rows`` of them used.
        scoring: a scikit-learn scorer or scorer name (greater is better; error scorers are negated).
        repeats: shuffles per column; ``importance_std`` is their spread.

    Returns:
        ``column``, ``importance_mean``, ``importance_std`` (the score's drop when the column is shuffled;
        ~0 for a column the model ignores), sorted by decreasing importance.
    """
    X, y = subsample(X, y, max_rows, seed)
    result = permutation_importance(model, X, y, scoring=scoring, n_repeats=repeats, random_state=seed)
    table = pd.DataFrame({"column": [str(c) for c in X.columns], "importance_mean": result.importances_mean,
                          "importance_std": result.importances_std})
    return table.sort_values("importance_mean", ascending=False, kind="stable").reset_index(drop=True)


def plot_importance(table: pd.DataFrame, path: Path, title: str, xlabel: str, top: int = 15) -> Path:
    """Horizontal bars of the ``top`` permutation importances with their spread over repeats."""
    shown = table.head(top).iloc[::-1]
    fig, ax = plots.subplots(figsize=(8, max(3.0, 0.33 * len(shown) + 1.4)))
    ax.barh(shown["column"], shown["importance_mean"], xerr=shown["importance_std"], color="tab:blue",
            ecolor="black", capsize=2)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    return plots.save(fig, path)


# -------------------------------------------------------------------------------- per-row contributions
def typical_values(X: pd.DataFrame) -> pd.Series:
    """Each column's typical value in ``X``: the (lower) median of numbers, the most frequent value otherwise.

    The median is taken as an observed value, so an integer column keeps an integer a house could have.
    Computed on training rows only: the reference point is part of what the explanation learned.
    """
    out = {}
    for col in X.columns:
        s = X[col].dropna()
        if s.empty:
            out[col] = np.nan
        elif pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            values = np.sort(s.to_numpy())
            out[col] = values[(len(values) - 1) // 2]
        else:
            out[col] = s.value_counts(sort=True).index[0]
    return pd.Series(out, dtype=object)


def pick_rows(scores: Any, n: int = 3) -> np.ndarray:
    """Positions of ``n`` rows spread over the predictions: lowest, (evenly spaced quantiles,) highest."""
    scores = np.asarray(scores, dtype=float)
    order = np.argsort(scores, kind="stable")
    picks = order[np.unique(np.round(np.linspace(0, len(order) - 1, min(n, len(order)))).astype(int))]
    return np.asarray(picks, dtype=int)


def substitution_contributions(predict: Callable[[pd.DataFrame], np.ndarray], rows: pd.DataFrame,
                               typical: pd.Series) -> pd.DataFrame:
    """The change in prediction when each raw column alone is set to its typical value, for each row.

    ``contribution = f(row) - f(row with that column set to its typical value)``: positive when the row's
    value pushes the prediction up. One ``predict`` call scores every substituted copy.

    Returns:
        One line per (row, column): ``row`` (the row's index label), ``column``, ``value``, ``typical``,
        ``contribution``, ``prediction`` (f(row)), ``baseline`` (f(all columns typical)) and ``rest``
        (``prediction - baseline - sum of the row's contributions``: what single-column substitution does
        not attribute, from interactions; 0 for a model additive in the raw columns).
    """
    cols = list(rows.columns)
    n_cols = len(cols)
    blocks = []
    for i in range(len(rows)):
        block = pd.concat([rows.iloc[[i]]] * (n_cols + 1), ignore_index=True)
        for j, col in enumerate(cols):
            block.loc[j + 1, col] = typical[col]
        blocks.append(block)
    base = rows.iloc[[0]].reset_index(drop=True).copy()
    for col in cols:
        base.loc[0, col] = typical[col]
    batch = pd.concat([*blocks, base], ignore_index=True)
    pred = np.asarray(predict(batch), dtype=float)
    baseline = float(pred[-1])
    lines = []
    for i, label in enumerate(rows.index):
        p = pred[i * (n_cols + 1):(i + 1) * (n_cols + 1)]
        contrib = p[0] - p[1:]
        rest = float(p[0] - baseline - contrib.sum())
        for j, col in enumerate(cols):
            lines.append({"row": label, "column": str(col), "value": rows.iloc[i, j], "typical": typical[col],
                          "contribution": float(contrib[j]), "prediction": float(p[0]), "baseline": baseline,
                          "rest": rest})
    return pd.DataFrame(lines)


def _short(value: Any) -> str:
    if value is None or value is pd.NA or (isinstance(value, float | np.floating) and np.isnan(value)):
        return "missing"
    if isinstance(value, int | np.integer) or (isinstance(value, float | np.floating) and float(value).is_integer()):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return f"{value:.4g}"
    text = str(value)
    return text if len(text) <= 24 else text[:23] + "…"


def plot_contributions(table: pd.DataFrame, path: Path, title: str, output: str, top: int = 10,
                       fmt: str = "{:.3g}") -> Path:
    """One panel per explained row: its ``top`` largest contributions, labelled ``column = value``."""
    rows = list(dict.fromkeys(table["row"]))
    fig, axes = plots.subplots(len(rows), 1, figsize=(8.5, 3.0 * len(rows) + 0.8), squeeze=False)
    for ax, label in zip(axes[:, 0], rows, strict=True):
        part = table[table["row"] == label]
        part = part.reindex(part["contribution"].abs().sort_values(ascending=False, kind="stable").index).head(top)
        part = part.iloc[::-1]
        names = [f"{c} = {_short(v)}" for c, v in zip(part["column"], part["value"], strict=True)]
        colors = ["tab:red" if c > 0 else "tab:blue" for c in part["contribution"]]
        ax.barh(names, part["contribution"], color=colors)
        ax.axvline(0, color="grey", lw=0.8)
        first = part.iloc[-1] if len(part) else table[table["row"] == label].iloc[0]
        ax.set_title(f"test row {label}: {output} {fmt.format(first['prediction'])} "
                     f"(all typical: {fmt.format(first['baseline'])}, not attributed: {fmt.format(first['rest'])})",
                     fontsize=9)
        ax.tick_params(axis="y", labelsize=8)
        ax.set_xlabel(f"change in {output} vs the column at its training median/mode", fontsize=8)
    fig.suptitle(f"{title}\nred: the row's value raises the {output}; blue: it lowers it", fontsize=10)
    return plots.save(fig, path)


def explain_tabular(ctx: Context, ev: Evaluation, predict: Callable[[pd.DataFrame], np.ndarray], scoring: Any,
                    score_label: str, output: str, fmt: str = "{:.3g}", y_test: Any = None, n_rows: int = 3,
                    max_rows: int = 2000, repeats: int = 5) -> pd.DataFrame:
    """Global and per-row explanations of the model fitted on the training part, on the test part.

    Writes ``permutation_importance.csv``/``.png`` and ``row_contributions.csv``/``.png`` with
    ``ctx.artifact`` and returns the importance table. ``predict`` maps raw rows to the explained output
    (a regression prediction, a positive-class probability); ``scoring`` is the importance's scorer and
    ``score_label`` names the drop it measures. Typical values come from the training part only.
    """
    name, part = ctx.spec.name, ev.parts.test_name
    X_te = ev.parts.X_test
    y_te = np.asarray(ev.test.y if y_test is None else y_test)
    table = permutation_table(ev.model, X_te, y_te, scoring, max_rows=max_rows, repeats=repeats)
    table.to_csv(ctx.artifact("permutation_importance.csv"), index=False)
    plot_importance(table, ctx.artifact("permutation_importance.png"),
                    f"{name}: permutation importance of raw columns on the {part}\n"
                    f"({min(len(y_te), max_rows)} rows, {repeats} shuffles each; bars: mean ± std)",
                    score_label)
    scores = ev.test.proba if ev.test.proba is not None else ev.test.pred
    picks = pick_rows(scores, n_rows)
    contrib = substitution_contributions(predict, X_te.iloc[picks], typical_values(ev.parts.X_train))
    contrib.to_csv(ctx.artifact("row_contributions.csv"), index=False)
    plot_contributions(contrib, ctx.artifact("row_contributions.png"),
                       f"{name}: per-prediction contributions on the {part} (lowest, middle, highest {output})\n"
                       "single-column substitution: prediction minus prediction with that raw column at its "
                       "training median/mode", output, fmt=fmt)
    return table


# ------------------------------------------------------------------------------------------- text weights
def top_weights(names: Sequence[str], coef: Any, classes: Sequence[Any], k: int = 25) -> pd.DataFrame:
    """The ``k`` largest weights per class of a linear model over named features.

    ``coef`` is ``(n_classes, n_features)`` one-vs-rest weights, or 1-D for a binary model whose positive
    class is ``classes[1]``: its largest weights belong to ``classes[1]`` and its most negative ones to
    ``classes[0]`` (reported with their negative sign). Feature names ``kind__feature`` (a
    ``ColumnTransformer``/``FeatureUnion`` prefix) are split into ``kind`` and ``feature``.

    Returns:
        ``class``, ``rank``, ``kind``, ``feature``, ``weight``.
    """
    names = np.asarray(names, dtype=object)
    coef = np.asarray(coef, dtype=float)
    if coef.ndim == 1 or coef.shape[0] == 1:
        w = coef.ravel()
        order = np.argsort(w, kind="stable")
        picks = [(classes[1], order[::-1][:k]), (classes[0], order[:k])]
    else:
        picks = [(label, np.argsort(row, kind="stable")[::-1][:k]) for label, row in zip(classes, coef, strict=True)]
        w = None
    rows = []
    for c, (label, idx) in enumerate(picks):
        weights = w if w is not None else coef[c]
        for rank, i in enumerate(idx, 1):
            kind, sep, feature = str(names[i]).partition("__")
            kind, feature = (kind, feature) if sep else ("", kind)
            rows.append({"class": label, "rank": rank, "kind": kind, "feature": feature, "weight": float(weights[i])})
    return pd.DataFrame(rows, columns=["class", "rank", "kind", "feature", "weight"])


def plot_top_weights(table: pd.DataFrame, path: Path, title: str, top: int = 15) -> Path:
    """One panel per class: its ``top`` strongest features (spaces shown as ``·`` so n-grams stay readable)."""
    classes = list(dict.fromkeys(table["class"]))
    fig, axes = plots.subplots(1, max(len(classes), 1), figsize=(4.2 * max(len(classes), 1), 0.3 * top + 1.6),
                               squeeze=False)
    for ax, label in zip(axes[0], classes, strict=False):
        part = table[table["class"] == label].head(top).iloc[::-1]
        grams = [repr(str(f)).replace(" ", "·") for f in part["feature"]]
        names = [f"{k}: {g}" if k else g for k, g in zip(part["kind"], grams, strict=True)]
        ax.barh(names, part["weight"], color="tab:red" if (part["weight"] < 0).all() else "tab:green")
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_title(str(label), fontsize=10)
        ax.tick_params(axis="y", labelsize=8)
        ax.set_xlabel("weight")
    fig.suptitle(title, fontsize=10)
    return plots.save(fig, path)


# ------------------------------------------------------------------------------------------ confusions
def confused_pairs(y_true: Any, y_pred: Any, labels: Sequence[Any] | None = None, k: int = 10) -> pd.DataFrame:
    """The ``k`` most frequent mistakes as (true, predicted) pairs, from the confusion matrix.

    Returns:
        ``true``, ``predicted``, ``count`` and ``share_of_true`` (the share of that true class's rows),
        sorted by decreasing count (ties: by true then predicted label order); pairs with no mistakes are
        left out.
    """
    yt, yp = np.asarray(y_true), np.asarray(y_pred)
    labels = list(labels) if labels is not None else sorted(set(yt.tolist()) | set(yp.tolist()), key=str)
    cm = skm.confusion_matrix(yt, yp, labels=labels)
    return pairs_from_matrix(cm, labels, k)


def pairs_from_matrix(cm: Any, labels: Sequence[Any], k: int = 10) -> pd.DataFrame:
    """``confused_pairs`` from a confusion matrix (rows: true labels, columns: predicted labels)."""
    cm = np.asarray(cm)
    totals = cm.sum(axis=1)
    off = [(int(cm[i, j]), i, j) for i in range(len(labels)) for j in range(len(labels)) if i != j and cm[i, j] > 0]
    off.sort(key=lambda t: (-t[0], t[1], t[2]))
    rows = [{"true": labels[i], "predicted": labels[j], "count": c, "share_of_true": c / max(int(totals[i]), 1)}
            for c, i, j in off[:k]]
    return pd.DataFrame(rows, columns=["true", "predicted", "count", "share_of_true"])


def plot_confused_pairs(table: pd.DataFrame, path: Path, title: str) -> Path:
    """Bars of the most confused (true -> predicted) pairs with their counts."""
    shown = table.iloc[::-1]
    fig, ax = plots.subplots(figsize=(7, max(2.5, 0.35 * len(shown) + 1.3)))
    names = [f"true {t} → predicted {p}" for t, p in zip(shown["true"], shown["predicted"], strict=True)]
    bars = ax.barh(names, shown["count"], color="tab:orange")
    for bar, count, share, true in zip(bars, shown["count"], shown["share_of_true"], shown["true"], strict=True):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {count} ({share:.1%} of true {true})",
                va="center", fontsize=8)
    if not len(shown):
        ax.text(0.5, 0.5, "no mistakes", ha="center", va="center", transform=ax.transAxes)
        ax.set_yticks([])
    ax.set_xlabel("test rows")
    ax.set_xlim(0, max(float(shown["count"].max()) if len(shown) else 1.0, 1.0) * 1.35)
    ax.set_title(title, fontsize=10)
    return plots.save(fig, path)
