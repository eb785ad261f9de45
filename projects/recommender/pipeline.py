"""recommender pipeline: a raw TMDB catalogue in, a fitted recommender that answers titles with films.

``build_pipeline`` returns an unfitted ``MovieRecommender`` whose ``features`` step is a scikit-learn
Pipeline (clean -> weighted TF-IDF per field -> optional LSA -> unit rows). It is fitted on the catalogue
(plus training ratings in hybrid mode) and ``predict`` takes titles, so the logged model serves raw input:
``mlflow.pyfunc.load_model(uri).predict(pd.DataFrame({"title": ["Inception"]}))``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pandas as pd
from annotated_types import Ge, Gt, Interval

from common.params import Search, Seed
from projects.recommender.baselines import reference_recommenders
from projects.recommender.features import build_content_features
from projects.recommender.model import MovieRecommender


def build_pipeline(
    mode: Literal["hybrid", "content"] = "hybrid",
    n_recommendations: Annotated[int, Ge(1)] = 10,
    text_weight: Annotated[float, Ge(0), Search(0.0, 2.0)] = 0.68,
    title_weight: Annotated[float, Ge(0), Search(0.0, 1.0)] = 0.66,
    genre_weight: Annotated[float, Ge(0), Search(0.0, 1.0)] = 0.49,
    keyword_weight: Annotated[float, Ge(0), Search(0.0, 1.0)] = 0.22,
    era_weight: Annotated[float, Ge(0), Search(0.0, 1.0)] = 0.25,
    svd_components: Annotated[int, Ge(0)] = 0,
    min_df: Annotated[int, Ge(1), Search(1, 5)] = 1,
    recency: Annotated[float, Ge(0), Search(0.0, 20.0)] = 4.7,
    prior_quantile: Annotated[float, Interval(ge=0, le=1)] = 0.9,
    content_weight: Annotated[float, Ge(0)] = 0.3,
    quality_weight: Annotated[float, Ge(0)] = 0.2,
    cf_weight: Annotated[float, Ge(0)] = 0.5,
    popularity_weight: Annotated[float, Ge(0)] = 0.0,
    tune: bool = True,
    tune_step: Annotated[float, Interval(gt=0, le=1)] = 0.1,
    cf_signal: Annotated[Literal["liked", "rated", "centered"], Search()] = "liked",
    neighbors: Annotated[int, Ge(0), Search(choices=(0, 20, 50, 100))] = 0,
    cf_model: Literal["ease", "cosine"] = "ease",
    cf_lambda: Annotated[float, Gt(0)] = 100.0,
    cf_side_weight: Annotated[float, Ge(0)] = 0.0,
    tmdb_prior: bool = False,
    tune_split: Literal["per_user", "time"] = "per_user",
    ann: Literal["auto", "exact", "approximate"] = "auto",
    ann_min_items: Annotated[int, Ge(3)] = 200_000,
    rerank: bool = True,
    rerank_candidates: Annotated[int, Ge(1)] = 50,
    rerank_mix: Annotated[float, Interval(ge=0, le=1)] = 0.3,
    seed: Seed = 0,
) -> MovieRecommender:
    """An unfitted recommender (see ``MovieRecommender`` for the blend and tuning parameters).

    Args:
        mode: ``hybrid`` (content + quality prior + in-protocol popularity + a collaborative model fitted on
            training ratings) or ``content``.
        n_recommendations: films per query from ``predict`` (>= 1).
        text_weight, title_weight, genre_weight, keyword_weight, era_weight: each field's share of the
            content similarity (overview + tagline, title words, genres, keywords, release decade; each >= 0).
        svd_components: > 0 projects the TF-IDF onto that many LSA dimensions (dense item vectors); 0 does not.
        min_df: minimum document frequency of overview words and keywords (>= 1).
        recency: half-life (in liked films) of a user's history when recommending from a list (>= 0; 0 weighs
            every like the same).
        prior_quantile: vote-count quantile that sets the weighted rating's ``m`` (in [0, 1]).
        content_weight, quality_weight, cf_weight, popularity_weight: the blend used when it is not tuned on
            ratings (each >= 0; normalised to sum to one, all zero = content only).
        tune: choose the blend (and EASE's lambda and side weight) on validation users carved out of the
            ratings given to ``fit``.
        tune_step: grid step of that search (in (0, 1]).
        cf_signal: ``liked``, ``rated`` or ``centered`` ratings make the item-item signal.
        neighbors: > 0 keeps only each liked film's nearest films in content similarity; 0 uses every film.
        cf_model: the collaborative part: ``ease`` (EASE, Steck 2019) or ``cosine`` (item-item cosine).
        cf_lambda: EASE's L2 penalty when it is not tuned (> 0).
        cf_side_weight: weight of the content vectors as EASE side information when it is not tuned (>= 0;
            0 is plain EASE). With ``tune``, lambda (30, 100, 300, 1000) and this weight (0, 30, 100, 300)
            are chosen together on validation users.
        tmdb_prior: let the blend use the quality prior from TMDB's vote counts and means. Off by default:
            that data is a 2017 snapshot, later than most MovieLens ratings, so under a time split it would
            bring "future" popularity into the score.
        tune_split: how validation users are carved out of the training ratings: ``per_user`` (each
            user's last 20% of likes) or ``time`` (a global cutoff).
        ann: ``auto`` answers single-title content queries from an approximate nearest-neighbour graph
            (pynndescent) when the catalogue has at least ``ann_min_items`` films; ``exact`` never does;
            ``approximate`` always does.
        ann_min_items: the catalogue size from which ``ann=auto`` builds the graph (>= 3).
        rerank: with ``tune``, learn a gradient-boosted reranker on the validation users that reorders the
            blend's top ``rerank_candidates`` films for each list of liked films (single-title queries keep
            the blend's order).
        rerank_candidates: how many of the blend's films the reranker reorders (>= 1).
        rerank_mix: the blend's own rank's share of the final order (in [0, 1]; 0: the reranker alone).
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
        popularity_weight=popularity_weight, cf_model=cf_model, cf_lambda=cf_lambda, tune_split=tune_split,
        ann=ann, ann_min_items=ann_min_items, cf_side_weight=cf_side_weight, tmdb_prior=tmdb_prior,
        rerank=rerank, rerank_candidates=rerank_candidates, rerank_mix=rerank_mix,
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
