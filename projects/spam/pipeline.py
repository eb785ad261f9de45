"""spam pipeline: raw text in, ``"spam"``/``"ham"`` out (calibrated probabilities via ``predict_proba``).

Word 1-2-grams and character 2-5-grams within word boundaries (robust to "FR33", "txt", "£1000") feed a
linear model that the last step chooses by inner CV, calibrates (Platt) and thresholds so that blocked ham stays
rare. Every step is fitted only on the rows given to ``fit``.
"""

from __future__ import annotations

from typing import Annotated, Any

from annotated_types import Ge, Interval
from sklearn.feature_extraction.text import TfidfTransformer, TfidfVectorizer
from sklearn.pipeline import FeatureUnion, Pipeline

from common.contract import ValidateInput
from common.params import Search
from common.text import CharWbCounts, TextInput
from common.text import signature_example as _text_signature
from projects.spam.contract import CONTRACT
from projects.spam.model import CalibratedThresholdClassifier

# Words plus the currency signs and "!" that spam leans on (the default pattern drops them).
WORD_PATTERN = r"(?u)\b\w+\b|[£$€!]"


def build_pipeline(
    candidates: tuple[str, ...] = ("svc:0.3", "svc:1", "svc:3", "logreg:10", "logreg:30"),
    max_ham_blocked: Annotated[float, Interval(ge=0, le=1)] = 0.001,
    word_ngrams: Annotated[int, Ge(1), Search(1, 3)] = 2,
    char_ngrams: Annotated[int, Ge(0), Search(choices=(0, 4, 5, 6))] = 5,
    inner_cv: Annotated[int, Ge(2)] = 5,
    max_chars: Annotated[int, Ge(1)] = 20_000,
) -> Pipeline:
    """An unfitted spam pipeline from raw text.

    Args:
        candidates: linear models the inner CV chooses from (``svc:C`` or ``logreg:C``).
        max_ham_blocked: the largest share of ham the threshold may block on the training folds (in [0, 1]).
        word_ngrams: longest word n-gram (>= 1).
        char_ngrams: longest character n-gram (within word boundaries); character n-grams start at 2, so 0
            (or 1) leaves them out.
        inner_cv: folds of the inner CV (model choice, calibration, threshold; >= 2).
        max_chars: longer messages are cut to this many characters (>= 1).
    """
    parts = [("word", TfidfVectorizer(ngram_range=(1, word_ngrams), token_pattern=WORD_PATTERN, sublinear_tf=True))]
    if char_ngrams >= 2:
        # TF-IDF of char_wb n-grams, counted once per distinct word (the same features as TfidfVectorizer).
        parts.append(("char", Pipeline([("counts", CharWbCounts(ngram_range=(2, char_ngrams), min_df=2)),
                                        ("tfidf", TfidfTransformer(sublinear_tf=True))])))
    features = FeatureUnion(parts)
    model = CalibratedThresholdClassifier(candidates=tuple(candidates), max_ham_blocked=max_ham_blocked,
                                          pos_label="spam", cv=inner_cv)
    return Pipeline([("validate", ValidateInput(CONTRACT)), ("input", TextInput(max_chars=max_chars)),
                     ("features", features), ("model", model)])


def signature_example(X: Any) -> Any:
    """The MLflow input example: a DataFrame with a ``text`` column."""
    return _text_signature(X)
