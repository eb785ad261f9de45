"""sentiment: tweet normalisation, lexicon features, the selected_text leak guard, real-data quality."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common import tracking
from common.errors import InputError
from common.text import CharWbCounts, TextInput
from projects.sentiment import data, synthetic
from projects.sentiment.features import (
    LexiconScores,
    TweetNormalizer,
    mark_negation,
    normalize_tweet,
    strip_negation,
)
from projects.sentiment.pipeline import build_pipeline
from tests.estimators.text import check_text_step, step_id


@pytest.fixture(scope="module")
def synth():
    return synthetic.generate()


@pytest.fixture(scope="module")
def fitted(synth):
    return build_pipeline().fit(synth.X, synth.y)


# ---------------------------------------------------------------------------------------- normalisation
def test_normalize_tweet_tokens() -> None:
    out = normalize_tweet("@bob Sooo HAPPY :) see http://t.co/x and twitpic.com/abc!!! :( <3")
    assert "xuserx" in out and "bob" not in out
    assert out.count("xurlx") == 2 and "http" not in out and "twitpic" not in out
    assert "soo xelongx" in out and "happy xshoutx" in out
    assert "xposx" in out and "xnegx" in out and "xheartx" in out
    assert "!!" in out and "!!!" not in out
    assert out == out.lower()


def test_backtick_apostrophes_and_negation_scope() -> None:
    # The Kaggle file writes apostrophes as backticks ("I`d", "don`t").
    text = mark_negation(normalize_tweet("I don`t like this movie, but the popcorn was good"))
    assert "like_neg" in text and "movie_neg" in text
    assert "popcorn_neg" not in text and "good_neg" not in text, "negation scope ends at punctuation/but"
    assert "good" in text.split()
    assert mark_negation("never") == "never"


def test_normalizer_without_negation_has_no_marks() -> None:
    assert "_neg" not in " ".join(TweetNormalizer(negation=False).transform(["not good at all"]))


@pytest.mark.parametrize("step", [TweetNormalizer(), TweetNormalizer(negation=False)], ids=step_id)
def test_normalizer_keeps_the_estimator_contract(step, synth) -> None:
    """scikit-learn's checks feed numeric arrays, so the text steps are checked on tweets here."""
    check_text_step(step, synth.X[:80])


@pytest.mark.parametrize("step", [LexiconScores(), LexiconScores(scale=2.0),
                                  CharWbCounts(ngram_range=(3, 5), min_df=2, preprocessor=strip_negation)], ids=step_id)
def test_feature_steps_keep_the_estimator_contract(step, synth) -> None:
    """The steps after the normaliser take normalised tweets."""
    check_text_step(step, TweetNormalizer().transform(synth.X[:80]))


def test_lexicon_scores_follow_polarity_and_negation() -> None:
    lex = LexiconScores().fit(None)
    norm = TweetNormalizer().transform(["I love it", "I do not love it", "the bus", "", "so sad :("])
    feats = lex.transform(norm).toarray()
    assert feats.shape == (5, 6)
    assert feats[0, 0] > 0, "love is positive"
    assert feats[1, 0] < 0, "not love is mildly negative"
    assert np.all(feats[2] == 0) and np.all(feats[3] == 0)
    assert feats[4, 0] < 0


# ------------------------------------------------------------------------------------ selected_text leak
def test_loader_never_returns_selected_text(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    pd.DataFrame({
        "textID": ["a", "b", "c"],
        "text": [" good day", "", "bad day"],
        "selected_text": ["POISON_SPAN", "", "POISON_SPAN"],
        "sentiment": ["positive", "neutral", "negative"],
    }).to_csv(path, index=False)
    texts, labels, dropped = data.read_labelled(path)
    assert texts == [" good day", "bad day"] and labels.tolist() == ["positive", "negative"] and dropped == 1
    assert not any("POISON" in t for t in texts)


def test_text_input_reads_only_the_text_column() -> None:
    frame = pd.DataFrame({"selected_text": ["LEAK"] * 2, "text": ["a", "b"], "sentiment": ["x", "y"]})
    assert TextInput().transform(frame) == ["a", "b"]


def _poison(labels: np.ndarray, flip: bool = False) -> list[str]:
    """A selected_text that states the answer (or, flipped, a wrong one) in words the model knows."""
    order = ["negative", "neutral", "positive"]
    words = {"negative": "awful hate sad", "neutral": "bus lunch reading", "positive": "love great happy"}
    return [words[order[(order.index(lab) + 1) % 3]] if flip else words[lab] for lab in labels]


def test_pipeline_never_reads_selected_text(synth) -> None:
    """Training and predicting with a poisoned selected_text column gives exactly the text-only model.

    The poison would matter if it were read: a pipeline fed text + selected_text predicts differently.
    """
    X, y = synth.X, synth.y
    X_test, y_test = synth.X_test, synth.y_test
    honest = build_pipeline().fit(X, y)
    expected = honest.predict(X_test)

    with_leak = pd.DataFrame({"textID": range(len(X)), "text": X, "selected_text": _poison(y)})
    from_frame = build_pipeline().fit(with_leak, y)
    test_frame = pd.DataFrame({"text": X_test, "selected_text": _poison(y_test, flip=True)})
    assert (from_frame.predict(test_frame) == expected).all()
    assert (from_frame.predict(X_test) == expected).all()
    # Same learned weights, not only the same predictions.
    np.testing.assert_array_equal(from_frame.named_steps["model"].coef_, honest.named_steps["model"].coef_)

    # Control: had the pipeline read selected_text, the (wrong) poison at test time would change answers.
    leaky = build_pipeline().fit([f"{t} {s}" for t, s in zip(X, _poison(y), strict=True)], y)
    leaky_pred = leaky.predict([f"{t} {s}" for t, s in zip(X_test, _poison(y_test, flip=True), strict=True)])
    assert (leaky_pred != expected).mean() > 0.2


# ---------------------------------------------------------------------------------------- robust input
def test_pipeline_survives_messy_input(fitted) -> None:
    # Missing values, numbers and texts over 100,000 characters are InputErrors (projects/sentiment/contract.py).
    messy = ["", "😀🎉🔥" * 50, "Ünïcödé ✓ ∑", "a" * 90_000, "\x00\t\n", ":-) :-("]
    for bad in (None, float("nan"), 12345, 3.5, "a" * 200_000):
        with pytest.raises(InputError, match="row 1"):
            fitted.predict(["ok", bad])
    pred = fitted.predict(messy)
    assert len(pred) == len(messy) and set(pred) <= {"negative", "neutral", "positive"}
    assert (fitted.predict(pd.DataFrame({"text": messy})) == pred).all()
    assert fitted.predict("soooo happy :)").tolist() == ["positive"]


@pytest.mark.parametrize("bad", [{"text": ["a"]}, np.ones((2, 3)), pd.DataFrame({"tweet": ["a"]}), [{"a": 1}]])
def test_pipeline_rejects_non_text(fitted, bad) -> None:
    with pytest.raises(InputError):
        fitted.predict(bad)


def test_fitted_pipeline_serialises_with_skops(fitted) -> None:
    fmt, _ = tracking.choose_serialization(fitted, "skops")
    assert fmt == "skops"


def test_calibrated_variant_has_probabilities(synth) -> None:
    model = build_pipeline(model="calibrated_svc").fit(synth.X, synth.y)
    proba = model.predict_proba(synth.X_test[:5])
    assert proba.shape == (5, 3) and np.allclose(proba.sum(axis=1), 1)
    assert (model.classes_[proba.argmax(axis=1)] == model.predict(synth.X_test[:5])).all()


def test_sentiment_does_not_load_the_spam_project() -> None:
    """Saved sentiment models must not reference projects.spam (the shared text steps live in common.text)."""
    import subprocess
    import sys

    code = ("import sys, projects.sentiment.pipeline, projects.sentiment.synthetic, projects.sentiment.report; "
            "sys.exit(any(m.startswith('projects.spam') for m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1]).returncode == 0


def test_fitted_pipeline_pickles_without_spam_references(fitted) -> None:
    import pickle

    assert b"projects.spam" not in pickle.dumps(fitted)


# ---------------------------------------------------------------------------------------------- real data
@pytest.mark.realdata
def test_real_files_and_no_selected_text(real_data_dir: Path) -> None:
    ds = data.load(real_data_dir)
    assert ds.rows == 27480 and ds.test_rows == 3534
    assert isinstance(ds.X, list) and all(isinstance(t, str) for t in ds.X)
    raw = pd.read_csv(real_data_dir / "sentiment" / "train.csv", keep_default_na=False)
    raw = raw[raw["text"].str.strip() != ""]
    assert ds.X == raw["text"].tolist(), "the model's input is exactly train.csv's text column"
    assert "selected_text" not in repr(ds.extras)


@pytest.mark.realdata
@pytest.mark.slow
def test_real_quality_floor(real_data_dir: Path) -> None:
    """The issue's bar: macro-F1 >= 0.74 on Kaggle's test.csv, from one fit on train.csv."""
    from common.evaluation import multiclass_scores

    ds = data.load(real_data_dir)
    model = build_pipeline().fit(ds.X, ds.y)
    scores = multiclass_scores(ds.y_test, model.predict(ds.X_test))
    assert scores["f1_macro"] >= 0.74, scores
    assert scores["accuracy"] >= 0.73, scores
