"""sentiment pipeline: raw tweets in, ``negative``/``neutral``/``positive`` out.

Normalised, negation-marked word 1-3-grams, character 3-5-grams within word boundaries, and six lexicon
polarity sums feed a class-balanced linear SVM (balanced weights lift macro-F1: neutral is the largest
class). The input step reads only the text (a DataFrame's ``text`` column): nothing else, in particular
not ``selected_text``, can reach the model.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from annotated_types import Ge, Gt
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfTransformer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.svm import LinearSVC

from common.contract import ValidateInput
from common.errors import ParameterError
from common.params import Search
from common.text import CharWbCounts, TextInput
from common.text import signature_example as _text_signature
from projects.sentiment.contract import CONTRACT
from projects.sentiment.features import LexiconScores, TweetNormalizer, strip_negation

MODELS = ("svc", "calibrated_svc", "logreg")


def build_pipeline(
    model: Annotated[Literal["svc", "calibrated_svc", "logreg"], Search(choices=("svc", "logreg"))] = "svc",
    C: Annotated[float, Gt(0), Search(0.01, 3.0, log=True)] = 0.1,
    class_weight: Annotated[Literal["balanced", "none"], Search()] = "balanced",
    word_ngrams: Annotated[int, Ge(1), Search(1, 3)] = 3,
    char_ngrams: Annotated[int, Ge(3), Search(4, 6)] = 5,
    min_df: Annotated[int, Ge(1), Search(1, 3)] = 2,
    negation: Annotated[bool, Search()] = True,
    lexicon: Annotated[bool, Search()] = True,
    max_chars: Annotated[int, Ge(1)] = 2_000,
) -> Pipeline:
    """An unfitted sentiment pipeline from raw tweets.

    Args:
        model: ``svc`` (linear SVM), ``calibrated_svc`` (the same with sigmoid-calibrated
            ``predict_proba``, 3-fold) or ``logreg``.
        C: inverse regularisation strength (> 0).
        class_weight: ``balanced`` or ``none``.
        word_ngrams: longest word n-gram (>= 1).
        char_ngrams: longest character n-gram (n-grams from 3, within word boundaries; >= 3).
        min_df: n-grams seen in fewer training tweets are dropped (>= 1).
        negation: mark the scope of negations (``not good`` -> ``not good_neg``).
        lexicon: add VADER lexicon polarity features.
        max_chars: longer texts are cut (>= 1; tweets are at most a few hundred characters).
    """
    if model not in MODELS:
        raise ParameterError(f"sentiment model must be one of {', '.join(MODELS)}; got '{model}'.")
    weights = None if class_weight in ("none", "", None) else class_weight
    parts = [
        ("words", TfidfVectorizer(ngram_range=(1, word_ngrams), token_pattern=r"\S+", lowercase=False,
                                  min_df=min_df, sublinear_tf=True)),
        # TF-IDF of char_wb n-grams, counted once per distinct word (the same features as TfidfVectorizer).
        ("chars", Pipeline([
            ("counts", CharWbCounts(ngram_range=(3, char_ngrams), min_df=min_df, preprocessor=strip_negation)),
            ("tfidf", TfidfTransformer(sublinear_tf=True)),
        ])),
    ]
    if lexicon:
        parts.append(("lexicon", LexiconScores()))
    if model == "logreg":
        clf: Any = LogisticRegression(C=C, class_weight=weights, max_iter=1000, random_state=0)
    else:
        clf = LinearSVC(C=C, class_weight=weights, random_state=0)
        if model == "calibrated_svc":
            clf = CalibratedClassifierCV(clf, method="sigmoid", cv=3)
    return Pipeline([
        ("validate", ValidateInput(CONTRACT)),
        ("input", TextInput(max_chars=max_chars)),
        ("normalize", TweetNormalizer(negation=negation)),
        ("features", FeatureUnion(parts)),
        ("model", clf),
    ])


def signature_example(X: Any) -> Any:
    """The MLflow input example: a DataFrame with a ``text`` column only."""
    return _text_signature(X)
