"""Loading the TMDB 5000 catalogue and the MovieLens ratings that evaluate it. Pure: parse, join, check.

The catalogue (``Dataset.X``) keeps TMDB's raw columns; genres and keywords stay JSON strings and are
parsed inside the pipeline. MovieLens ratings are joined to the catalogue through ``links.csv``
(``tmdbId`` == TMDB ``id``) and travel in ``Dataset.extras["ratings"]``; they are only ever used by the
evaluation protocol and by the hybrid model's fit on training ratings.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from common.datasets import DataFile, Dataset, FileInfo, Source, check_columns, read_csv, resolve
from common.errors import DataError

log = logging.getLogger(__name__)

_TMDB_SHA = "1e0584a8dd374120e4ed4f2b81f0d2bd0eb95a554708e4a350d00ed5c46d2825"  # of the decompressed CSV
_TMDB_HOME = "https://www.kaggle.com/datasets/tmdb/tmdb-movie-metadata"
_TMDB_KAGGLE = "dataset:tmdb/tmdb-movie-metadata"
# A pinned public copy of Kaggle's file, gzip-compressed (its content is byte-identical, so the checksum holds).
_TMDB_GZ_URL = ("https://raw.githubusercontent.com/prithvicoder1/Movie-Recommender-System/"
                "f960367f230e55d20f9f4a10275499fc1304588a/tmdb_5000_movies.csv.gz")
_ML_ZIP = "https://files.grouplens.org/datasets/movielens/ml-latest-small.zip"
_ML_HOME = "https://grouplens.org/datasets/movielens/latest/ (ml-latest-small; research use, cite Harper & Konstan 2015)"

MOVIES_GZ = DataFile(
    path="movies/tmdb_5000_movies.csv.gz",
    sha256=_TMDB_SHA,
    sources=(Source(_TMDB_GZ_URL),),
    homepage=_TMDB_HOME,
)
# Kaggle ships the same file uncompressed; it is the fallback when the compressed copy is unavailable.
MOVIES_CSV = DataFile(
    path="movies/tmdb_5000_movies.csv",
    sha256=_TMDB_SHA,
    kaggle=_TMDB_KAGGLE,
    homepage=_TMDB_HOME,
)
RATINGS = DataFile(
    path="movies/ml-latest-small/ratings.csv",
    sha256="aa289ca83157595d0df6aea1be6a4ded676ddc4385472e8313a8ed9805352646",
    sources=(Source(_ML_ZIP, member="ml-latest-small/ratings.csv"),),
    homepage=_ML_HOME,
)
LINKS = DataFile(
    path="movies/ml-latest-small/links.csv",
    sha256="97ad18e4e56a09363c65676b6cb3482ce3e2cea2372a24620c1599c843325f31",
    sources=(Source(_ML_ZIP, member="ml-latest-small/links.csv"),),
    homepage=_ML_HOME,
)

CATALOGUE_COLUMNS = ["id", "title", "overview", "tagline", "genres", "keywords", "release_date",
                     "vote_average", "vote_count"]


def resolve_movies(data_dir: str | Path | None = None) -> FileInfo:
    """The TMDB catalogue: the compressed mirror/copy first, else Kaggle's plain CSV (client or by hand)."""
    try:
        return resolve(MOVIES_GZ, data_dir)
    except DataError as first:
        try:
            return resolve(MOVIES_CSV, data_dir)
        except DataError as second:
            raise DataError(f"{second} (The compressed copy failed too: {first})") from second


def read_catalogue(info: FileInfo | str | Path) -> pd.DataFrame:
    """Read and check the TMDB movies file; drop rows without an id or title and duplicate ids."""
    frame = read_csv(info, compression="infer")
    where = str(info.path if isinstance(info, FileInfo) else info)
    check_columns(frame, where, required=CATALOGUE_COLUMNS, numeric=["id", "vote_average", "vote_count"],
                  text=["title"])
    return frame


def load_ratings(data_dir: str | Path | None, catalogue_ids: pd.Series) -> tuple[pd.DataFrame, list[FileInfo], list[str]]:
    """MovieLens ratings of catalogue films, with the TMDB id as ``id`` (one rating per user and film)."""
    rinfo, linfo = resolve(RATINGS, data_dir), resolve(LINKS, data_dir)
    ratings = read_csv(rinfo)
    links = read_csv(linfo)
    check_columns(ratings, rinfo.path, numeric=["userId", "movieId", "rating", "timestamp"])
    check_columns(links, linfo.path, numeric=["movieId", "tmdbId"])
    links = links.dropna(subset=["tmdbId"]).astype({"tmdbId": "int64"})
    joined = ratings.merge(links[["movieId", "tmdbId"]], on="movieId", how="inner").rename(columns={"tmdbId": "id"})
    joined = joined[joined["id"].isin(set(catalogue_ids.tolist()))]
    # A few MovieLens entries share one TMDB id; a user who rated both keeps the earlier rating.
    joined = joined.sort_values(["userId", "timestamp", "movieId"], kind="mergesort")
    before = len(joined)
    joined = joined.drop_duplicates(["userId", "id"], keep="first")
    notes = [
        f"ratings: {len(joined):,} of {len(ratings):,} MovieLens ratings ({joined['userId'].nunique()} users) "
        f"fall on {joined['id'].nunique():,} catalogue films (joined through links.csv tmdbId == TMDB id)"
    ]
    if before != len(joined):
        notes.append(f"ratings: {before - len(joined)} duplicate (user, TMDB id) ratings dropped (MovieLens "
                     "entries sharing a TMDB id); the earliest rating was kept")
    cols = ["userId", "movieId", "id", "rating", "timestamp"]
    return joined[cols].reset_index(drop=True).astype({"userId": "int64", "id": "int64", "timestamp": "int64"}), \
        [rinfo, linfo], notes


def load(data_dir: str | Path | None = None, with_ratings: bool = True, sample: int | None = None) -> Dataset:
    """The TMDB 5000 catalogue as ``X`` and the MovieLens ratings of its films in ``extras["ratings"]``.

    Args:
        data_dir: an explicit folder in mirror layout (else the usual resolution order).
        with_ratings: also load MovieLens (needed to evaluate; the model itself only needs the catalogue).
        sample: keep only the ``sample`` most-voted films (quick runs); ratings are restricted to them.
    """
    info = resolve_movies(data_dir)
    catalogue = read_catalogue(info)
    notes: list[str] = []
    bad = catalogue["id"].isna() | catalogue["title"].isna()
    if bad.any():
        notes.append(f"catalogue: {int(bad.sum())} rows without id or title dropped")
        catalogue = catalogue.loc[~bad]
    dup = catalogue["id"].duplicated()
    if dup.any():
        notes.append(f"catalogue: {int(dup.sum())} duplicate TMDB ids dropped")
        catalogue = catalogue.loc[~dup]
    catalogue = catalogue.astype({"id": "int64"}).reset_index(drop=True)
    total = len(catalogue)
    if sample and sample < total:
        # The most-voted films keep enough users with 10 likes for the protocol to mean something.
        order = np.argsort(-catalogue["vote_count"].to_numpy(), kind="stable")[:sample]
        catalogue = catalogue.iloc[np.sort(order)].reset_index(drop=True)
        notes.append(f"sample: {len(catalogue)} of {total} films (the most voted)")
    ds = Dataset(X=catalogue, files=[info], name="tmdb5000" + ("+ml-latest-small" if with_ratings else ""),
                 notes=notes)
    if with_ratings:
        ratings, files, rnotes = load_ratings(data_dir, catalogue["id"])
        ds.extras["ratings"] = ratings
        ds.files.extend(files)
        ds.notes.extend(rnotes)
    if total < 100:
        log.warning("the catalogue has only %d films", total)
    return ds
