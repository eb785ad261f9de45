"""Small generated digit-like images of the real shape (28x28 uint8, labels 0-9) for the test harness.

Each class is a fixed random template of three thick strokes; every image is its class template moved by
up to two pixels, with random stroke intensity and pixel noise. Nothing here resembles real digits, but
the pipelines see exactly the real input format.
"""

from __future__ import annotations

import numpy as np

from common.datasets import Dataset, generated
from projects.mnist.features import SIDE, shift

_GRID = np.stack(np.meshgrid(np.arange(SIDE), np.arange(SIDE), indexing="ij"), axis=-1).astype(float)


def templates(n_classes: int = 10, seed: int = 1234) -> np.ndarray:
    """(n_classes, 28, 28) float templates in 0-255, fixed by ``seed``."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n_classes, SIDE, SIDE))
    for k in range(n_classes):
        for _ in range(3):
            a, b = rng.uniform(6, 22, 2), rng.uniform(6, 22, 2)
            points = a + np.linspace(0, 1, 25)[:, None] * (b - a)
            dist2 = ((_GRID[None] - points[:, None, None, :]) ** 2).sum(-1)
            out[k] = np.maximum(out[k], np.exp(-dist2 / (2 * 1.1**2)).max(axis=0))
    return 255 * out / out.max(axis=(1, 2), keepdims=True)


def _images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    base = templates()[labels]
    out = np.empty_like(base)
    for i, img in enumerate(base):
        dr, dc = rng.integers(-2, 3, 2)
        out[i] = shift(img[None], int(dr), int(dc))[0] * rng.uniform(0.6, 1.0)
    out += rng.normal(0, 25, out.shape) * (out > 10)
    return np.clip(out, 0, 255).astype(np.uint8)


def generate(n: int = 600, seed: int = 0, n_test: int = 200) -> Dataset:
    """``n`` labelled training images and ``n_test`` labelled test images (classes balanced)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 10
    y_test = np.arange(n_test) % 10
    rng.shuffle(y)
    return Dataset(
        X=_images(y, rng), y=y.astype(np.int64), X_test=_images(y_test, rng), y_test=y_test.astype(np.int64),
        files=[generated("mnist", {"n": n, "n_test": n_test, "seed": seed})], name="synthetic",
    )


# Fast settings for the test harness (the default classical model on 600 images fits in about a second),
# and the loose quality floor it checks on generated data.
TEST_PARAMS = {"model": "classical", "classical.n_components": 30}
QUALITY_FLOOR = {"accuracy": (">=", 0.8)}
