"""recommender: title lookup, the evaluation protocol, the no-N x N guarantee, the API, persistence, real data."""

from __future__ import annotations

import inspect
import json
import pickle
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from scipy import sparse
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils import get_tags
from sklearn.utils.validation import check_is_fitted

from common import protocol as common_protocol
from common import registry, train
from common.errors import DataError, InputError, ParameterError
from projects.recommender import bench, margin, protocol, synthetic
from projects.recommender.baselines import RandomRecommender, reference_recommenders
from projects.recommender.collab import EASE, ItemKNN, Popularity, cosine_weights, ease_weights
from projects.recommender.data import load
from projects.recommender.features import FieldTfidf, MovieText
from projects.recommender.lookup import title_key
from projects.recommender.model import RERANK_FEATURES, MovieRecommender
from projects.recommender.pipeline import build_pipeline, signature_example
from tests.conftest import REAL_DATA
from tests.settings import TEST_PARAMS


def _genre(name: str) -> str:
    return json.dumps([{"id": 1, "name": name}])


@pytest.fixture(scope="module")
def tiny() -> pd.DataFrame:
    """A hand-made catalogue with the awkward cases: accents, remakes, a sequel family, numeric titles."""
    rows = [
        (27205, "Inception", "Inception", "A thief steals secrets through dream sharing.", "Science Fiction", "2010-07-14", 13752),
        (194, "Amélie", "Le Fabuleux Destin d'Amélie Poulain", "A shy waitress in Paris helps others.", "Comedy", "2001-04-25", 3310),
        (1255, "The Host", "괴물", "A monster emerges from the Han river.", "Horror", "2006-07-27", 537),
        (72710, "The Host", "The Host", "Souls invade Earth and take over human bodies.", "Science Fiction", "2013-03-22", 1817),
        (268, "Batman", "Batman", "The dark knight of Gotham city fights the Joker.", "Action", "1989-06-23", 2096),
        (2661, "Batman", "Batman", "The caped crusader and the boy wonder fight villains.", "Action", "1966-07-30", 203),
        (671, "Harry Potter and the Philosopher's Stone", "Harry Potter and the Philosopher's Stone",
         "A boy wizard goes to a school of magic.", "Fantasy", "2001-11-16", 7006),
        (672, "Harry Potter and the Chamber of Secrets", "Harry Potter and the Chamber of Secrets",
         "The boy wizard returns to the school of magic.", "Fantasy", "2002-11-13", 5815),
        (14161, "2012", "2012", "The end of the world arrives with floods.", "Action", "2009-10-10", 4903),
        (155, "The Dark Knight", "The Dark Knight", "Batman fights the Joker in Gotham city.", "Action", "2008-07-16", 12002),
        (603, "The Matrix", "The Matrix", "A hacker learns reality is a simulation.", "Science Fiction", "1999-03-30", 8907),
        (11, "Star Wars", "Star Wars", "A farm boy joins a rebellion in space.", "Science Fiction", "1977-05-25", 6624),
    ]
    return pd.DataFrame({
        "id": [r[0] for r in rows], "title": [r[1] for r in rows], "original_title": [r[2] for r in rows],
        "overview": [r[3] for r in rows], "tagline": [""] * len(rows), "genres": [_genre(r[4]) for r in rows],
        "keywords": ["[]"] * len(rows), "release_date": [r[5] for r in rows], "vote_average": 7.0,
        "vote_count": [r[6] for r in rows],
    })


@pytest.fixture(scope="module")
def tiny_model(tiny: pd.DataFrame):
    return build_pipeline(mode="content", min_df=1).fit(tiny)


@pytest.fixture(scope="module")
def synth():
    return synthetic.generate()


# ------------------------------------------------------------------------------------------ title lookup
@pytest.mark.parametrize(
    ("query", "title", "year", "status"),
    [
        ("Inception", "Inception", 2010, "exact"),
        ("INCEPTION!", "Inception", 2010, "exact"),
        ("incepton", "Inception", 2010, "corrected"),
        ("amelie", "Amélie", 2001, "exact"),
        ("Le fabuleux destin d'Amelie Poulain", "Amélie", 2001, "exact"),
        ("The Host", "The Host", 2013, "popular"),  # two films: the more voted one
        ("The Host (2006)", "The Host", 2006, "year"),
        ("Host, The (2006)", "The Host", 2006, "year"),
        ("batman 1966", "Batman", 1966, "year"),
        ("Dark Knight, The", "The Dark Knight", 2008, "exact"),
        ("matrix", "The Matrix", 1999, "exact"),
        ("2012", "2012", 2009, "exact"),  # a numeric title is a title before it is an id
        ("11", "Star Wars", 1977, "id"),
        (603, "The Matrix", 1999, "id"),
    ],
)
def test_lookup_forgives(tiny_model, query, title, year, status) -> None:
    m = tiny_model.resolve(query)
    assert m.found and tiny_model.titles_[m.position] == title and tiny_model.years_[m.position] == year
    assert m.status == status


@pytest.mark.parametrize("query", ["harry potter", "zzzz qqqq", "", "   ", 999999])
def test_unknown_title_gives_suggestions_not_an_exception(tiny_model, query) -> None:
    out = tiny_model.recommend(query)
    assert (out["status"] == "not_found").all()
    if query == "harry potter":
        assert set(out["title"]) >= {"Harry Potter and the Philosopher's Stone",
                                     "Harry Potter and the Chamber of Secrets"}


@pytest.mark.parametrize("value", [None, float("nan"), np.float32("nan"), pd.NA])
def test_a_missing_title_is_an_input_error_naming_its_row(tiny_model, value) -> None:
    """A missing title cannot be looked up: refused like the other projects' missing values, not 'not found'."""
    for call in (tiny_model.predict, tiny_model.recommend_from, tiny_model.kneighbors):
        with pytest.raises(InputError, match=r"row 1, column 'title': got .*a missing title cannot be looked up"):
            call(["Inception", value])
    with pytest.raises(InputError, match="row 0, column 'title'"):
        tiny_model.recommend(value)
    with pytest.raises(InputError, match="row 2, column 'title'"):  # a CSV cell left blank reads as NaN
        tiny_model.predict(pd.DataFrame({"title": ["Inception", "Alien", value]}))


@pytest.mark.parametrize("value", [3.5, True, b"Inception", {"title": "Inception"}, ["Inception", "Alien"]])
def test_a_title_that_is_neither_text_nor_an_id_is_refused(tiny_model, value) -> None:
    with pytest.raises(InputError, match=r"row 1, column 'title': got .*expected a title \(a string\) or a TMDB id"):
        tiny_model.predict(["Inception", value])


def test_tmdb_ids_still_answer(tiny_model) -> None:
    """Integers (and whole floats, as pandas reads an id column with a blank cell) are TMDB ids."""
    for value in (603, np.int64(603), 603.0):
        out = tiny_model.predict([value])
        assert (out["status"] == "id").all() and out["match"].iloc[0] == "The Matrix (1999)"
    with pytest.raises(InputError, match="row 1"):
        tiny_model.predict(pd.DataFrame({"title": [603, None]}))  # floats with a NaN: the NaN is refused


def test_title_key_normalises() -> None:
    assert title_key("Matrix, The") == title_key("The Matrix") == "matrix"
    assert title_key("Amélie") == title_key("AMELIE")
    assert title_key("Spider-Man") == "spider man"


# -------------------------------------------------------------------------------------------- the model
def test_recommend_excludes_the_query_and_has_k_rows(tiny_model) -> None:
    out = tiny_model.recommend("The Dark Knight", k=3)
    assert list(out.columns) == ["query", "match", "status", "rank", "id", "title", "year", "score"]
    assert len(out) == 3 and out["rank"].tolist() == [1, 2, 3]
    assert 155 not in out["id"].tolist()
    assert out["score"].is_monotonic_decreasing
    assert "Batman" in out["title"].tolist()[:2]  # shares Gotham, Joker and the genre


def test_predict_accepts_lists_series_and_frames(tiny_model) -> None:
    a = tiny_model.predict(["Inception", "the matrix"])
    b = tiny_model.predict(pd.DataFrame({"title": ["Inception", "the matrix"]}))
    c = tiny_model.predict(pd.Series(["Inception", "the matrix"]))
    d = tiny_model.predict(pd.DataFrame({"title": [["Inception"], ["the matrix"]]}))  # JSON "inputs" shape
    for other in (b, c, d):
        pd.testing.assert_frame_equal(a, other)
    assert len(a) == 2 * 10
    with pytest.raises(InputError):
        tiny_model.predict(pd.DataFrame({"a": [1], "b": [2]}))
    with pytest.raises(InputError):
        tiny_model.predict(3.5j)


def test_kneighbors_batch_api(tiny_model) -> None:
    dist, ind = tiny_model.kneighbors(["Inception", "no such film at all"], n_neighbors=4)
    assert dist.shape == ind.shape == (2, 4)
    assert (ind[1] == -1).all() and np.isinf(dist[1]).all()
    assert tiny_model.ids_[ind[0]].tolist() == tiny_model.recommend("Inception", k=4)["id"].tolist()
    every = tiny_model.kneighbors(n_neighbors=2, return_distance=False)
    assert every.shape == (tiny_model.n_items_, 2)
    assert not (every == np.arange(tiny_model.n_items_)[:, None]).any()  # no film is its own neighbour


def test_recommend_from_a_list_excludes_what_was_liked(tiny_model) -> None:
    out = tiny_model.recommend_from(["Batman (1989)", "The Dark Knight", "not a film"], k=5)
    assert len(out) == 5 and not {268, 155} & set(out["id"])


def test_fit_checks_its_input(tiny) -> None:
    with pytest.raises(InputError):
        build_pipeline().fit(tiny.drop(columns=["title"]))
    with pytest.raises(InputError):
        build_pipeline().fit(["not", "a", "catalogue"])
    # A catalogue with no keywords or taglines at all still fits (those fields just carry nothing).
    bare = tiny[["id", "title"]].assign(overview=tiny["overview"])
    assert len(build_pipeline(mode="content", min_df=1).fit(bare).recommend("Inception", k=2)) == 2


def test_fit_refuses_what_is_not_a_catalogue(tiny) -> None:
    with pytest.raises(InputError, match="no rows"):
        build_pipeline().fit(tiny.iloc[:0])
    # Also a TypeError, as Python expects for the wrong type; sparse input is named as such.
    with pytest.raises(TypeError, match="sparse input is not supported"):
        build_pipeline().fit(sparse.csr_matrix(np.eye(3)))


# ------------------------------------------------------------ scikit-learn's contracts, on a catalogue
# scikit-learn's estimator checks fit on numeric arrays, which these estimators refuse (they take a
# catalogue), so tests/estimators/recommender.py declares those checks as expected failures and points
# here: each contract the checks test is run below on a generated catalogue and its ratings.
CATALOGUE_ESTIMATORS: dict[str, Any] = {
    "content": lambda: build_pipeline(mode="content"),
    "hybrid": lambda: build_pipeline(**TEST_PARAMS["recommender"]),
    "default": MovieRecommender,
    "movie_text": MovieText,
    **{name: (lambda base=base: clone(base)) for name, base in reference_recommenders().items()},
    "popularity": Popularity,
    "itemknn": lambda: ItemKNN(neighbors=20),
    "ease": EASE,
}
HISTORIES = [np.array([0, 5, 9]), np.array([1]), np.array([2, 3, 4, 7])]


def _fit(est: Any, data: Any) -> Any:
    if "ratings" in inspect.signature(est.fit).parameters:
        return est.fit(data.X, ratings=data.extras["ratings"])
    return est.fit(data.X)


def _queries(data: Any) -> list[Any]:
    return synthetic.predict_example(data)["title"].tolist()


def _answers(est: Any, data: Any) -> list[Any]:
    """Everything the estimator answers after fit (what the contracts compare)."""
    if isinstance(est, MovieText):
        return [est.transform(data.X)]
    if isinstance(est, MovieRecommender):
        queries = _queries(data)
        return [est.predict(queries), *est.kneighbors(queries, n_neighbors=5), est.transform(data.X.head(20))]
    return list(est.recommend_positions(HISTORIES, 5))


def _one_at_a_time(est: Any, data: Any, order: slice = slice(None)) -> tuple[Any, Any]:
    """(the batch answer, the same queries answered one by one and stacked), queries in ``order``."""
    if isinstance(est, MovieText):
        rows = data.X.iloc[:6].iloc[order]
        return est.transform(rows), pd.concat([est.transform(rows.iloc[[i]]) for i in range(len(rows))])
    if isinstance(est, MovieRecommender):
        queries = _queries(data)[order]
        return est.predict(queries), pd.concat([est.predict([q]) for q in queries], ignore_index=True)
    histories = HISTORIES[order]
    batch = est.recommend_positions(histories, 5)[0]
    return batch, np.vstack([est.recommend_positions([h], 5)[0] for h in histories])


def _assert_same(a: Any, b: Any) -> None:
    if isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b)
    elif sparse.issparse(a):
        assert a.shape == b.shape and (a != b).nnz == 0
    else:
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", list(CATALOGUE_ESTIMATORS))
def test_sklearn_contracts_on_a_catalogue(name: str, synth) -> None:
    est = CATALOGUE_ESTIMATORS[name]()
    # check_fit_score_takes_y: fit(X, y, ...).
    assert list(inspect.signature(est.fit).parameters)[:2] == ["X", "y"]
    if get_tags(est).requires_fit:
        # check_fit_check_is_fitted, check_estimators_unfitted: NotFittedError before fit.
        with pytest.raises(NotFittedError):
            check_is_fitted(est)
        with pytest.raises(NotFittedError):
            _answers(est, synth)
    else:
        # check_transformers_unfitted_stateless: a stateless step answers before fit, as after.
        unfitted = _answers(est, synth)
    params, attributes = joblib.hash(est.get_params()), set(vars(est))
    # check_estimators_fit_returns_self, check_estimators_overwrite_params, check_dont_overwrite_parameters.
    assert _fit(est, synth) is est
    assert joblib.hash(est.get_params()) == params
    added = set(vars(est)) - attributes
    assert all(a.endswith("_") or a.startswith("_") for a in added), sorted(added)
    check_is_fitted(est)
    # check_dict_unchanged: answering leaves the fitted state alone.
    state = joblib.hash(vars(est))
    first = _answers(est, synth)
    assert joblib.hash(vars(est)) == state
    if not get_tags(est).requires_fit:
        for a, b in zip(unfitted, first, strict=True):
            _assert_same(a, b)
    # check_fit_idempotent, check_pipeline_consistency, check_estimators_pickle: the same answers again.
    for again in (_fit(est, synth), _fit(clone(est), synth), pickle.loads(pickle.dumps(est))):
        for a, b in zip(_answers(again, synth), first, strict=True):
            _assert_same(a, b)
    # check_methods_subset_invariance, check_methods_sample_order_invariance: the random baseline draws
    # afresh per call, so a user's films depend on their place in the batch (by design, not checked).
    if not isinstance(est, RandomRecommender):
        for order in (slice(None), slice(None, None, -1)):
            _assert_same(*_one_at_a_time(est, synth, order))
    # check_transformer_general: one output row per input row; fit_transform is fit then transform.
    if hasattr(est, "transform"):
        assert _answers(est, synth)[-1].shape[0] == (len(synth.X) if isinstance(est, MovieText) else 20)
    if hasattr(est, "fit_transform"):
        _assert_same(clone(est).fit_transform(synth.X), first[0])


def test_field_tfidf_tolerates_an_empty_field_and_pickles_its_vocabulary() -> None:
    empty = FieldTfidf().fit(["", " ", ""])
    assert empty.transform(["anything"]).shape == (1, 1) and empty.transform(["x"]).nnz == 0
    assert empty.get_feature_names_out().tolist() == ["(none)"]
    docs = ["a dream within a dream", "the dark knight", "a knight's tale"]
    vec = FieldTfidf().fit(docs)
    copy = pickle.loads(pickle.dumps(vec))
    assert copy.vocabulary_ == vec.vocabulary_
    assert (copy.transform(docs) != vec.transform(docs)).nnz == 0


def test_never_builds_an_n_by_n_matrix(synth) -> None:
    cat = synthetic.catalogue(3000, seed=1)
    model = build_pipeline(mode="content").fit(cat)
    n = len(cat)

    def arrays(obj, depth=0):
        if depth > 4:
            return
        for value in vars(obj).values():
            if isinstance(value, np.ndarray) or sparse.issparse(value):
                yield value
            elif hasattr(value, "__dict__") and not isinstance(value, type):
                yield from arrays(value, depth + 1)

    for arr in arrays(model):
        assert not (arr.shape[0] == n and len(arr.shape) > 1 and arr.shape[1] == n), "found an N x N matrix"
    assert sparse.issparse(model.item_vectors_)
    assert model.item_vectors_.nnz < 200 * n  # a few dozen terms per film, not N per film


def test_pickle_and_skops_round_trip(synth) -> None:
    from skops.io import dumps, get_untrusted_types, loads

    model = build_pipeline(tune_step=0.25).fit(synth.X, ratings=synth.extras["ratings"])
    queries = synthetic.predict_example(synth)
    expected = model.predict(queries)
    data = dumps(model)
    for other in (loads(data, trusted=get_untrusted_types(data=data)), pickle.loads(pickle.dumps(model))):
        pd.testing.assert_frame_equal(other.predict(queries), expected)
        assert other.resolve(int(synth.X["id"].iloc[0])).found  # the id lookup is rebuilt on load


def test_signature_example_is_a_title_frame(synth) -> None:
    ex = signature_example(synth.X)
    assert list(ex.columns) == ["title"] and len(ex) == 3


# ---------------------------------------------------------------------------------------------- protocol
def _ratings(rows):
    return pd.DataFrame(rows, columns=["userId", "id", "rating", "timestamp"])


def test_user_splits_are_chronological_80_20() -> None:
    id_pos = {100 + i: i for i in range(20)}
    rows = [(1, 100 + i, 5.0, 1000 - i) for i in range(12)]  # rated newest-id first
    rows += [(1, 119, 2.0, 5000), (2, 100, 5.0, 1), (2, 101, 4.0, 2)]  # a dislike; a user with too few likes
    splits = protocol.user_splits(_ratings(rows), id_pos, min_liked=10)
    assert [s.user for s in splits] == [1]
    s = splits[0]
    order = [id_pos[100 + i] for i in range(11, -1, -1)]  # oldest first
    assert s.history.tolist() == order[:9] and s.test.tolist() == order[9:]  # floor(0.8 * 12) = 9
    assert s.cutoff == 1000 - 2


def test_training_ratings_drop_the_test_period_only() -> None:
    id_pos = {100 + i: i for i in range(30)}
    rows = [(1, 100 + i, 4.5, 10 * i) for i in range(10)]  # likes at t = 0..90
    rows += [(1, 120, 2.0, 85), (1, 121, 3.0, 5)]  # a dislike during the test period, one before
    rows += [(2, 100 + i, 5.0, 1000 + i) for i in range(5)]  # another user, later in time, not evaluated
    ratings = _ratings(rows)
    splits = protocol.user_splits(ratings, id_pos)
    kept = protocol.training_ratings(ratings, splits)
    kept_pairs = set(zip(kept["userId"], kept["id"], strict=True))
    test_ids = {100 + i for i in (8, 9)}
    assert not {(1, i) for i in test_ids} & kept_pairs
    assert (1, 120) not in kept_pairs and (1, 121) in kept_pairs
    assert {(1, 100 + i) for i in range(8)} <= kept_pairs
    assert len(kept[kept["userId"] == 2]) == 5


def test_ranking_metrics_by_hand() -> None:
    split = protocol.UserSplit(1, np.array([0]), np.array([3, 7]), 0, np.array([0]))
    recs = np.array([[7, 1, 3, 2, 4, 5, 6, 8, 9, 10]])
    m = protocol.ranking_metrics(recs, [split], n_items=20, k=10)
    ideal = 1 + 1 / np.log2(3)
    assert m["ndcg_at_10"] == pytest.approx((1 + 1 / np.log2(4)) / ideal)
    assert m["precision_at_10"] == pytest.approx(0.2)
    assert m["recall_at_10"] == pytest.approx(1.0)
    assert m["coverage"] == pytest.approx(10 / 20)


def test_evaluation_reports_every_metric_and_baseline(synth, tmp_path: Path) -> None:
    from projects.recommender.evaluate import evaluate

    project = registry.get("recommender")
    params, data_params = project.resolve_params(TEST_PARAMS["recommender"])
    outcome = evaluate(common_protocol.Context(project, params, data_params, synth, tmp_path, fit_final=False))
    metrics = outcome.metrics
    for prefix in ("", "peruser_"):
        for name in ("ndcg_at_10", "precision_at_10", "recall_at_10", "coverage", "coverage_cold"):
            assert np.isfinite(metrics[prefix + name]), prefix + name
            for base in ("random", "seedtfidf", "popularity", "itemknn", "ease"):
                assert np.isfinite(metrics[f"{prefix}baseline_{base}_{name}"]), (prefix, base, name)
            for ref in ("mostvoted", "weightedrating"):  # TMDB 2017 data: references, never baselines
                assert np.isfinite(metrics[f"{prefix}reference_{ref}_{name}"]), (prefix, ref, name)
                assert f"{prefix}baseline_{ref}_{name}" not in metrics
        for name in ("users_evaluated", "films_evaluated", "test_items", "training_ratings",
                     "baseline_ease_lambda", "baseline_itemknn_neighbors"):
            assert metrics[prefix + name] >= 0, prefix + name
        for base in ("ease", "popularity", "itemknn"):
            low, high = metrics[f"{prefix}model_minus_{base}_ci_low"], metrics[f"{prefix}model_minus_{base}_ci_high"]
            assert low <= metrics[f"{prefix}model_minus_{base}_ndcg_at_10"] <= high
        assert metrics[prefix + "ndcg_at_10"] > metrics[prefix + "baseline_random_ndcg_at_10"]
        assert metrics[prefix + "ndcg_at_10"] > metrics[prefix + "baseline_seedtfidf_ndcg_at_10"]
        assert (tmp_path / f"{prefix}ndcg_vs_baselines.png").is_file()
        assert abs(sum(metrics[f"{prefix}blend_{c}"] for c in ("content", "quality", "popularity", "cf")) - 1) < 1e-9
    assert metrics["cross_user_leak"] == 0.0  # the global split: nothing in training is after the cutoff
    assert metrics["peruser_cross_user_leak"] > 0.0


def test_the_protocol_tag_changed_with_the_protocol() -> None:
    """Versions scored under the per-user protocol (issue 17 and before) are not compared as equals."""
    from common.spec import SplitSpec

    old = SplitSpec(kind="per_user_time", test_size=0.2, cv_folds=0, cv_on="none", refit_on="all", seed=42)
    assert registry.get("recommender").spec.split.fingerprint() != old.fingerprint()


def test_films_rated_before_the_cutoff_are_never_candidates() -> None:
    id_pos = {100 + i: i for i in range(30)}
    rows = [(1, 100 + i, 5.0, 10 * i) for i in range(10)]  # likes at t = 0..90: history 0..7, test 8, 9
    rows += [(1, 120, 2.0, 5), (1, 121, 3.0, 95)]  # a dislike before the cutoff, one after
    splits = protocol.user_splits(_ratings(rows), id_pos)
    seen = set(splits[0].exclude.tolist())
    assert seen == set(range(8)) | {20}  # the history and the earlier dislike, not the later one
    scores = np.zeros((1, 30))
    scores[0, 20] = 10.0  # the disliked film would top the list
    assert 20 not in protocol.top_k(scores, 10, [splits[0].exclude])[0]


def test_the_global_time_split_learns_only_from_the_past() -> None:
    id_pos = {100 + i: i for i in range(40)}
    rows = [(1, 100 + i, 5.0, i) for i in range(10)]  # user 1: likes at t = 0..9
    rows += [(2, 110 + i, 4.0, 5 + i) for i in range(10)]  # user 2: likes at t = 5..14
    rows += [(3, 120 + i, 4.0, 20 + i) for i in range(3)]  # user 3: only after the cutoff
    rows += [(2, 130, 1.0, 3)]  # a dislike before the cutoff
    split = protocol.time_splits(_ratings(rows), id_pos, min_history=2)
    T = protocol.global_cutoff(_ratings(rows))
    likes = np.array([r[3] for r in rows if r[2] >= 4])
    assert np.mean(likes >= T) == pytest.approx(0.2, abs=0.05)
    assert (split.train["timestamp"] < T).all() and split.cutoff == T
    assert [s.user for s in split.users] == [2]  # user 1 has nothing after T, user 3 nothing before
    u = split.users[0]
    assert set(u.test.tolist()) == {id_pos[110 + i] for i in range(10) if 5 + i >= T}
    assert id_pos[130] in set(u.exclude.tolist())
    assert protocol.cross_user_leak(split.train, split.users) == 0.0


def test_the_time_split_needs_one_rating_before_the_cutoff() -> None:
    """Who is evaluated: any rating before T makes a history (a like is not required); none, a cold user."""
    id_pos = {100 + i: i for i in range(40)}
    rows = [(1, 100 + i, 5.0, i) for i in range(16)]  # user 1: likes at t = 0..15 (sets T)
    rows += [(1, 120 + i, 5.0, 30 + i) for i in range(2)]  # ... and after T
    rows += [(2, 125, 2.0, 1), (2, 126, 4.0, 31)]  # user 2: one dislike before T, one like after
    rows += [(3, 127, 4.0, 32)]  # user 3: nothing before T
    ratings = _ratings(rows)
    T = protocol.global_cutoff(ratings)
    assert 15 < T <= 30
    split = protocol.time_splits(ratings, id_pos)  # min_history=1 by default
    assert [s.user for s in split.users] == [1, 2]
    u2 = split.users[1]
    assert len(u2.history) == 0 and u2.exclude.tolist() == [id_pos[125]]  # queried with no like, dislike excluded
    assert [s.user for s in protocol.time_splits(ratings, id_pos, min_history=2).users] == [1]
    assert [s.user for s in protocol.make_protocol("time", ratings, id_pos).users] == [1, 2]
    model = build_pipeline(mode="content").fit(synthetic.catalogue(40, seed=2).assign(id=np.arange(100, 140)))
    recs, _ = model.recommend_positions(split.histories, 5, split.excludes)  # an empty query still answers
    assert recs.shape == (2, 5) and id_pos[125] not in recs[1]
    with pytest.raises(ValueError, match="min_history"):
        protocol.time_splits(ratings, id_pos, min_history=0)


def test_paired_bootstrap_interval() -> None:
    rng = np.random.default_rng(0)
    a = rng.random(400)
    mean, low, high = protocol.paired_bootstrap(a + 0.1, a)
    assert mean == pytest.approx(0.1) and low == pytest.approx(0.1) and high == pytest.approx(0.1)
    mean, low, high = protocol.paired_bootstrap(a, rng.random(400))
    assert low < mean < high and low < 0 < high


def test_coverage_over_films_that_can_be_recommended() -> None:
    split = protocol.UserSplit(1, np.array([0]), np.array([3]), 0, np.array([0]))
    recs = np.array([[1, 2, 3, 4, 5]])
    rated = np.zeros(20, dtype=bool)
    rated[:10] = True
    m = protocol.ranking_metrics(recs, [split], 20, k=5, rated=rated)
    assert m["coverage"] == pytest.approx(5 / 10) and m["coverage_cold"] == 0.0


def _small_likes(seed: int = 0) -> Any:
    rng = np.random.default_rng(seed)
    return sparse.csr_matrix((rng.random((40, 12)) < 0.3).astype(np.float32))


def test_ease_closed_form_matches_the_constrained_least_squares() -> None:
    """Parity of the closed form with EASE's definition: per film, a ridge regression on the other films."""
    X = _small_likes().toarray().astype(np.float64)
    lam = 5.0
    B = ease_weights(sparse.csr_matrix(X), lam)
    for j in range(X.shape[1]):
        others = [i for i in range(X.shape[1]) if i != j]
        A = X[:, others]
        b = np.linalg.solve(A.T @ A + lam * np.eye(len(others)), A.T @ X[:, j])
        np.testing.assert_allclose(B[others, j], b, atol=1e-4)
        assert B[j, j] == 0.0
    # Side information adds F F' to the Gram matrix: the same as stacking sqrt(w) F' under X.
    F = np.random.default_rng(1).random((12, 4))
    stacked = sparse.csr_matrix(np.vstack([X, np.sqrt(3.0) * F.T]))
    np.testing.assert_allclose(ease_weights(sparse.csr_matrix(X), lam, F, 3.0), ease_weights(stacked, lam), atol=1e-4)


def test_ease_blocked_cholesky_matches_the_dense_inverse() -> None:
    """Over more films than one block (512): the blocked Gram matrix and in-place Cholesky inverse are exact."""
    rng = np.random.default_rng(4)
    X = sparse.csr_matrix((rng.random((80, 700)) < 0.05).astype(np.float32))
    F = sparse.csr_matrix((rng.random((700, 300)) < 0.02).astype(np.float32))
    for side, weight in ((None, 0.0), (F, 30.0)):
        G = (X.T @ X).toarray().astype(np.float64)
        if side is not None:
            G += weight * (F @ F.T).toarray()
        P = np.linalg.inv(G + 50.0 * np.eye(700))
        expected = -P / np.diag(P)[None, :]
        np.fill_diagonal(expected, 0.0)
        got = ease_weights(X, 50.0, side, weight)
        assert got.dtype == np.float32 and got.flags["C_CONTIGUOUS"]
        np.testing.assert_allclose(got, expected, atol=2e-6)


def test_itemknn_matches_scikit_learn_cosine() -> None:
    from sklearn.metrics.pairwise import cosine_similarity

    X = _small_likes(2)
    S = cosine_weights(X)
    expected = cosine_similarity(X.T.toarray())
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(S, expected, atol=1e-6)
    assert ((cosine_weights(X, neighbors=3) > 0).sum(axis=1) <= 3).all()


def test_collaborative_anchors_learn_from_ratings_only(synth) -> None:
    ratings = synth.extras["ratings"]
    pop = Popularity().fit(synth.X, ratings=ratings)
    liked = ratings[ratings["rating"] >= 4.0]["id"].value_counts()
    top = synth.X["id"].to_numpy()[pop.recommend_positions([np.array([], dtype=np.int64)], 1)[0][0, 0]]
    assert liked.index[0] == top or liked.loc[top] == liked.iloc[0]
    ease = EASE().fit(synth.X, ratings=ratings)
    cold = np.setdiff1d(np.arange(len(synth.X)), ease.items_)
    recs, _ = ease.recommend_positions(HISTORIES, 5)
    assert not np.isin(recs, cold).any() or len(ease.items_) < 10
    # Without ratings there is nothing to learn: every film scores 0.
    assert not EASE().fit(synth.X).scores(HISTORIES).any()


@pytest.fixture(scope="module")
def reranked(synth):
    return build_pipeline(**TEST_PARAMS["recommender"]).fit(synth.X, ratings=synth.extras["ratings"])


def _long_histories(model: MovieRecommender, synth) -> list[np.ndarray]:
    """Histories at least as long as the reranker's shortest (what it reorders), from real users' likes."""
    split = protocol.make_protocol("per_user", synth.extras["ratings"], model.id_pos_, min_liked=10)
    out = [s.history for s in split.users if len(s.history) >= model.rerank_min_history_]
    assert len(out) >= 5
    return out[:12]


def test_the_reranker_learns_from_validation_users_and_reorders_the_blend(reranked, synth) -> None:
    """It is fitted (on the tuning's validation rounds, never on held-out data) and only reorders the
    blend's top ``rerank_candidates`` films; histories shorter than any it learned from keep the blend."""
    model = reranked
    assert model.ranker_ is not None and model.rerank_min_history_ >= 1
    assert model.validation_["rerank_liked"] >= 10 and model.validation_["rerank_rows"] > model.validation_["rerank_liked"]
    assert model.ranker_.n_features_in_ == len(RERANK_FEATURES)
    histories = _long_histories(model, synth)
    recs, scores = model.recommend_positions(histories, 10)
    blend = model.score_histories(histories)
    candidates = protocol.top_k(blend.copy(), model.rerank_candidates, histories)
    for row, cand, h in zip(recs, candidates, histories, strict=True):
        assert set(row) <= set(cand) and not np.isin(row, h).any() and len(set(row)) == 10
    assert (np.diff(scores, axis=1) <= 0).all()  # best first, by the reranker's score
    # A single title is below the shortest history it learned from: the blend's order, unchanged.
    single = [np.array([p]) for p in range(5)]
    pos, _ = model.recommend_positions(single, 10)
    np.testing.assert_array_equal(pos, protocol.top_k(model.score_histories(single), 10, single))


def test_the_reranker_with_the_blend_rank_alone_is_the_blend(reranked, synth) -> None:
    """``rerank_mix=1`` orders by the blend's rank only: the same films, in the same order, as no reranker."""
    model = clone(reranked).set_params(rerank_mix=1.0)
    model.fit(synth.X, ratings=synth.extras["ratings"])
    plain = clone(reranked).set_params(rerank=False).fit(synth.X, ratings=synth.extras["ratings"])
    assert plain.ranker_ is None and "rerank_rows" not in plain.validation_
    histories = _long_histories(model, synth)
    np.testing.assert_array_equal(model.recommend_positions(histories, 10)[0],
                                  plain.recommend_positions(histories, 10)[0])
    # The mix is what changes the order: the default one does (on these users).
    assert not np.array_equal(reranked.recommend_positions(histories, 10)[0], plain.recommend_positions(histories, 10)[0])


def test_reranked_answers_do_not_depend_on_the_batch_and_survive_pickling(reranked, synth) -> None:
    histories = _long_histories(reranked, synth)
    batch = reranked.recommend_positions(histories, 10)
    one_by_one = [reranked.recommend_positions([h], 10) for h in histories[::-1]][::-1]
    np.testing.assert_array_equal(batch[0], np.vstack([p for p, _ in one_by_one]))
    np.testing.assert_allclose(batch[1], np.vstack([s for _, s in one_by_one]), rtol=1e-5)
    copy = pickle.loads(pickle.dumps(reranked))
    np.testing.assert_array_equal(copy.recommend_positions(histories, 10)[0], batch[0])
    again = clone(reranked).fit(synth.X, ratings=synth.extras["ratings"])  # deterministic: no random state
    np.testing.assert_array_equal(again.recommend_positions(histories, 10)[0], batch[0])


def test_reranked_lists_of_any_length_skip_what_was_rated(reranked, synth) -> None:
    """``k`` above ``rerank_candidates`` is reranked to its full length; when fewer films are left than the
    reranker's candidates, the films a user rated stay out of the top (they fill only what nothing else can)."""
    histories = _long_histories(reranked, synth)
    recs, scores = reranked.recommend_positions(histories, 80)
    assert recs.shape == (len(histories), 80) and np.isfinite(scores).all()
    for row, h in zip(recs, histories, strict=True):
        assert len(set(row)) == 80 and not np.isin(row, h).any()
    n = reranked.n_items_
    left = np.arange(n - 30, n)  # 30 films left to recommend, fewer than the 50 candidates
    exclude = [np.setdiff1d(np.arange(n), left)] * len(histories)
    recs, scores = reranked.recommend_positions(histories, 10, exclude)
    assert np.isin(recs, left).all() and np.isfinite(scores).all()
    recs, _ = reranked.recommend_positions(histories[:1], 40, exclude[:1])
    assert set(recs[0, :30]) == set(left)  # every film left comes before any rated one


@pytest.mark.parametrize("params", [{"rerank_mix": 1.5}, {"rerank_mix": -0.1}, {"rerank_candidates": 0}])
def test_reranker_parameters_are_checked(synth, params) -> None:
    with pytest.raises(ParameterError, match="rerank_mix must be in"):
        MovieRecommender(mode="hybrid", rerank=True, **params).fit(synth.X, ratings=synth.extras["ratings"])


def test_too_few_liked_candidates_leave_the_blend_alone(synth) -> None:
    """With almost no likes to learn from, no reranker is fitted and the blend ranks (logged, not raised)."""
    ratings = synth.extras["ratings"]
    liked = ratings[(ratings["rating"] >= 4.0) & ratings["userId"].isin(ratings["userId"].unique()[:6])]
    few = liked.sort_values("timestamp").groupby("userId").head(5)  # one validation like per user, one round
    model = build_pipeline(**TEST_PARAMS["recommender"]).fit(synth.X, ratings=few)
    assert model.validation_ and model.ranker_ is None and model.rerank_min_history_ == 0
    histories = [np.array([0, 1, 2, 3, 4, 5])]
    np.testing.assert_array_equal(model.recommend_positions(histories, 5)[0],
                                  protocol.top_k(model.score_histories(histories), 5, histories))


def test_hybrid_gives_cold_films_content_neighbours(synth) -> None:
    ratings = synth.extras["ratings"]
    cold_id = int(synth.X["id"].iloc[-1])
    model = build_pipeline(**TEST_PARAMS["recommender"]).fit(synth.X, ratings=ratings[ratings["id"] != cold_id])
    out = model.recommend(cold_id, k=5)
    assert (out["status"] == "id").all() and len(out) == 5 and (out["id"] != cold_id).all()
    assert model.cf_ is not None and len(model.cf_.items_) < len(synth.X)


def test_approximate_index_agrees_with_exact_search() -> None:
    """The approximate top 10 (pynndescent graph, exact re-scoring) against exact search on 3,000 films."""
    cat = synthetic.catalogue(3000, seed=3)
    exact = build_pipeline(mode="content", ann="exact").fit(cat)
    approx = build_pipeline(mode="content", ann="approximate").fit(cat)
    assert exact.ann_index_ is None and approx.ann_index_ is not None
    assert build_pipeline(mode="content", ann_min_items=2000).fit(cat).ann_index_ is not None  # auto, by size
    picks = [np.array([p]) for p in range(0, 3000, 15)]
    e, _ = exact.recommend_positions(picks, 10)
    a, as_ = approx.recommend_positions(picks, 10)
    assert bench.recall_at_k(a, e) >= 0.95
    # Its scores are exact cosines of the films it returns.
    for row, (pos, scores) in enumerate(zip(a[:5], as_[:5], strict=True)):
        true = np.asarray((exact.item_vectors_[pos] @ exact.item_vectors_[picks[row][0]].T).toarray()).ravel()
        np.testing.assert_allclose(scores, true, atol=1e-5)
    # Title queries, lists of titles and pickling keep working with the index.
    title = str(cat["title"].iloc[0])
    assert len(approx.recommend(title, k=10)) == 10 and len(approx.recommend_from([title, 1], k=5)) == 5
    copy = pickle.loads(pickle.dumps(approx))
    np.testing.assert_array_equal(copy.recommend_positions(picks[:5], 10)[0], a[:5])


@pytest.mark.slow
def test_logged_model_predicts_titles_in_a_new_process(synth, tmp_path: Path) -> None:
    result = train.run("recommender", TEST_PARAMS["recommender"], dataset=synth)
    queries = synthetic.predict_example(synth)
    expected = result.model.predict(queries)
    queries.to_csv(tmp_path / "q.csv", index=False)
    code = (
        "import mlflow, pandas as pd, sys\n"
        f"m = mlflow.pyfunc.load_model({result.model_uri!r})\n"
        f"m.predict(pd.read_csv({str(tmp_path / 'q.csv')!r})).to_csv(sys.argv[1], index=False)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "out.csv")], check=True, timeout=300)
    got = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    exp = pd.read_csv(pd.io.common.StringIO(expected.to_csv(index=False)), keep_default_na=False)
    pd.testing.assert_frame_equal(got, exp)
    assert (got.loc[got["query"] == queries["title"].iloc[1], "status"] == "corrected").all()
    assert (got.loc[got["query"] == queries["title"].iloc[2], "status"] == "not_found").all()


def test_bench_hook_reports_its_figures(synth, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(bench.SIZES_ENV, "")  # no scaling series here
    project = registry.get("recommender")
    params, data_params = project.resolve_params(TEST_PARAMS["recommender"])
    out = bench.bench(common_protocol.Context(project, params, data_params, synth, tmp_path))
    for name in ("fit_seconds", "fit_content_seconds", "query_p50_ms", "query_p95_ms", "query_cpu_p50_ms",
                 "recommend_title_p50_ms", "recommend_title_cpu_p50_ms", "recommend_typo_p50_ms",
                 "content_query_p50_ms", "batch_queries_per_s", "model_size_mb", "item_matrix_mb"):
        assert np.isfinite(out[name]) and out[name] > 0, name
    assert not any(k.startswith("scale_") for k in out)


def test_scaling_measure_is_sparse_and_small() -> None:
    row = bench.measure_one(2000, repeats=5, ann=False)
    assert row["item_matrix_mb"] < row["dense_nxn_float32_gb"] * 1024
    assert row["fit_seconds"] > 0 and row["query_p50_ms"] > 0
    assert "| 2,000 |" in bench.scaling_markdown([row])


# ----------------------------------------------------------------------------------------------- the doc
ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "recommender.md"


def test_the_doc_names_what_the_code_has() -> None:
    """docs/recommender.md drifts silently otherwise: its variables, files and parameter table are checked."""
    doc = DOC.read_text()
    code = "\n".join(p.read_text() for folder in ("projects/recommender", "common")
                     for p in sorted((ROOT / folder).glob("*.py")))
    for var in sorted(set(re.findall(r"\b(?:RECOMMENDER|MLPROJECTS|MLFLOW)_[A-Za-z0-9_.]*", doc))):
        assert f'"{var}"' in code, f"the doc names {var}, which the code never reads"
    for path in sorted(set(re.findall(r"`((?:projects|tests|docs|common)/[\w/]+\.\w+)`", doc))):
        assert (ROOT / path).is_file(), f"the doc names {path}, which does not exist"
    for module in sorted((ROOT / "projects" / "recommender").glob("*.py")):
        if module.name != "__init__.py":
            assert f"`projects/recommender/{module.name}`" in doc, f"{module.name} is missing from the doc's files"
    from projects.recommender import data

    shas = {f.path: f.sha256 for f in (data.MOVIES_GZ, data.MOVIES_CSV, data.RATINGS, data.LINKS)}
    rows = re.findall(r"^\| `(movies/[^`]+)` \|.*\| `([0-9a-f]+)…([0-9a-f]+)`", doc, flags=re.M)
    assert len(rows) == 3
    for path, head, tail in rows:
        assert shas[path].startswith(head) and shas[path].endswith(tail), f"the doc's checksum of {path} is wrong"
    project = registry.get("recommender")
    documented = dict(re.findall(r"^\| `(\w+)` \| `([^`]*)` \|", doc, flags=re.M))
    defaults = {**project.params.pipeline, **project.params.data}
    assert documented == {k: str(v) for k, v in defaults.items()}, "the parameter table differs from the signatures"


# ---------------------------------------------------------------------------------------------- the data
def test_missing_data_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        load(data_dir=tmp_path)
    text = str(err.value)
    assert "kaggle datasets download -d tmdb/tmdb-movie-metadata" in text
    assert "tmdb_5000_movies.csv" in text


@pytest.fixture(scope="module")
def real():
    if not REAL_DATA or not Path(REAL_DATA).is_dir():
        pytest.skip("MLPROJECTS_DATA_DIR is not set (point it at a mirror such as ../shared/data)")
    return load(data_dir=REAL_DATA)


def test_the_tuning_split_reads_no_test_data_of_either_protocol(synth) -> None:
    """Tuning (the Optuna objective and the margin command) sees neither protocol's test ratings."""
    cat, ratings = synth.X, synth.extras["ratings"]
    id_pos = {int(i): p for p, i in enumerate(cat["id"])}
    ids = cat["id"].to_numpy()
    timed = protocol.make_protocol("time", ratings, id_pos, 4.0, 10)
    per_user = protocol.make_protocol("per_user", ratings, id_pos, 4.0, 10)
    tuning = protocol.tuning_protocol(ratings, id_pos, 4.0, 10)
    assert tuning.users and 0 < len(tuning.train) < len(timed.train)
    assert (tuning.train["timestamp"] < timed.cutoff).all()  # nothing from the global cutoff T on
    for s in per_user.users:  # no per-user test film, in training or as a validation target
        rows = tuning.train.loc[tuning.train["userId"] == s.user, "id"]
        assert not set(ids[s.test]) & set(rows)
    tests = {s.user: set(ids[s.test]) for s in per_user.users}
    for s in tuning.users:
        assert not set(ids[s.test]) & tests.get(s.user, set())
        rated = ratings[(ratings["userId"] == s.user) & ratings["id"].isin(ids[s.test])]
        assert (rated["timestamp"] < timed.cutoff).all()


def test_validation_margins_are_test_free_and_paired(synth) -> None:
    """The margin command compares the hybrid with tuned EASE on three validation sets, none with test data."""
    cat, ratings = synth.X, synth.extras["ratings"]
    rows = margin.validation_margins(cat, ratings)
    assert [r.name for r in rows] == ["per-user split's training ratings", "time split's training ratings",
                                      "time split of the time split's training ratings",
                                      "tuning objective (before both protocols' test data)"]
    id_pos = {int(i): p for p, i in enumerate(cat["id"])}
    per_user_train = protocol.make_protocol("per_user", ratings, id_pos, 4.0, 10).train
    for r in rows:
        assert r.users >= 1 and 0 < r.fit_ratings < len(ratings)
        assert 0 <= r.hybrid <= 1 and 0 <= r.ease <= 1 and r.ease_lambda > 0
        assert r.margin == pytest.approx(r.hybrid - r.ease) and r.ci_low <= r.margin <= r.ci_high
    assert rows[0].fit_ratings < len(per_user_train)  # validation periods come out of the training ratings
    table = margin.markdown(rows)
    assert table.count("\n") == len(rows) + 1 and "hybrid minus EASE" in table


def test_margin_command_without_data_says_what_is_missing(tmp_path: Path, capsys) -> None:
    assert margin.main(["--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "tmdb_5000_movies.csv" in err and "Traceback" not in err


@pytest.mark.realdata
def test_real_data_join(real) -> None:
    assert real.X.shape[0] == 4803 and real.X["id"].is_unique
    r = real.extras["ratings"]
    assert r["userId"].nunique() == 610
    assert r["id"].nunique() == 3535
    assert 70_000 <= len(r) <= 70_300
    assert {f.sha256 for f in real.files} >= {"1e0584a8dd374120e4ed4f2b81f0d2bd0eb95a554708e4a350d00ed5c46d2825"}


@pytest.mark.realdata
@pytest.mark.slow
def test_real_data_bars(real) -> None:
    """Both protocols on the real data: who is evaluated, and the hybrid against EASE and popularity."""
    cat, ratings = real.X, real.extras["ratings"]
    id_pos = {int(i): p for p, i in enumerate(cat["id"])}
    per_user = protocol.make_protocol("per_user", ratings, id_pos, 4.0, 10)
    timed = protocol.make_protocol("time", ratings, id_pos, 4.0)
    assert len(per_user.users) == 549 and len(timed.users) == 27
    assert len(np.unique(np.concatenate([s.test for s in timed.users]))) == 333
    assert min(len(s.history) for s in timed.users) >= 1  # here every evaluated user also liked a film before T
    assert pd.Timestamp(timed.cutoff, unit="s").year == 2016
    assert 0.5 < protocol.cross_user_leak(per_user.train, per_user.users) < 0.6  # the 54%

    def per_user_ndcg(model: Any, split: protocol.ProtocolSplit) -> np.ndarray:
        recs, _ = model.recommend_positions(split.histories, 10, split.excludes)
        return protocol.per_user_ndcg(recs, split.users, len(cat), 10, protocol.target_matrix(split.users, len(cat)))

    content = build_pipeline(mode="content").fit(cat)
    assert per_user_ndcg(content, per_user).mean() >= 0.035
    # The bars: per user, NDCG@10 >= 0.165 and above EASE (lambda 100, what its tuning chooses
    # there) by a paired-bootstrap interval that excludes 0; under the time split, above EASE and popularity.
    for split, floor in ((per_user, 0.165), (timed, 0.13)):
        hybrid = build_pipeline(mode="hybrid").fit(cat, ratings=split.train)
        ease = per_user_ndcg(EASE(lam=100.0).fit(cat, ratings=split.train), split)
        pop = per_user_ndcg(Popularity().fit(cat, ratings=split.train), split)
        score = per_user_ndcg(hybrid, split)
        assert score.mean() >= floor and score.mean() > ease.mean() and score.mean() > pop.mean(), split.kind
        if split is per_user:
            assert hybrid.ranker_ is not None
            assert protocol.paired_bootstrap(score, ease, 2000, seed=42)[1] > 0
    # Lookups on the real catalogue.
    assert hybrid.resolve("incepton").status == "corrected"
    assert hybrid.titles_[hybrid.resolve("incepton").position] == "Inception"
    assert hybrid.years_[hybrid.resolve("The Host (2006)").position] == 2006
    top = hybrid.recommend("The Dark Knight", k=10)["title"].tolist()
    assert "The Dark Knight Rises" in top and "Batman Begins" in top


@pytest.mark.realdata
@pytest.mark.slow
def test_real_data_validation_margins(real, tmp_path: Path) -> None:
    """``python -m projects.recommender.margin`` on the mirror: the three test-free sets of the docs."""
    out = tmp_path / "margin.json"
    table = tmp_path / "margin.md"
    assert margin.main(["--json", str(out), "--markdown", str(table), "--data-dir", str(REAL_DATA)]) == 0
    rows = json.loads(out.read_text())
    assert len(table.read_text().splitlines()) == 2 + len(rows)
    assert not list(tmp_path.glob(".*.tmp"))  # written through a temporary file, then renamed
    assert [r["users"] for r in rows] == [517, 461, 18, 433]
    assert all(r["hybrid"] > r["ease"] for r in rows)  # the 18-user set too, since the reranker
    assert all(r["ci_low"] > 0 for i, r in enumerate(rows) if i != 2)
