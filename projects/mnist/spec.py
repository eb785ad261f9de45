"""mnist: three models scored on the given 10,000-image test set, all in one MLflow experiment."""

from common.spec import ProjectSpec, SplitSpec

SPEC = ProjectSpec(
    name="mnist",
    title="MNIST handwritten digits: XGBoost vs deskew/PCA/SVM vs a small Keras CNN (accuracy)",
    task="multiclass",
    primary_metric="accuracy",
    greater_is_better=True,
    # The standard protocol: fit on the 60,000 training images, score once on the given t10k set. XGBoost's
    # early-stopping validation part is carved from the training images inside its fit, never from t10k.
    split=SplitSpec(kind="given", cv_folds=0, cv_on="none", refit_on="train", seed=42),
    # `make mnist` trains all three so the MLflow UI compares them side by side.
    variants=({"model": "xgboost"}, {"model": "classical"}, {"model": "cnn"}),
    seed_scores={"accuracy": 0.9784},
    input_kind="array",
    target="digit",
)
