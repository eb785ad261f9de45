"""`make serve`: the champion served by `mlflow models serve` answers raw-input JSON like the in-process model."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common import registry, train
from tests.settings import TEST_PARAMS

pytestmark = [pytest.mark.serve, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, payload: dict) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _split_payload(frame: pd.DataFrame) -> dict:
    return {"dataframe_split": json.loads(frame.to_json(orient="split", index=False))}


def _serve(project: str, tmp_path: Path):
    port = _free_port()
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    proc = subprocess.Popen(
        [str(mlflow_bin), "models", "serve", "-m", f"models:/{project}@champion", "--env-manager", "local",
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        # mlflow starts uvicorn by name, so the environment's bin folder must be on PATH.
        env={**os.environ, "PATH": f"{mlflow_bin.parent}{os.pathsep}{os.environ.get('PATH', '')}"}, stdout=open(tmp_path / "serve.log", "wb"), stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 300  # generous: imports are slow on a loaded 2-core machine
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError("server exited:\n" + (tmp_path / "serve.log").read_text()[-3000:])
        try:
            with urllib.request.urlopen(base + "/ping", timeout=2) as r:
                if r.status == 200:
                    return proc, base
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise AssertionError("server did not start:\n" + (tmp_path / "serve.log").read_text()[-3000:])


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_serve_tabular_house_prices(tmp_path: Path) -> None:
    from projects.house_prices import synthetic

    ds = synthetic.generate(120)
    result = train.run("house_prices", {"model": "linear"}, dataset=ds)
    rows = ds.X_predict.head(5).copy()
    rows.insert(0, "Id", range(1, 6))  # raw Kaggle rows carry an Id; the model ignores it
    expected = result.model.predict(rows)
    proc, base = _serve("house_prices", tmp_path)
    try:
        status, body = _post(base + "/invocations", _split_payload(rows))
        assert status == 200, body
        np.testing.assert_allclose(np.asarray(body["predictions"], dtype=float), expected, rtol=1e-6)

        status, body = _post(base + "/invocations", _split_payload(rows.drop(columns=["GrLivArea", "Street"])))
        assert 400 <= status < 500
        assert "GrLivArea" in json.dumps(body)

        wrong = rows.astype({"GrLivArea": object})
        wrong.loc[wrong.index[0], "GrLivArea"] = "big"
        status, body = _post(base + "/invocations", _split_payload(wrong))
        # The pipeline's input contract answers, naming the row, the column and the value.
        assert 400 <= status < 500 and "row 0, column 'GrLivArea': got 'big'" in json.dumps(body)

        status, body = _post(base + "/invocations", {"nonsense": [1, 2]})
        assert 400 <= status < 500
    finally:
        _stop(proc)


@pytest.mark.skipif("spam" not in registry.names(), reason="the spam project is not present")
def test_serve_text_spam(tmp_path: Path) -> None:
    from projects.spam import synthetic

    ds = synthetic.generate()
    result = train.run("spam", dict(TEST_PARAMS["spam"]), dataset=ds)
    texts = ["WINNER!! claim your free prize now", "see you at lunch tomorrow?", "", "ok 👍"]
    expected = np.asarray(result.model.predict(texts))
    proc, base = _serve("spam", tmp_path)
    try:
        status, body = _post(base + "/invocations", {"dataframe_split": {"columns": ["text"], "data": [[t] for t in texts]}})
        assert status == 200, body
        assert [p if not isinstance(p, dict) else list(p.values())[0] for p in body["predictions"]] == expected.tolist()
        status, body = _post(base + "/invocations", {"dataframe_split": {"columns": ["message"], "data": [["hi"]]}})
        assert 400 <= status < 500
    finally:
        _stop(proc)
