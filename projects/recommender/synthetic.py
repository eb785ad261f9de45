"""Generated catalogues and ratings with the real TMDB/MovieLens schema (tests and the scaling benchmark).

``generate`` makes a small catalogue whose films fall into taste clusters (shared genre, keywords and
overview words) and users who prefer one or two clusters, so a recommender that reads the text and the
ratings can beat the baselines. ``catalogue`` makes a large catalogue quickly (vectorised) for the
scaling benchmark; its text is word salad with cluster structure, which is all a benchmark needs.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from common.datasets import Dataset, generated

_GENRES = ["Action", "Comedy", "Drama", "Science Fiction", "Horror", "Romance", "Animation", "Thriller"]
_SYLLABLES = ["ka", "lo", "mi", "ra", "ten", "vor", "ul", "shi", "dar", "bel", "quin", "zo", "fa", "ne", "tor",
              "ix", "mar", "sol", "gen", "pra", "vel", "nu", "cor", "ath"]


def _words(rng: np.random.Generator, n: int, syllables: int = 2) -> np.ndarray:
    """``n`` pseudo-words made of syllables (distinct enough for TF-IDF, readable in a table)."""
    parts = rng.choice(_SYLLABLES, size=(n, syllables))
    return np.array(["".join(row) for row in parts], dtype=object)


def catalogue(n: int, seed: int = 0, n_clusters: int | None = None, words_per_overview: int = 25) -> pd.DataFrame:
    """A generated catalogue of ``n`` films with TMDB's columns, built vectorised (for the scaling benchmark).

    Args:
        n: number of films.
        seed: random seed.
        n_clusters: taste clusters (default grows with n: about n / 200, at least 4).
        words_per_overview: overview length in words.
    """
    rng = np.random.default_rng(seed)
    k = n_clusters or max(4, min(5000, n // 200))
    vocab = _words(rng, 20_000, 3)
    cluster = rng.integers(0, k, n)
    # Half of each overview comes from its cluster's 60-word slice of the vocabulary, half from anywhere.
    local = (cluster[:, None] * 60 + rng.integers(0, 60, (n, words_per_overview // 2))) % len(vocab)
    anywhere = rng.zipf(1.3, (n, words_per_overview - words_per_overview // 2)) % len(vocab)
    idx = np.hstack([local, anywhere])
    words = vocab[idx]
    overview = [" ".join(row) for row in words]
    title_words = vocab[rng.integers(0, len(vocab), (n, 3))]
    titles = [f"{a.capitalize()} {b} {c}" for a, b, c in title_words]
    genre = np.array(_GENRES, dtype=object)[cluster % len(_GENRES)]
    genres = [f'[{{"id": {cluster[i] % len(_GENRES)}, "name": "{g}"}}]' for i, g in enumerate(genre)]
    kw = vocab[(cluster[:, None] * 7 + rng.integers(0, 7, (n, 3))) % len(vocab)]
    keywords = ["[" + ", ".join(f'{{"id": {j}, "name": "{w}"}}' for j, w in enumerate(r)) + "]" for r in kw]
    years = rng.integers(1950, 2017, n)
    return pd.DataFrame({
        "id": np.arange(1, n + 1, dtype=np.int64),
        "title": titles,
        "original_title": titles,
        "overview": overview,
        "tagline": [""] * n,
        "genres": genres,
        "keywords": keywords,
        "release_date": [f"{y}-06-01" for y in years],
        "vote_average": np.round(rng.normal(6.2, 0.9, n).clip(1, 10), 1),
        "vote_count": rng.lognormal(4, 1.5, n).astype(np.int64),
        "popularity": rng.lognormal(1, 1, n),
    })


def _catalogue_small(n: int, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    n_clusters = 6
    topic = [_words(rng, 30) for _ in range(n_clusters)]
    common = _words(rng, 200)
    keywords = [_words(rng, 8) for _ in range(n_clusters)]
    cluster = rng.integers(0, n_clusters, n)
    quality = rng.normal(0, 1, n)
    rows, seen = [], set()
    for i in range(n):
        c = cluster[i]
        title = " ".join(w.capitalize() for w in rng.choice(topic[c], 2, replace=False))
        while title.lower() in seen:
            title += " II"
        seen.add(title.lower())
        overview = " ".join(list(rng.choice(topic[c], 7)) + list(rng.choice(common, 7)))
        genre_ids = [int(c)] + ([int(rng.integers(0, len(_GENRES)))] if rng.random() < 0.3 else [])
        votes = int(rng.lognormal(5, 1.2))
        rows.append({
            "budget": int(rng.integers(0, 10**8)),
            "genres": json.dumps([{"id": g, "name": _GENRES[g]} for g in dict.fromkeys(genre_ids)]),
            "homepage": "",
            "id": 1000 + i,
            "keywords": json.dumps([{"id": j, "name": str(w)} for j, w in enumerate(rng.choice(keywords[c], 3, replace=False))]),
            "original_language": "en",
            "original_title": title,
            "overview": overview if rng.random() > 0.02 else np.nan,
            "popularity": float(votes / 50),
            "production_companies": "[]",
            "production_countries": "[]",
            "release_date": f"{int(rng.integers(1960, 2017))}-0{int(rng.integers(1, 10))}-15",
            "revenue": 0,
            "runtime": float(rng.integers(80, 160)),
            "spoken_languages": "[]",
            "status": "Released",
            "tagline": " ".join(rng.choice(topic[c], 3)) if rng.random() > 0.3 else np.nan,
            "title": title,
            "vote_average": float(np.clip(6.3 + 0.8 * quality[i] + rng.normal(0, 0.3), 1, 10).round(1)),
            "vote_count": votes,
        })
    return pd.DataFrame(rows), cluster, quality


def generate(n: int = 300, seed: int = 0, n_users: int = 80) -> Dataset:
    """A small catalogue of ``n`` films and MovieLens-style ratings by ``n_users`` users.

    Users like films of their one or two favourite clusters, good films more; they rate in time order,
    so the per-user time split of the real protocol applies unchanged.
    """
    rng = np.random.default_rng(seed)
    cat, cluster, quality = _catalogue_small(n, rng)
    votes = cat["vote_count"].to_numpy(dtype=float)
    rows = []
    for user in range(1, n_users + 1):
        favourite = rng.choice(6, size=int(rng.integers(1, 3)), replace=False)
        fav = np.isin(cluster, favourite)
        weight = np.sqrt(votes) * np.where(fav, 4.0, 1.0)
        size = int(rng.integers(25, 60))
        films = rng.choice(n, size=min(size, n), replace=False, p=weight / weight.sum())
        ts = np.sort(rng.integers(1_000_000_000, 1_500_000_000, len(films)))
        for f, t in zip(films, ts, strict=True):
            score = 2.6 + 1.4 * fav[f] + 0.5 * quality[f] + rng.normal(0, 0.6)
            rows.append({"userId": user, "movieId": int(f) + 1, "id": int(cat["id"].iloc[f]),
                         "rating": float(np.clip(np.round(score * 2) / 2, 0.5, 5.0)), "timestamp": int(t)})
    ratings = pd.DataFrame(rows)
    return Dataset(
        X=cat,
        files=[generated("recommender", {"n": n, "seed": seed, "users": n_users})],
        name="synthetic",
        extras={"ratings": ratings},
    )


def predict_example(ds: Dataset) -> pd.DataFrame:
    """Raw served input: an exact title, a lower-cased one with a typo, and a title that does not exist."""
    titles = ds.X["title"].astype(str).tolist()
    typo = titles[1].lower()[:-1] if len(titles[1]) > 6 else titles[1].lower()
    return pd.DataFrame({"title": [titles[0], typo, "Zzyzx Qwerty Nonexistent"]})


