"""common.kernels for scikit-learn's checks (see tests/estimators/__init__.py).

``common.kernels`` defines no estimator: ``CompiledRBF`` is built from an SVR/SVC that is already fitted
and is never fitted itself. Its parity with scikit-learn is tested in tests/test_kernels.py; the two
estimators built on it (house_prices ``RBFSVR``, mnist ``VirtualSVC``) are checked with their projects.
An estimator added to common/kernels.py belongs here.
"""

from __future__ import annotations

from typing import Any

CASES: list[tuple[Any, dict[str, str]]] = []
