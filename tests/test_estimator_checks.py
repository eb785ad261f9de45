"""scikit-learn's estimator checks over every custom estimator (see ``tests/estimators``)."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from sklearn.utils.estimator_checks import parametrize_with_checks

import tests.estimators as cases_pkg

ESTIMATORS: list[Any] = []
EXPECTED: dict[int, dict[str, str]] = {}
for _info in sorted(pkgutil.iter_modules(cases_pkg.__path__), key=lambda m: m.name):
    for _est, _expected in importlib.import_module(f"{cases_pkg.__name__}.{_info.name}").CASES:
        ESTIMATORS.append(_est)
        EXPECTED[id(_est)] = dict(_expected)


def _expected_failed(estimator: Any) -> dict[str, str]:
    # parametrize_with_checks passes the very instances listed above (or clones carrying the same params)
    return EXPECTED.get(id(estimator), {})


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failed, xfail_strict=True)
def test_sklearn_compatible_estimator(estimator: Any, check: Any) -> None:
    check(estimator)


def test_every_custom_estimator_is_listed() -> None:
    """A new estimator class in projects/ or common/ must join tests/estimators (or say why it cannot)."""
    import inspect

    from sklearn.base import BaseEstimator

    from common import registry

    listed = {type(e) for e in ESTIMATORS}
    modules = ["common.text", "common.kernels"]
    for name in registry.names():
        pkg = importlib.import_module(f"projects.{name}")
        modules += [f"projects.{name}.{m.name}" for m in pkgutil.iter_modules(pkg.__path__)]
    missing = []
    for modname in modules:
        try:
            mod = importlib.import_module(modname)
        except ModuleNotFoundError:
            continue
        for obj in vars(mod).values():
            if (inspect.isclass(obj) and issubclass(obj, BaseEstimator) and obj.__module__ == modname
                    and obj not in listed and not getattr(obj, "_not_an_estimator_reason", None)):
                missing.append(f"{modname}.{obj.__name__}")
    assert not missing, f"custom estimators without scikit-learn checks: {sorted(set(missing))}"
