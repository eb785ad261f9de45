"""Loading the MNIST IDX files. Pure: parse and check; nothing is learned here.

The four files are the standard gzip-compressed IDX files. Their checksums are of the *decompressed* IDX
content, because mirrors re-compress the same bytes differently (see ../shared/data/MANIFEST.md).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from common.datasets import DataFile, Dataset, Source, resolve
from common.errors import DataError

_HOME = "https://yann.lecun.com/exdb/mnist/ (LeCun, Cortes and Burges; CC BY-SA 3.0)"
# Google's CVDF mirror and PyTorch's mirror serve the original files; the checksum decides, not the host.
_MIRRORS = ("https://storage.googleapis.com/cvdf-datasets/mnist", "https://ossci-datasets.s3.amazonaws.com/mnist")


def _file(name: str, sha256: str) -> DataFile:
    return DataFile(
        path=f"mnist/{name}",
        sha256=sha256,
        sources=tuple(Source(f"{base}/{name}") for base in _MIRRORS),
        homepage=_HOME,
    )


TRAIN_IMAGES = _file("train-images-idx3-ubyte.gz", "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db")
TRAIN_LABELS = _file("train-labels-idx1-ubyte.gz", "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5")
TEST_IMAGES = _file("t10k-images-idx3-ubyte.gz", "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7")
TEST_LABELS = _file("t10k-labels-idx1-ubyte.gz", "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2")

# IDX magic numbers: 0x00000801 = unsigned bytes, 1 dimension; 0x00000803 = unsigned bytes, 3 dimensions.
_MAGIC = {1: 2049, 3: 2051}


def read_idx(path: str | Path, ndim: int) -> np.ndarray:
    """Read an (optionally gzip-compressed) IDX file of unsigned bytes with ``ndim`` dimensions.

    Raises:
        DataError: when the header does not describe a ``ndim``-dimensional uint8 array of the file's size.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"Cannot read {path}: {exc}. Delete the file and fetch it again.") from exc
    header = 4 + 4 * ndim
    magic = int.from_bytes(raw[:4], "big")
    if magic != _MAGIC[ndim]:
        raise DataError(f"{path} is not a {ndim}-dimensional uint8 IDX file (magic number {magic}, "
                        f"expected {_MAGIC[ndim]}).")
    if len(raw) < header:
        raise DataError(f"{path} is too short to be an IDX file ({len(raw)} bytes).")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if len(raw) - header != int(np.prod(shape)):
        raise DataError(f"{path}: the header says {shape} but the file holds {len(raw) - header} values.")
    # A writable copy: arrays over the bytes object would be read-only and surprise in-place code.
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


def load(data_dir: str | Path | None = None) -> Dataset:
    """MNIST as ``X``: (60000, 28, 28) uint8 images, ``y``: int digits, and the given 10,000-image test set.

    Args:
        data_dir: an explicit folder in mirror layout (else the usual resolution order).
    """
    infos = [resolve(f, data_dir) for f in (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)]
    X, y, X_test, y_test = (read_idx(info.path, nd) for info, nd in zip(infos, (3, 1, 3, 1), strict=True))
    for images, labels, what in ((X, y, "train"), (X_test, y_test, "t10k")):
        if images.shape[0] != labels.shape[0] or images.shape[1:] != (28, 28):
            raise DataError(f"MNIST {what}: {images.shape} images do not match {labels.shape[0]} labels of 28x28.")
        if labels.max() > 9:
            raise DataError(f"MNIST {what} labels must be digits 0-9; found {int(labels.max())}.")
    return Dataset(X=X, y=y.astype(np.int64), X_test=X_test, y_test=y_test.astype(np.int64), files=infos, name="mnist")
