"""Tweet normalisation and lexicon features, as transformers that live inside the Pipeline.

``TweetNormalizer`` is stateless text cleaning: URLs, @handles, emoticons, elongations ("soooo"),
repeated punctuation and SHOUTING become tokens, and words in the scope of a negation ("not good at all")
get a ``_neg`` suffix so that "good" and "not good" are different features. ``LexiconScores`` turns the
VADER valence lexicon (Hutto & Gilbert 2014, MIT licence, read from the ``vaderSentiment`` package at fit
time and stored in the fitted step) into a few polarity sums, which help with the many words that are too
rare in 27k tweets to get a reliable weight of their own.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from common.errors import ParameterError
from common.text import text_tags

NEG_SUFFIX = "_neg"
# VADER's scalar for a negated valence ("not good" is mildly negative, not the opposite of good).
NEGATION_SCALAR = -0.74
EMOTICON_VALENCE = {"xposx": 2.0, "xnegx": -2.0, "xheartx": 2.5}

# A URL ends before trailing punctuation ("see http://x.co/a!!" keeps its "!!").
_URL = re.compile(r"(?:https?://|www\.)\S+?(?=[!?.,;:)]*(?:\s|$))", re.I)
# Bare domains ("twitpic.com/abc"); the cheap hint search spares the slower pattern on most tweets.
_DOMAIN_HINT = re.compile(r"\.(?:com|net|org|ly|co|tv|me)\b", re.I)
_DOMAIN = re.compile(r"[\w.-]+\.(?:com|net|org|ly|co|tv|me)\b(?:/\S*?)?(?=[!?.,;:)]*(?:\s|$))", re.I)
_USER = re.compile(r"@\w+")
_HEART = re.compile(r"<3+")
_POS_EMOTICON = re.compile(r"(?<![\w])(?:[:=;8][-'^o]?[)\]dDpP*>}]+|\^_*\^|\(:|x[dD]\b)")
_NEG_EMOTICON = re.compile(r"(?<![\w])(?:[:=;][-'^o]?[(\[/\\|{<]+|[)\]][-']?[:=]|:'\()")
_ELONGATED = re.compile(r"([a-zA-Z])\1{2,}")
_REPEATED_PUNCT = re.compile(r"([!?.])\1+")
_SHOUT = re.compile(r"\b([A-Z]{3,})\b")
_TOKEN = re.compile(r"[a-z0-9_']+|[!?.]+|[,:;]|\*+|[^\sa-z0-9_']")
_NEGATORS = frozenset(
    "not no never nothing nobody none nowhere neither nor cannot cant dont doesnt didnt isnt wasnt arent "
    "werent wont wouldnt shouldnt couldnt havent hasnt hadnt aint without".split()
)
_CLAUSE_END = frozenset([".", ",", ":", ";", "!", "?", "but", "..", "!!", "??", "?!", "!?"])


def normalize_tweet(text: str) -> str:
    """Replace URLs, handles, emoticons and elongations by tokens; lowercase; space out punctuation."""
    t = text.replace("`", "'").replace("\u2019", "'")
    t = _URL.sub(" xurlx ", t)
    if _DOMAIN_HINT.search(t):
        t = _DOMAIN.sub(" xurlx ", t)
    t = _USER.sub(" xuserx ", t)
    t = _HEART.sub(" xheartx ", t)
    t = _POS_EMOTICON.sub(" xposx ", t)
    t = _NEG_EMOTICON.sub(" xnegx ", t)
    t = _SHOUT.sub(r"\1 xshoutx", t)
    t = _ELONGATED.sub(r"\1\1 xelongx", t)
    t = _REPEATED_PUNCT.sub(r" \1\1 ", t)
    return t.lower()


def _negator(token: str) -> bool:
    return token in _NEGATORS or token.endswith("n't")


def mark_negation(text: str) -> str:
    """Tokenise and suffix ``_neg`` to words after a negator, until punctuation or "but"."""
    out = []
    negated = False
    for tok in _TOKEN.findall(text):
        if tok in _CLAUSE_END or tok[0] in ".!?":
            negated = False
        elif _negator(tok):
            negated = True
        elif negated and tok[0].isalnum() and not (tok.startswith("x") and tok.endswith("x")):
            tok += NEG_SUFFIX
        out.append(tok)
    return " ".join(out)


def strip_negation(text: str) -> str:
    """The normalised text without ``_neg`` marks (character n-grams should not see them)."""
    return text.replace(NEG_SUFFIX, "")


class TweetNormalizer(TransformerMixin, BaseEstimator):
    """Texts -> normalised, tokenised texts with negation scope marked (stateless).

    Args:
        negation: mark the scope of negations with a ``_neg`` suffix.
    """

    def __init__(self, negation: bool = True) -> None:
        self.negation = negation

    def fit(self, X: Any, y: Any = None) -> TweetNormalizer:
        """Nothing to learn."""
        return self

    def transform(self, X: Any) -> list[str]:
        """The normalised, tokenised texts."""
        if self.negation:
            return [mark_negation(normalize_tweet(t)) for t in X]
        return [" ".join(_TOKEN.findall(normalize_tweet(t))) for t in X]

    def __sklearn_tags__(self) -> Any:
        return text_tags(super().__sklearn_tags__(), requires_fit=False)


def vader_lexicon() -> dict[str, float]:
    """The VADER valence lexicon (token -> mean valence, -4..4) from the ``vaderSentiment`` package.

    Raises:
        ParameterError: when the package is not installed, saying how to install it or turn it off.
    """
    try:
        from importlib.resources import files

        raw = files("vaderSentiment").joinpath("vader_lexicon.txt").read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise ParameterError(
            "The sentiment lexicon features need the 'vaderSentiment' package (pip install vaderSentiment, "
            "part of the project's dependencies). Install it, or train without them: --param lexicon=false."
        ) from exc
    lexicon = {}
    for line in raw.splitlines():
        parts = line.split("\t")
        if len(parts) >= 2 and " " not in parts[0]:
            lexicon[parts[0].lower()] = float(parts[1])
    return lexicon


class LexiconScores(TransformerMixin, BaseEstimator):
    """Negation-marked texts -> six polarity features from a valence lexicon.

    Features (valences divided by ``scale``): sum, sum of positives, sum of negatives, largest, smallest,
    and the number of lexicon words / 5. A negated word counts ``-0.74`` times its valence, as in VADER.
    The lexicon is read in ``fit`` and kept in the fitted step, so predicting needs no extra package.

    Args:
        scale: divisor of the valences (VADER's are in -4..4).
    """

    def __init__(self, scale: float = 4.0) -> None:
        self.scale = scale

    def fit(self, X: Any, y: Any = None) -> LexiconScores:
        """Read the lexicon into ``valences_`` (the texts themselves teach nothing here)."""
        lexicon = {**vader_lexicon(), **EMOTICON_VALENCE}
        valences = {w: v / self.scale for w, v in lexicon.items()}
        for w, v in lexicon.items():
            if w[:1].isalnum() and not (w.startswith("x") and w.endswith("x")):
                valences[w + NEG_SUFFIX] = NEGATION_SCALAR * v / self.scale
        self.valences_ = valences
        return self

    def transform(self, X: Any) -> sp.csr_matrix:
        """Six polarity features per text (a sparse matrix, to join the n-gram features)."""
        check_is_fitted(self, "valences_")
        lookup = self.valences_.get
        out = np.zeros((len(X), 6))
        for i, text in enumerate(X):
            vals = [v for v in map(lookup, text.split()) if v is not None]
            if vals:
                pos = sum(v for v in vals if v > 0)
                neg = sum(v for v in vals if v < 0)
                out[i] = (pos + neg, pos, neg, max(max(vals), 0.0), min(min(vals), 0.0), len(vals) / 5.0)
        return sp.csr_matrix(out)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """The six feature names."""
        return np.array(["lex_sum", "lex_pos", "lex_neg", "lex_max", "lex_min", "lex_hits"], dtype=object)

    def __sklearn_tags__(self) -> Any:
        return text_tags(super().__sklearn_tags__())
