"""recommender pipeline: a raw TMDB catalogue in, a fitted recommender that answers titles with films.

``build_pipeline`` returns an unfitted ``MovieRecommender`` whose ``features`` step is a scikit-learn
Pipeline (clean -> weighted TF-IDF per field -> optional LSA -> unit rows). It is fitted on the catalogue
(plus training ratings in hybrid mode) and ``predict`` takes titles, so the logged model serves raw input:
``mlflow.pyfunc.load_model(uri).predict(pd.DataFrame({"title": ["Inception"]}))``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pandas as pd
from annotated_types import Ge, Interval

from common.params import Search, Seed
from projects.recommender.baselines import reference_recommenders
from projects.recommender.features import build_content_features
from projects.recommender.model import MovieRecommender


def build_pipeline(
    mode: Literal["hybrid", "content"] = "hybrid",
    n_recommendations: Annotated[int, Ge(1)] = 10,
    text_weight: Annotated[float, Ge(0), Search(0.0, 2.0)] = 1.0,
    title_weight: Annotated[float, Ge(0), Search(0.0, 1.0)] = 0.5,
    genre_weight: Annotated[float, Ge(0), Search(0.0, 1.0)] = 0.3,
    keyword_weight: Annotated[float, Ge(0), Search(0.0, 1.0)] = 0.5,
    era_weight: Annotated[float, Ge(0), Search(0.0, 1.0)] = 0.3,
    svd_components: Annotated[int, Ge(0)] = 0,
    min_df: Annotated[int, Ge(1), Search(1, 5)] = 2,
    recency: Annotated[float, Ge(0), Search(0.0, 20.0)] = 5.0,
    prior_quantile: Annotated[float, Interval(ge=0, le=1), Search(0.5, 0.98)] = 0.9,
    content_weight: Annotated[float, Ge(0)] = 0.3,
    quality_weight: Annotated[float, Ge(0)] = 0.2,
    cf_weight: Annotated[float, Ge(0)] = 0.5,
    tune: bool = True,
    tune_step: Annotated[float, Interval(gt=0, le=1)] = 0.1,
    cf_signal: Annotated[Literal["liked", "rated", "centered"], Search()] = "liked",
    neighbors: Annotated[int, Ge(0), Search(choices=(0, 20, 50, 100))] = 0,
    seed: Seed = 0,
) -> MovieRecommender:
    """An unfitted recommender (see ``MovieRecommender`` for the blend and tuning parameters).

    Args:
        mode: ``hybrid`` (content + quality prior + item-item CF from training ratings) or ``content``.
        n_recommendations: films per query from ``predict`` (>= 1).
        text_weight, title_weight, genre_weight, keyword_weight, era_weight: each field's share of the
            content similarity (overview + tagline, title words, genres, keywords, release decade; each >= 0).
        svd_components: > 0 projects the TF-IDF onto that many LSA dimensions (dense item vectors); 0 does not.
        min_df: minimum document frequency of overview words and keywords (>= 1).
        recency: half-life (in liked films) of a user's history when recommending from a list (>= 0; 0 weighs
            every like the same).
        prior_quantile: vote-count quantile that sets the weighted rating's ``m`` (in [0, 1]).
        content_weight, quality_weight, cf_weight: the blend used when it is not tuned on ratings (each >= 0;
            normalised to sum to one, all zero = content only).
        tune: choose the blend on validation users carved out of the ratings given to ``fit``.
        tune_step: grid step of that search (in (0, 1]).
        cf_signal: ``liked``, ``rated`` or ``centered`` ratings make the item-item signal.
        neighbors: > 0 keeps only each liked film's nearest films (item-kNN aggregation); 0 uses every film.
        seed: random seed of the LSA (0 to 2**32 - 1).
    """
    features = build_content_features(
        text_weight=text_weight, title_weight=title_weight, genre_weight=genre_weight,
        keyword_weight=keyword_weight, era_weight=era_weight, svd_components=svd_components, min_df=min_df,
        seed=seed,
    )
    return MovieRecommender(
        features=features, mode=mode, n_recommendations=n_recommendations, recency=recency,
        prior_quantile=prior_quantile, content_weight=content_weight, quality_weight=quality_weight,
        cf_weight=cf_weight, tune=tune, tune_step=tune_step, cf_signal=cf_signal, neighbors=neighbors,
    )


def baselines() -> dict[str, Any]:
    """Random, most-voted, vote-weighted rating and the seed's TF-IDF, scored under the same protocol."""
    return reference_recommenders()


def signature_example(X: Any) -> pd.DataFrame:
    """What the served model takes: a ``title`` column (titles, optionally with a year, or TMDB ids)."""
    if isinstance(X, pd.DataFrame) and "title" in X.columns:
        titles = X["title"].astype(str).head(3).tolist()
    elif isinstance(X, list | tuple):
        titles = [str(t) for t in X[:3]]
    else:
        titles = ["Inception"]
    return pd.DataFrame({"title": titles})
