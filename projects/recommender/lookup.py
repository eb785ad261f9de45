"""Forgiving title lookup: case, accents, punctuation, "Matrix, The", years and typos.

``TitleIndex`` maps normalised titles (and original titles) to catalogue positions with a dict, and finds
near misses through a character-trigram inverted index (a sparse matrix), re-ranked by ``difflib``'s
similarity ratio. A lookup costs a dict access, or for a typo a sparse column slice plus a few dozen string
comparisons (measured up to a million titles in docs/recommender.md). Only the standard library and
scikit-learn/scipy are used (no fuzzy-matching dependency).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import HashingVectorizer

from projects.recommender.features import fold

_ARTICLE_SUFFIX = re.compile(r"^(.*\S),\s*(the|a|an|les|la|le|l'|el|il|der|die|das)\s*((?:\(\d{4}\))?)\s*$", re.I)
_YEAR = re.compile(r"^(.*?)[\s,]*(?:\((\d{4})\)|\[(\d{4})\]|(\d{4}))\s*$")
_LEADING_ARTICLE = re.compile(r"^(the|a|an) ")
_N_FEATURES = 2**18

# A corrected match needs at least this difflib ratio; below it the query is "not found" with suggestions.
MATCH_RATIO = 0.8


def title_key(title: Any) -> str:
    """The normalised form titles are compared in: folded, article-less (``Matrix, The`` == ``The Matrix``)."""
    if not isinstance(title, str):
        return ""
    text = title.strip()
    moved = _ARTICLE_SUFFIX.match(text)
    if moved:
        text = f"{moved.group(2)} {moved.group(1)} {moved.group(3)}".strip()
    key = fold(text)
    stripped = _LEADING_ARTICLE.sub("", key)
    return stripped or key


def split_year(query: str) -> tuple[str, int | None]:
    """``"The Host (2006)"`` -> (``"The Host"``, 2006); queries without a plausible year are unchanged."""
    match = _YEAR.match(query.strip())
    if not match:
        return query, None
    base = match.group(1).strip()
    year = int(next(g for g in match.groups()[1:] if g))
    if not base or not 1870 <= year <= 2100:
        return query, None
    return base, year


def trigram_vectorizer() -> HashingVectorizer:
    """Character trigrams of padded words, hashed (no vocabulary to store or grow)."""
    return HashingVectorizer(analyzer="char_wb", ngram_range=(3, 3), n_features=_N_FEATURES, alternate_sign=False,
                             norm=None, binary=True, lowercase=False, dtype=np.float32)


def ratio(a: str, b: str) -> float:
    """difflib's similarity ratio of two strings (1.0 = identical)."""
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def partial_ratio(short: str, long: str) -> float:
    """The best ratio of ``short`` against a window of ``long`` of the same length (a substring match)."""
    if len(short) > len(long):
        short, long = long, short
    if not short:
        return 0.0
    best = 0.0
    matcher = difflib.SequenceMatcher(None, short, long, autojunk=False)
    for a, b, _ in matcher.get_matching_blocks():
        start = max(0, b - a)
        best = max(best, ratio(short, long[start:start + len(short)]))
        if best == 1.0:
            break
    return best


def similarity(query: str, title: str) -> float:
    """How well a title answers a query: the whole-string ratio, plus credit for containing the query.

    A title that contains the query word for word ("harry potter" in "harry potter and the goblet of
    fire") scores at least 0.75, below the auto-correct threshold, so it is suggested, not silently
    chosen.
    """
    whole = ratio(query, title)
    part = partial_ratio(query, title)
    return max(whole, 0.75 * part) if len(title) > len(query) else whole


@dataclass
class Match:
    """The outcome of looking a query up.

    Attributes:
        query: what was asked.
        position: catalogue position of the chosen film, or -1 when nothing matched well enough.
        status: ``exact`` (after normalisation), ``year`` (ambiguous title settled by the given year),
            ``popular`` (ambiguous title settled by popularity), ``corrected`` (a typo fixed), ``id``
            (looked up by TMDB id) or ``not_found``.
        suggestions: (position, similarity) of the closest titles when not found (or the alternatives).
    """

    query: Any
    position: int = -1
    status: str = "not_found"
    suggestions: list[tuple[int, float]] = field(default_factory=list)

    @property
    def found(self) -> bool:
        return self.position >= 0


class TitleIndex:
    """Exact and approximate lookup of titles over a catalogue.

    Args:
        titles: display titles, one per catalogue position.
        years: release years (0 unknown).
        popularity: a number that settles ties (vote count).
        alt_titles: optional second names (original titles) per position.
    """

    def __init__(self, titles: list[str], years: np.ndarray, popularity: np.ndarray,
                 alt_titles: list[str] | None = None) -> None:
        entry_item: list[int] = []
        keys: list[str] = []
        for pos, title in enumerate(titles):
            names = [title]
            if alt_titles is not None and isinstance(alt_titles[pos], str):
                names.append(alt_titles[pos])
            seen: set[str] = set()
            for name in names:
                key = title_key(name)
                if key and key not in seen:
                    seen.add(key)
                    keys.append(key)
                    entry_item.append(pos)
        self.entry_item_ = np.asarray(entry_item, dtype=np.int64)
        self.keys_ = keys
        # key -> first entry; entry_next_ chains entries with the same key (remakes, same-named films).
        self.first_: dict[str, int] = {}
        nxt = np.full(len(keys), -1, dtype=np.int64)
        last: dict[str, int] = {}
        for i, key in enumerate(keys):
            if key in last:
                nxt[last[key]] = i
            else:
                self.first_[key] = i
            last[key] = i
        self.entry_next_ = nxt
        grams = trigram_vectorizer().transform(keys) if keys else sparse.csr_matrix((0, _N_FEATURES))
        self.grams_ = sparse.csc_matrix(grams, dtype=np.float32)
        self.gram_count_ = np.asarray(grams.sum(axis=1), dtype=np.float32).ravel()
        self.years_ = np.asarray(years, dtype=np.int64)
        self.popularity_ = np.asarray(popularity, dtype=np.float64)

    # Saved as arrays (the key dict is rebuilt on load): skops writes Python containers item by item.
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("first_", None)
        state["keys_"] = np.array(self.keys_, dtype=str)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        keys = state["keys_"]
        state["keys_"] = keys.tolist() if isinstance(keys, np.ndarray) else list(keys)
        self.__dict__.update(state)
        first: dict[str, int] = {}
        for i, key in enumerate(self.keys_):
            first.setdefault(key, i)
        self.first_ = first

    def __len__(self) -> int:
        return len(self.keys_)

    def _exact(self, key: str) -> list[int]:
        out, entry = [], self.first_.get(key, -1)
        while entry >= 0:
            out.append(int(self.entry_item_[entry]))
            entry = int(self.entry_next_[entry])
        return list(dict.fromkeys(out))

    def _pick(self, positions: list[int], year: int | None) -> tuple[int, str]:
        if len(positions) == 1 and year is None:
            return positions[0], "exact"
        if year is not None:
            gaps = np.abs(self.years_[positions] - year)
            best = [p for p, g in zip(positions, gaps, strict=True) if g == gaps.min()]
            if len(best) == 1:
                return best[0], "year" if gaps.min() == 0 else "popular"
            positions = best
        pos = max(positions, key=lambda p: self.popularity_[p])
        return pos, "popular" if len(positions) > 1 else "exact"

    def close(self, key: str, n: int = 5, pool: int = 25) -> list[tuple[int, float]]:
        """The ``n`` catalogue positions whose title is most like ``key``: (position, similarity in [0, 1]).

        Candidates are the titles sharing the most character trigrams with the query (both relative to
        the title's length and to the query's, so "harry potter" finds the long Harry Potter titles);
        they are ranked by ``difflib``'s ratio blended with a partial ratio (the best-aligned window).
        """
        if not key or len(self) == 0:
            return []
        cols = trigram_vectorizer().transform([key]).indices
        if len(cols) == 0:
            return []
        overlap = np.asarray(self.grams_[:, cols].sum(axis=1)).ravel()
        dice = 2 * overlap / (len(cols) + self.gram_count_)
        contained = overlap / len(cols) + 1e-6 * np.log1p(self.popularity_[self.entry_item_])
        cand: set[int] = set()
        for score in (dice, contained):
            take = min(pool, len(score))
            top = np.argpartition(-score, take - 1)[:take]
            cand.update(int(e) for e in top if overlap[e] > 0)
        scored: dict[int, float] = {}
        for entry in cand:
            sim = similarity(key, self.keys_[entry])
            pos = int(self.entry_item_[entry])
            scored[pos] = max(sim, scored.get(pos, 0.0))
        ranked = sorted(scored.items(), key=lambda pr: (-round(pr[1], 3), -self.popularity_[pr[0]]))
        return ranked[:n]

    def lookup(self, query: Any, n_suggestions: int = 5, fuzzy: bool = True) -> Match:
        """Find the film a query means; never raises for an unknown or malformed title.

        Args:
            query: a title, optionally with a year ("The Host (2006)", "Batman 1966").
            n_suggestions: how many close titles to return when nothing matches.
            fuzzy: also try typo correction (False: exact matches after normalisation only).
        """
        text = query if isinstance(query, str) else ("" if query is None else str(query))
        key = title_key(text)
        if key:
            found = self._exact(key)
            if found:
                pos, status = self._pick(found, None)
                return Match(query, pos, status, [(p, 1.0) for p in found if p != pos])
        base, year = split_year(text)
        base_key = title_key(base) if year is not None else key
        if year is not None and base_key:
            found = self._exact(base_key)
            if found:
                pos, status = self._pick(found, year)
                return Match(query, pos, status, [(p, 1.0) for p in found if p != pos])
        if not fuzzy:
            return Match(query, -1, "not_found")
        close = self.close(base_key, n=max(n_suggestions, 1))
        if close and close[0][1] >= MATCH_RATIO:
            best_ratio = close[0][1]
            tied = [p for p, r in close if r >= best_ratio - 1e-9]
            pos, _ = self._pick(tied, year)
            return Match(query, pos, "corrected", [pr for pr in close if pr[0] != pos])
        return Match(query, -1, "not_found", close[:n_suggestions])
