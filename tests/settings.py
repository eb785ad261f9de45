"""Test-only settings per project: fast parameters for the harness, and the loose quality floor each
project must reach on its generated data (``projects/<name>/synthetic.py``).

They live with the tests, not in the projects' modules, so production code carries no test knobs.
"""

from __future__ import annotations

from typing import Any

TEST_PARAMS: dict[str, dict[str, Any]] = {
    "churn": {"inner_folds": 3, "gb_iter": 20},
    "house_prices": {"gbm_iter": 60},
    "mnist": {"model": "classical", "classical.n_components": 30},
    "recommender": {"tune_step": 0.25},
    "sentiment": {},
    # one candidate, 3-fold inner CV
    "spam": {"candidates": ("svc:1",), "inner_cv": 3, "max_ham_blocked": 0.01},
    "stocks": {"inner_folds": 3},
}

QUALITY_FLOOR: dict[str, dict[str, tuple[str, float]]] = {
    "churn": {"cv_roc_auc": (">=", 0.70)},
    "house_prices": {"cv_rmsle": ("<=", 0.25)},
    "mnist": {"accuracy": (">=", 0.8)},
    "recommender": {"ndcg_at_10": (">=", 0.1)},
    "sentiment": {"f1_macro": (">=", 0.6), "accuracy": (">=", 0.6)},
    "spam": {"f1": (">=", 0.7), "roc_auc": (">=", 0.9)},
    # the generated reversal is learnable, so beat persistence
    "stocks": {"mase": ("<=", 1.0)},
}
