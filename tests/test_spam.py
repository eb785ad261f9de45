"""spam: loader (quoting, dedup), the shared raw-text input, the constrained threshold, real-data quality."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common import registry, splits, tracking
from common.errors import InputError, ParameterError
from projects.spam import data, synthetic
from projects.spam.model import CalibratedThresholdClassifier, constrained_threshold, make_linear
from projects.spam.pipeline import build_pipeline, signature_example
from projects.spam.spec import SPEC
from projects.spam.text import TextInput, as_texts

FAST = dict(synthetic.TEST_PARAMS)


@pytest.fixture(scope="module")
def fitted():
    ds = synthetic.generate()
    return build_pipeline(**FAST).fit(ds.X, ds.y), ds


# ------------------------------------------------------------------------------------------------ loader
def test_read_sms_keeps_stray_quotes(tmp_path: Path) -> None:
    # A stray quote must not merge lines (that is how the Kaggle copy lost two messages).
    path = tmp_path / "SMSSpamCollection"
    path.write_text('ham\tHe said "ok\nspam\tWIN £100 now\nham\tsee you "later"\nham\tHe said "ok\n', encoding="utf-8")
    frame = data.read_sms(path)
    assert len(frame) == 4
    assert frame["text"].iloc[0] == 'He said "ok'
    deduped, notes = data.deduplicate(frame)
    assert len(deduped) == 3 and "removed 1 duplicate" in notes[0]


def test_deduplicate_reports_conflicting_labels() -> None:
    frame = pd.DataFrame({"label": ["ham", "spam", "ham"], "text": ["a", "a", "b"]})
    out, notes = data.deduplicate(frame)
    assert out["text"].tolist() == ["a", "b"] and out["label"].tolist() == ["ham", "ham"]
    assert any("different labels" in n for n in notes)


def test_unknown_dataset_is_a_parameter_error() -> None:
    with pytest.raises(ParameterError):
        registry.get("spam").resolve_params({"dataset": "imdb"})
    with pytest.raises(ParameterError):
        data.load(dataset="imdb")


# ------------------------------------------------------------------------------------------ text input
def test_as_texts_accepts_every_text_form() -> None:
    messy = [None, float("nan"), 3, 2.5, b"bytes", "ok", pd.NA, np.int64(4), "😀 ünïcode ✓"]
    assert as_texts(messy) == ["", "", "3", "2.5", "bytes", "ok", "", "4", "😀 ünïcode ✓"]
    assert as_texts("one message") == ["one message"]
    assert as_texts(pd.Series(["a", None])) == ["a", ""]
    assert as_texts(np.array(["a", "b"])) == ["a", "b"]
    assert as_texts(np.array([["a"], ["b"]], dtype=object)) == ["a", "b"]
    assert as_texts(pd.DataFrame({"id": [1, 2], "text": ["a", np.nan]})) == ["a", ""]
    assert as_texts(["x" * 50], max_chars=10) == ["x" * 10]


@pytest.mark.parametrize("bad", [
    {"text": "a dict"},
    np.zeros((3, 2)),
    np.zeros((3, 1)),
    pd.DataFrame({"message": ["no text column"]}),
    42,
    [{"text": "nested"}],
    [["a", "b"]],
])
def test_non_text_input_is_an_input_error(bad) -> None:
    with pytest.raises(InputError, match="text"):
        as_texts(bad)


def test_text_input_step_is_stateless() -> None:
    step = TextInput(max_chars=5).fit(["whatever"])
    assert step.transform(["abcdefgh", None]) == ["abcde", ""]


def test_signature_is_a_text_column() -> None:
    example = signature_example(["a", None])
    assert list(example.columns) == ["text"] and example["text"].tolist() == ["a", ""]


# -------------------------------------------------------------------------------------------- the model
def test_constrained_threshold_respects_the_negative_rate() -> None:
    rng = np.random.default_rng(0)
    positive = rng.random(2000) < 0.15
    proba = np.clip(np.where(positive, rng.normal(0.8, 0.15, 2000), rng.normal(0.2, 0.15, 2000)), 0, 1)
    for rate in (0.0, 0.001, 0.01, 0.05):
        th, info = constrained_threshold(proba, positive, rate)
        blocked = np.mean(proba[~positive] >= th)
        assert blocked <= rate + 1e-12
        assert info["oof_ham_blocked_rate"] == pytest.approx(blocked)
    # A looser constraint never lowers the achievable F1.
    f1s = [constrained_threshold(proba, positive, r)[1]["oof_f1"] for r in (0.0, 0.01, 0.1)]
    assert f1s == sorted(f1s)


def test_malformed_candidate_is_a_parameter_error() -> None:
    with pytest.raises(ParameterError, match="svc:1"):
        make_linear("forest:3")
    with pytest.raises(ParameterError):
        make_linear("svc:-1")


def test_classifier_needs_the_positive_class() -> None:
    with pytest.raises(ValueError, match="pos_label"):
        CalibratedThresholdClassifier().fit(np.eye(4), ["a", "b", "a", "b"])


def test_pipeline_predicts_labels_and_calibrated_probabilities(fitted) -> None:
    model, ds = fitted
    pred = model.predict(["WINNER!! claim your FREE prize now, txt WIN to 80082 £1000", "see you at home later mum"])
    assert pred.tolist() == ["spam", "ham"]
    proba = model.predict_proba(ds.X[:20])
    assert proba.shape == (20, 2) and np.allclose(proba.sum(axis=1), 1)
    assert list(model.classes_) == ["ham", "spam"]
    # predict is exactly "spam probability >= the learned threshold".
    p = proba[:, 1]
    clf = model.named_steps["model"]
    assert (model.predict(ds.X[:20]) == np.where(p >= clf.threshold_, "spam", "ham")).all()


def test_pipeline_survives_messy_input(fitted) -> None:
    model, _ = fitted
    messy = ["", None, float("nan"), 12345, 3.5, "😀🎉🔥" * 50, "Ünïcödé ✓ ∑", "x" * 200_000, "\x00\t\n", b"caf\xc3\xa9"]
    pred = model.predict(messy)
    assert len(pred) == len(messy) and set(pred) <= {"spam", "ham"}
    frame = pd.DataFrame({"text": messy, "other": range(len(messy))})
    assert (model.predict(frame) == pred).all()
    assert (model.predict(pd.Series(messy)) == pred).all()
    assert model.predict("a single message").shape == (1,)


@pytest.mark.parametrize("bad", [{"text": ["a"]}, np.ones((2, 3)), pd.DataFrame({"msg": ["a"]})])
def test_pipeline_rejects_non_text(fitted, bad) -> None:
    model, _ = fitted
    with pytest.raises(InputError):
        model.predict(bad)


def test_fitted_pipeline_serialises_with_skops(fitted) -> None:
    model, _ = fitted
    fmt, trusted = tracking.choose_serialization(model, "skops")
    assert fmt == "skops", "the spam pipeline must also round-trip through skops"
    assert any("CalibratedThresholdClassifier" in t for t in trusted)


# ---------------------------------------------------------------------------------------------- real data
@pytest.mark.realdata
def test_real_sms_counts_and_dedup(real_data_dir: Path) -> None:
    ds = data.load(real_data_dir, dataset="sms")
    assert ds.rows == 5171 and int((ds.y == "spam").sum()) == 653
    assert "removed 403 duplicate texts (5574 -> 5171" in ds.notes[0]
    X_tr, X_te, _, _ = splits.train_test(ds, SPEC.split)
    assert not set(X_tr) & set(X_te), "no message may be on both sides of the split"


@pytest.mark.realdata
def test_real_enron_counts(real_data_dir: Path) -> None:
    ds = data.load(real_data_dir, dataset="enron")
    assert ds.rows == 5171 - 178 and set(ds.y) == {"ham", "spam"}
    assert all(t.startswith("Subject:") for t in ds.X[:20])


@pytest.mark.realdata
@pytest.mark.slow
def test_real_sms_quality_floor(real_data_dir: Path) -> None:
    """The issue's bar on the deduplicated test split: spam F1 >= 0.96 and ham blocked <= 0.3%.

    One fit of the default pipeline on the 4,136 training messages (about 10-35 s on 2 cores), without
    the outer CV of a full training run.
    """
    from common.evaluation import binary_scores

    ds = data.load(real_data_dir, dataset="sms")
    X_tr, X_te, y_tr, y_te = splits.train_test(ds, SPEC.split)
    model = build_pipeline().fit(X_tr, y_tr)
    pred = model.predict(X_te)
    scores = binary_scores(y_te, pred, model.predict_proba(X_te)[:, 1], pos_label="spam")
    ham = np.asarray(y_te) == "ham"
    ham_blocked = float(np.mean(pred[ham] == "spam"))
    assert scores["f1"] >= 0.96, scores
    assert ham_blocked <= 0.003, ham_blocked
    assert scores["roc_auc"] >= 0.99


# ------------------------------------------------------------------------------------ char n-gram counts
def test_char_wb_counts_equal_scikit_learn() -> None:
    from sklearn.feature_extraction.text import CountVectorizer

    from projects.spam.ngrams import CharWbCounts

    train = synthetic.generate().X
    new = ["brand new wordzz", "", "  spaced   out  ", "😀🎉 Ünï", "a", "x" * 300, "WINNER claim"]
    for kwargs in ({"ngram_range": (2, 5), "min_df": 2}, {"ngram_range": (1, 3), "min_df": 1}):
        ours = CharWbCounts(**kwargs).fit(train)
        ref = CountVectorizer(analyzer="char_wb", **kwargs).fit(train)
        assert ours.vocabulary_ == ref.vocabulary_
        assert (ours.transform(train + new) != ref.transform(train + new)).nnz == 0
        assert ours.get_feature_names_out().tolist() == ref.get_feature_names_out().tolist()
    assert CharWbCounts().fit(train).transform([]).shape[0] == 0
