"""common.kernels: the compiled RBF decision equals scikit-learn's fitted SVR/SVC (the reference)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from scipy import sparse
from sklearn.exceptions import NotFittedError
from sklearn.svm import SVC, SVR, NuSVC

from common import kernels
from common.errors import ParameterError
from common.kernels import compile_rbf, resolve_gamma

RTOL = 1e-8


def _close(got: np.ndarray, expected: np.ndarray) -> None:
    """Equal to 1e-8 relative; values that cancel to almost zero are held to 1e-8 of the largest value."""
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=RTOL * float(np.max(np.abs(expected))))


def _classes(n: int, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    centres = rng.normal(0, 1.5, (k, 6))
    labels = rng.integers(0, k, n)
    return centres[labels] + rng.normal(size=(n, 6)), labels


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    # a few hundred rows per block, so every test crosses block boundaries
    monkeypatch.setattr(kernels, "BLOCK_BYTES", 8 * 100 * 250)


@pytest.mark.parametrize("gamma", [0.05, "scale", "auto"])
def test_svr_matches_predict(gamma) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 12))
    y = X[:, 0] + np.sin(X[:, 1]) + rng.normal(0, 0.1, 300)
    svr = SVR(C=10.0, gamma=gamma, epsilon=0.01).fit(X, y)
    compiled = compile_rbf(svr, resolve_gamma(gamma, X))
    test = rng.normal(size=(1000, 12))
    _close(compiled.predict(test), svr.predict(test))
    _close(compiled.decision_function(test), svr.predict(test))
    _close(compiled.predict(test[:1]), svr.predict(test[:1]))


@pytest.mark.parametrize("k", [2, 3, 5])
@pytest.mark.parametrize("gamma", [0.1, "scale"])
def test_svc_matches_decision_function_and_predict(k: int, gamma) -> None:
    rng = np.random.default_rng(k)
    X, y = _classes(400, k, rng)
    labels = np.array(["ant", "bee", "cat", "dog", "eel"])[y]  # labels need not be 0..k-1
    ovo = SVC(C=2.0, gamma=gamma, decision_function_shape="ovo").fit(X, labels)
    ovr = SVC(C=2.0, gamma=gamma, decision_function_shape="ovr").fit(X, labels)
    compiled = compile_rbf(ovo, resolve_gamma(gamma, X))
    test = np.vstack([_classes(700, k, rng)[0], X[:50]])
    _close(compiled.decision_function(test), ovo.decision_function(test))
    _close(compiled.decision_function(test, shape="ovr"), ovr.decision_function(test))
    np.testing.assert_array_equal(compiled.predict(test), ovo.predict(test))
    np.testing.assert_array_equal(compiled.classes, ovo.classes_)


def test_nu_svc_and_sparse_training_rows() -> None:
    rng = np.random.default_rng(7)
    X, y = _classes(300, 3, rng)
    X[np.abs(X) < 0.5] = 0.0
    model = NuSVC(nu=0.3, gamma="scale").fit(sparse.csr_matrix(X), y)
    compiled = compile_rbf(model, resolve_gamma("scale", sparse.csr_matrix(X)))
    test = _classes(200, 3, rng)[0]
    np.testing.assert_array_equal(compiled.predict(test), model.predict(test))
    _close(compiled.decision_function(test, shape="ovr"), model.decision_function(test))


def test_resolve_gamma_is_what_scikit_learn_fits_with() -> None:
    rng = np.random.default_rng(1)
    X, y = _classes(200, 3, rng)
    X *= 3.0
    test = rng.normal(size=(50, 6))
    for name in ("scale", "auto"):
        by_name = SVC(gamma=name).fit(X, y)
        by_number = SVC(gamma=resolve_gamma(name, X)).fit(X, y)
        np.testing.assert_array_equal(by_number.decision_function(test), by_name.decision_function(test))
    assert resolve_gamma("scale", np.ones((5, 3))) == 1.0  # zero variance, as scikit-learn


def test_numeric_gamma_is_read_from_the_model() -> None:
    rng = np.random.default_rng(5)
    X, y = _classes(200, 3, rng)
    model = SVC(gamma=0.2).fit(X, y)
    np.testing.assert_array_equal(compile_rbf(model).predict(X), model.predict(X))


def test_compiled_model_pickles() -> None:
    rng = np.random.default_rng(2)
    X, y = _classes(200, 3, rng)
    compiled = compile_rbf(SVC(gamma=0.3).fit(X, y))
    copy = pickle.loads(pickle.dumps(compiled))
    np.testing.assert_array_equal(copy.decision_function(X), compiled.decision_function(X))


def test_errors() -> None:
    rng = np.random.default_rng(3)
    X, y = _classes(100, 2, rng)
    with pytest.raises(NotFittedError):
        compile_rbf(SVC(gamma=0.1))
    with pytest.raises(ParameterError, match="RBF"):
        compile_rbf(SVC(kernel="linear").fit(X, y), 0.1)
    with pytest.raises(ParameterError, match="resolve_gamma"):
        compile_rbf(SVC().fit(X, y))
    with pytest.raises(ParameterError, match="contradicts"):
        compile_rbf(SVC(gamma=0.1).fit(X, y), 0.2)
    for bad in ("wide", -1.0, 0, True):
        with pytest.raises(ParameterError, match="gamma"):
            resolve_gamma(bad, X)
    compiled = compile_rbf(SVC(gamma=0.1).fit(X, y))
    with pytest.raises(ValueError, match=r"\(n, 6\)"):
        compiled.predict(X[:, :4])
    with pytest.raises(ParameterError, match="shape"):
        compile_rbf(SVC(gamma=0.1).fit(X, np.arange(100) % 3)).decision_function(X, shape="both")


def test_models_pickled_before_the_kernel_helper_still_load() -> None:
    """Champions registered when RBFSVR subclassed SVR, and VirtualSVC computed its own kernels, still predict."""
    from sklearn.svm import SVC, SVR

    from projects.house_prices.pipeline import RBFSVR
    from projects.mnist.pipeline import VirtualSVC

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(80, 4)), rng.normal(size=80)
    svr = SVR(C=2.0, gamma=0.3, epsilon=0.05).fit(X, y)
    old = RBFSVR.__new__(RBFSVR)
    old.__setstate__({**svr.__getstate__(), "sv_sq_norms_": np.einsum("ij,ij->i", svr.support_vectors_,
                                                                         svr.support_vectors_)})
    np.testing.assert_allclose(old.predict(X), svr.predict(X), rtol=1e-8, atol=1e-10)

    labels = rng.integers(0, 3, size=80)
    new = VirtualSVC(n_components=3, shifts=0).fit(X, labels)
    state = {k: v for k, v in new.__getstate__().items() if k != "compiled_"}
    legacy = VirtualSVC.__new__(VirtualSVC)
    legacy.__setstate__({**state, "sv_norms_": None, "pair_index_": None})
    assert (legacy.predict(X) == new.predict(X)).all()
    assert isinstance(new.svm_, SVC)
