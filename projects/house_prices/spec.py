"""house_prices: every row scored out of fold; the logged model is refit on all 1460 rows."""

from common.spec import ProjectSpec, SplitSpec

SPEC = ProjectSpec(
    name="house_prices",
    title="Kaggle House Prices (Ames): SalePrice regression, scored as RMSE of log price",
    task="regression",
    primary_metric="cv_rmsle",
    greater_is_better=False,
    # 5-fold CV over all labelled rows plus the seed tutorial's 80/20 holdout (random_state=42).
    split=SplitSpec(kind="random", test_size=0.2, cv_folds=5, cv_on="all", refit_on="all", seed=42),
    seed_scores={"rmsle": 0.145},
    input_kind="frame",
    target="SalePrice",
)
