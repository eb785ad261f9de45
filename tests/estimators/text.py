"""The shared text steps (``common.text``). They take sequences of strings and say so with scikit-learn's
tags (``input_tags.string``, no ``two_d_array``), so scikit-learn runs only the checks that apply to text
(cloning); ``check_text_step`` below runs the rest of the estimator contract on real texts, from
tests/test_spam.py and tests/test_sentiment.py."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils import get_tags

from common.text import CharWbCounts, TextInput

CASES = [
    (TextInput(), {}),
    (CharWbCounts(), {}),
]

TEXTS = ["WINNER!! claim your FREE prize now", "see you at home later", "", "Ünïcödé ✓ 😀", "ok ok ok", "call me"]


def _same(a: Any, b: Any) -> bool:
    if sp.issparse(a):
        return sp.issparse(b) and a.shape == b.shape and (a != b).nnz == 0
    return np.array_equal(np.asarray(a, dtype=object), np.asarray(b, dtype=object))


def check_text_step(step: Any, texts: list[str] = TEXTS) -> None:
    """scikit-learn's estimator contract for a step that takes texts, checked on texts.

    clone keeps the parameters; ``__init__`` only stores them and ``fit`` never changes them; a stateful
    step raises ``NotFittedError`` before ``fit``; ``fit`` returns self; ``fit_transform`` equals ``fit``
    then ``transform``; the output has one row per text, whatever the batch size; a pickled step gives the
    same output; feature names match the output's columns.
    """
    params = step.get_params(deep=False)
    fresh = clone(step)
    assert fresh.get_params(deep=False) == params
    assert not [k for k in vars(fresh) if k.endswith("_")], "__init__ must not set fitted attributes"
    tags = get_tags(step)
    assert tags.input_tags.string and not tags.input_tags.two_d_array
    if tags.requires_fit:
        with pytest.raises(NotFittedError):
            clone(step).transform(texts)
    fitted = clone(step)
    assert fitted.fit(texts) is fitted
    assert fitted.get_params(deep=False) == params, "fit must not change the parameters"
    out = fitted.transform(texts)
    assert _same(clone(step).fit_transform(texts), out)
    n = out.shape[0] if hasattr(out, "shape") else len(out)
    assert n == len(texts)
    one = fitted.transform(texts[:1])
    assert _same(one, out[:1]), "a row's output must not depend on the rest of the batch"
    assert _same(pickle.loads(pickle.dumps(fitted)).transform(texts), out)
    if hasattr(fitted, "get_feature_names_out") and hasattr(out, "shape"):
        assert len(fitted.get_feature_names_out()) == out.shape[1]


def step_id(step: object) -> str:
    """A stable test id: the step's repr without memory addresses (pytest-xdist workers must agree on ids)."""
    import re

    return re.sub(r" at 0x[0-9a-f]+", "", repr(step)).replace("\n", "").replace(" ", "")
