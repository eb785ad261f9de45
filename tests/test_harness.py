"""Every registered project end to end on small generated data of the real schema.

fit -> evaluate -> log to a temporary MLflow store -> register -> reload (sklearn and pyfunc flavours)
-> the same predictions on raw input. A project joins this harness by having ``synthetic.generate``.
"""

from __future__ import annotations

import importlib
import operator

import numpy as np
import pandas as pd
import pytest

from common import registry, tracking, train
from tests.settings import QUALITY_FLOOR, TEST_PARAMS

PROJECTS = registry.names()
_OPS = {"<=": operator.le, ">=": operator.ge}


def _synthetic(name: str):
    return importlib.import_module(f"projects.{name}.synthetic")


def _same(a, b) -> None:
    if isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))
    else:
        a, b = np.asarray(a), np.asarray(b)
        if a.dtype.kind in "fc":
            np.testing.assert_allclose(a, b, rtol=1e-6)
        else:
            assert (a == b).all()


@pytest.mark.parametrize("name", PROJECTS)
def test_project_has_generator(name: str) -> None:
    project = registry.get(name)
    assert project.generate is not None, f"projects/{name}/synthetic.py must define generate()"


@pytest.mark.parametrize("name", PROJECTS)
def test_project_end_to_end(name: str) -> None:
    import mlflow

    project = registry.get(name)
    synth = _synthetic(name)
    ds = synth.generate()
    overrides = dict(TEST_PARAMS.get(name, {}))
    result = train.run(name, overrides, dataset=ds)

    spec = project.spec
    assert np.isfinite(result.metrics["primary_metric"])
    assert result.metrics["primary_metric"] == result.metrics[spec.primary_metric]
    assert any(k.startswith("baseline_") for k in result.metrics), "a baseline must be reported"
    assert result.metrics["fit_seconds"] >= 0
    for metric, (op, bound) in QUALITY_FLOOR.get(name, {}).items():
        assert _OPS[op](result.metrics[metric], bound), f"{name}: {metric}={result.metrics[metric]} not {op} {bound}"

    # Registered and champion (first model of a fresh store).
    assert result.version == "1" and result.promotion and result.promotion.promoted
    run = mlflow.get_run(result.run_id)
    assert run.data.tags["project"] == name
    assert "dataset.sha256" in run.data.tags

    example = getattr(synth, "predict_example", lambda d: train._signature_example(project, d.X[:3] if isinstance(d.X, list) else train.splits.take(d.X, np.arange(3))))(ds)
    expected = result.model.predict(example)
    reloaded = tracking.load_model(name)
    _same(reloaded.predict(example), expected)
    pyfunc = mlflow.pyfunc.load_model(tracking.model_uri(name))
    _same(pyfunc.predict(example), expected)

    # The command line predicts the same from a raw input file (the form a user has on disk).
    _predict_from_file(name, example, expected)


def _predict_from_file(name: str, example, expected) -> None:
    import tempfile
    from pathlib import Path

    from common import cli

    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "input.csv", Path(tmp) / "pred.csv"
        frame = example if isinstance(example, pd.DataFrame) else pd.DataFrame(np.asarray(example).reshape(len(example), -1))
        frame.to_csv(src, index=False)
        assert cli.main(["predict", name, "--input", str(src), "--output", str(out)]) == 0
        pred = pd.read_csv(out)
    target = registry.get(name).spec.target
    if isinstance(expected, pd.DataFrame):
        assert len(pred) == len(expected)
    else:
        assert len(pred) == len(np.asarray(expected))
        got = pred[target].to_numpy()
        if np.asarray(expected).dtype.kind in "fc":
            np.testing.assert_allclose(got, np.asarray(expected, dtype=float), rtol=1e-6)
        else:
            assert [str(v) for v in got] == [str(v) for v in np.asarray(expected)]
