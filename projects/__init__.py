"""The seven projects. ``load_pipeline`` loads a trained (champion by default) pipeline for prediction.

>>> from projects import load_pipeline
>>> load_pipeline("spam").predict(["WINNER!! claim your prize"])  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any


def load_pipeline(project: str, alias: str | None = None, version: str | int | None = None,
                  run_id: str | None = None) -> Any:
    """Load a project's fitted pipeline from MLflow: the ``@champion`` unless ``version``/``alias``/``run_id``.

    Raises:
        common.errors.ModelNotFoundError: when nothing is registered yet (the message names the make target).
        common.errors.ModelIntegrityError: the model file differs from the one logged (its ``model_sha256`` tag).
        common.errors.ModelLoadError: the version is registered but its artifacts are missing or damaged.
    """
    from common import registry, tracking

    spec = registry.get_spec(project)
    return tracking.load_model(spec.name, alias=alias, version=version, run_id=run_id, make_target=spec.make_target)


__all__ = ["load_pipeline"]
