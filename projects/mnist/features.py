"""Checking raw digit images and the stateless image transforms that live inside the pipelines.

Everything here is a fixed function of one image (scaling, deskewing, shifting): nothing is estimated
from other rows, so these steps cannot leak between training and test rows.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import Tags

from common.errors import InputError

log = logging.getLogger(__name__)

SIDE = 28
N_PIXELS = SIDE * SIDE
_EXPECTED = (
    "mnist expects an (n, 28, 28) or (n, 784) array (or a table of 784 numeric pixel columns) of grey "
    "values 0-255, one row per image"
)
_R = np.arange(SIDE, dtype=np.float32)
_CHUNK = 4096  # images per block: keeps the temporaries in cache and memory flat on large inputs


# The pixel column names a table may carry, each in image order (row by row): what a DataFrame built from
# an array has (0..783, or "0".."783" once written to CSV), Kaggle's digit-recognizer files (pixel0..pixel783)
# and the common mnist_train.csv (1x1..28x28).
PIXEL_NAMES: dict[str, list[str]] = {
    "position": [str(i) for i in range(N_PIXELS)],
    "kaggle": [f"pixel{i}" for i in range(N_PIXELS)],
    "grid": [f"{r}x{c}" for r in range(1, SIDE + 1) for c in range(1, SIDE + 1)],
}


def _shown(names: list[str]) -> str:
    return ", ".join(names[:6]) + (f" ... ({len(names)} in all)" if len(names) > 6 else "")


def pixel_table(frame: Any) -> np.ndarray:
    """A table of pixel columns -> (n, 784) values in image order, matched by column name.

    The columns are read by name, not position, so a table whose columns were shuffled gives the same
    images; other columns (ids, labels) are ignored once all 784 pixels are present.

    Raises:
        InputError: naming the missing and unknown columns when no naming scheme has all 784 pixels, or
            the first non-numeric column with its row and value.
    """
    names = [str(c) for c in frame.columns]
    duplicated = sorted({n for n in names if names.count(n) > 1}) if len(set(names)) != len(names) else []
    if duplicated:
        raise InputError(f"mnist input has duplicated column(s) {_shown(duplicated)}.")
    position = {n: i for i, n in enumerate(names)}
    gaps = {scheme: [n for n in expected if n not in position] for scheme, expected in PIXEL_NAMES.items()}
    scheme = min(gaps, key=lambda k: len(gaps[k]))
    if gaps[scheme]:
        unknown = [n for n in names if n not in set(PIXEL_NAMES[scheme])]
        raise InputError(
            f"mnist input table needs the 784 pixel columns named {PIXEL_NAMES[scheme][0]} .. "
            f"{PIXEL_NAMES[scheme][-1]} (or 0..783, pixel0..pixel783, 1x1..28x28); missing "
            f"{_shown(gaps[scheme])}" + (f"; unknown {_shown(unknown)}" if unknown else "") + "."
        )
    table = frame.iloc[:, [position[n] for n in PIXEL_NAMES[scheme]]]
    for j, dtype in enumerate(table.dtypes):
        if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
            continue
        column = table.iloc[:, j]
        parsed = pd.to_numeric(column, errors="coerce")
        bad = np.flatnonzero(parsed.isna().to_numpy() & column.notna().to_numpy())
        if len(bad) or pd.api.types.is_bool_dtype(dtype):
            row = int(bad[0]) if len(bad) else 0
            raise InputError(f"mnist input column {table.columns[j]!r} is not numeric: row {row} holds "
                             f"{column.iloc[row]!r}; expected grey values 0-255.")
    return table.to_numpy(dtype=np.float64, na_value=np.nan)


def _pixel_names(frame: Any) -> list[str] | None:
    """The table's pixel column names in image order (the scheme ``pixel_table`` matches), else None."""
    names = {str(c) for c in frame.columns}
    for scheme in PIXEL_NAMES.values():
        if names.issuperset(scheme):
            return list(scheme)
    return None


def _pixel(names: list[str] | None, index: int) -> str:
    """How a message names pixel ``index``: the table's column name, else its position in an array row."""
    return repr(names[index]) if names else f"{index} of the 784 pixels (pixel{index})"


def as_images(X: Any) -> np.ndarray:
    """Raw input -> (n, 28, 28) float32 grey values in [0, 255].

    Accepts an (n, 28, 28) or (n, 784) array-like of numbers 0-255, or a DataFrame with 784 numeric pixel
    columns matched by name (see ``PIXEL_NAMES``; how MLflow's pyfunc and ``mlprojects predict`` pass tables).

    Raises:
        InputError: for any other shape, no images, pixel columns missing or not numeric, non-finite
            values, values outside 0-255, or a batch that looks scaled to 0-1.
    """
    names: list[str] | None = None  # the table's own pixel column names (image order), for messages
    if hasattr(X, "to_numpy") and hasattr(X, "columns"):
        if len(X) == 0:
            raise InputError(f"no rows to predict: mnist expects at least one row: {_EXPECTED}; got no images.")
        names = _pixel_names(X)
        X = pixel_table(X)
    try:
        arr = np.asarray(X)
        if arr.dtype.kind not in "uif":
            arr = arr.astype(np.float32)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{_EXPECTED}; got values that are not numbers ({exc}).") from None
    if (arr.size == 0 and arr.ndim <= 1) or (arr.ndim in (2, 3) and arr.shape[0] == 0):
        raise InputError(f"no rows to predict: mnist expects at least one row: {_EXPECTED}; got no images.")
    if arr.ndim == 2 and arr.shape[1] == N_PIXELS:
        arr = arr.reshape(-1, SIDE, SIDE)
    elif not (arr.ndim == 3 and arr.shape[1:] == (SIDE, SIDE)):
        hint = " For a single image use x.reshape(1, 784)." if arr.shape in ((N_PIXELS,), (SIDE, SIDE)) else ""
        raise InputError(f"{_EXPECTED}; got an array of shape {arr.shape}.{hint}")
    # Checked in the input's own type, before the float32 cast (which would turn 1e300 into inf).
    flat = arr.reshape(len(arr), -1)
    if arr.dtype.kind == "f" and not np.isfinite(flat).all():
        row, pixel = (int(i[0]) for i in np.nonzero(~np.isfinite(flat)))
        raise InputError(f"mnist input row {row}, column {_pixel(names, pixel)}: got NaN or infinite "
                         f"({flat[row, pixel]:g}); expected a grey value 0-255. {_EXPECTED}.")
    lo, hi = float(flat.min()), float(flat.max())
    if lo < 0 or hi > 255:
        row, pixel = (int(i[0]) for i in np.nonzero((flat < 0) | (flat > 255)))
        raise InputError(f"mnist input row {row}, column {_pixel(names, pixel)}: got {flat[row, pixel]:g}; "
                         f"expected a grey value 0-255 (this batch has values from {lo:g} to {hi:g}). {_EXPECTED}.")
    images = arr.astype(np.float32, copy=False)
    if 0 < hi <= 1.0:
        # Scaled images (0-1) would all look nearly black and predict one class: refuse the whole batch.
        raise InputError(
            f"mnist expects grey values 0-255; the largest pixel of this batch is {hi:g}, so the images look "
            "scaled to 0-1. Multiply them by 255 (X * 255) before predicting."
        )
    return images


def deskew(images: np.ndarray) -> np.ndarray:
    """Straighten slanted digits and centre them on their centre of mass (bilinear resampling).

    The classic moment-based deskew: the horizontal shear that removes the correlation between a digit's
    rows and columns, i.e. reading the input at ``(r - 14 + m_r, c - 14 + m_c + alpha (r - 14))``. Because
    it is a row shift followed by a per-row column shift, it runs as two 1-D linear interpolations.

    Args:
        images: (n, 28, 28) grey values.

    Returns:
        (n, 28, 28) float32 deskewed images on the same scale.
    """
    images = np.asarray(images, dtype=np.float32)
    if images.shape[0] > _CHUNK:
        return np.concatenate([deskew(images[i:i + _CHUNK]) for i in range(0, images.shape[0], _CHUNK)])
    n = images.shape[0]
    rows, cols = images.sum(axis=2), images.sum(axis=1)
    total = rows.sum(axis=1)
    total = np.where(total > 0, total, 1.0)
    m_r, m_c = rows @ _R / total, cols @ _R / total
    d_r, d_c = _R[None, :] - m_r[:, None], _R[None, :] - m_c[:, None]
    var_r = (rows * d_r**2).sum(axis=1) / total
    cov = np.einsum("nij,ni,nj->n", images, d_r, d_c, optimize=True) / total
    alpha = np.where(var_r > 1e-3, cov / np.maximum(var_r, 1e-3), 0.0).astype(np.float32)
    # Rows: out1[n, r, :] = images[n, r - 14 + m_r, :] (zero padding outside the frame).
    pos = _R[None, :] + (m_r - SIDE / 2)[:, None]
    i0 = np.floor(pos).astype(np.intp)
    frac = (pos - i0).astype(np.float32)[:, :, None]
    padded = np.zeros((n, SIDE + 2, SIDE), np.float32)
    padded[:, 1:-1] = images
    idx = np.arange(n)[:, None]
    a, b = padded[idx, np.clip(i0 + 1, 0, SIDE + 1)], padded[idx, np.clip(i0 + 2, 0, SIDE + 1)]
    out1 = a + frac * (b - a)
    # Columns: out[n, r, c] = out1[n, r, c - 14 + m_c + alpha (r - 14)].
    shift = alpha[:, None] * (_R[None, :] - SIDE / 2) + (m_c - SIDE / 2)[:, None]
    pos = _R[None, None, :] + shift[:, :, None]
    j0 = np.floor(pos).astype(np.intp)
    frac = (pos - j0).astype(np.float32)
    padded = np.zeros((n, SIDE, SIDE + 2), np.float32)
    padded[:, :, 1:-1] = out1
    a = np.take_along_axis(padded, np.clip(j0 + 1, 0, SIDE + 1), axis=2)
    b = np.take_along_axis(padded, np.clip(j0 + 2, 0, SIDE + 1), axis=2)
    return a + frac * (b - a)


def shift(images: np.ndarray, dr: int, dc: int) -> np.ndarray:
    """Images moved ``dr`` rows down and ``dc`` columns right, with zeros shifted in."""
    out = np.zeros_like(images)
    src_r, dst_r = slice(max(-dr, 0), SIDE - max(dr, 0)), slice(max(dr, 0), SIDE - max(-dr, 0))
    src_c, dst_c = slice(max(-dc, 0), SIDE - max(dc, 0)), slice(max(dc, 0), SIDE - max(-dc, 0))
    out[:, dst_r, dst_c] = images[:, src_r, src_c]
    return out


class PixelScaler(TransformerMixin, BaseEstimator):
    """Check raw images and scale grey values 0-255 to 0-1 (a fixed scale: nothing is learned).

    Args:
        flatten: return (n, 784) rows for tabular models; else (n, 28, 28) images.
    """

    def __init__(self, flatten: bool = True) -> None:
        self.flatten = flatten

    def fit(self, X: Any, y: Any = None) -> PixelScaler:
        as_images(X)
        return self

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.requires_fit = False  # stateless: fit only checks the images
        return tags

    def transform(self, X: Any) -> np.ndarray:
        images = as_images(X) / np.float32(255.0)
        return images.reshape(len(images), -1) if self.flatten else images


class Deskew(TransformerMixin, BaseEstimator):
    """Check raw images, deskew and centre each one, scale to 0-1 and flatten to (n, 784)."""

    def fit(self, X: Any, y: Any = None) -> Deskew:
        as_images(X)
        return self

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.requires_fit = False  # stateless: fit only checks the images
        return tags

    def transform(self, X: Any) -> np.ndarray:
        images = deskew(as_images(X)) / np.float32(255.0)
        return images.reshape(len(images), -1)
