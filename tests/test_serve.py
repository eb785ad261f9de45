"""`make serve` (`mlprojects serve`): the champion over HTTP answers raw input like the in-process model, bad
input with 400 and only the project's message, bodies over the limit with 413; plain `mlflow models serve`
still works. Every payload form for every project is checked in-process in tests/test_input_contracts.py."""

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


def _post(url: str, payload: dict | bytes | str, content_type: str = "application/json",
          headers: dict[str, str] | None = None) -> tuple[int, dict]:
    data = payload if isinstance(payload, bytes) else (payload.encode() if isinstance(payload, str) else json.dumps(payload).encode())
    req = urllib.request.Request(url, data=data, headers={"Content-Type": content_type, **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raw = exc.read() or b"{}"
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, {"text": raw.decode("utf-8", "replace")}


def _split_payload(frame: pd.DataFrame) -> dict:
    return {"dataframe_split": json.loads(frame.to_json(orient="split", index=False))}


def _serve(project: str, tmp_path: Path, mlflow_cli: bool = False, extra: tuple[str, ...] = ()):
    """Start `mlprojects serve` (or plain `mlflow models serve`) on a free loopback port; wait for /ping."""
    port = _free_port()
    bin_dir = Path(sys.executable).parent
    if mlflow_cli:
        cmd = [str(bin_dir / "mlflow"), "models", "serve", "-m", f"models:/{project}@champion", "--env-manager",
               "local", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    else:
        cmd = [str(bin_dir / "mlprojects"), "serve", project, "--port", str(port), *extra]
    log = tmp_path / f"serve-{port}.log"
    proc = subprocess.Popen(
        # mlflow starts uvicorn by name, so the environment's bin folder must be on PATH.
        cmd, env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"},
        stdout=open(log, "wb"), stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 300  # generous: imports are slow on a loaded 2-core machine
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError("server exited:\n" + log.read_text()[-3000:])
        try:
            with urllib.request.urlopen(base + "/ping", timeout=2) as r:
                if r.status == 200:
                    return proc, base
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise AssertionError("server did not start:\n" + log.read_text()[-3000:])


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

        # Only the project's message: no echo of the input, no stack trace.
        assert body == {"error_code": "BAD_REQUEST", "message": body["message"]}
        assert "Failed to predict" not in body["message"] and "Traceback" not in json.dumps(body)

        status, body = _post(base + "/invocations", rows.to_csv(index=False), "text/csv")
        assert status == 200, body
        np.testing.assert_allclose(np.asarray(body["predictions"], dtype=float), expected, rtol=1e-6)
        records = json.loads(rows.to_json(orient="records"))
        status, body = _post(base + "/invocations", {"instances": records})
        assert status == 200, body
        np.testing.assert_allclose(np.asarray(body["predictions"], dtype=float), expected, rtol=1e-6)

        status, body = _post(base + "/invocations", {"nonsense": [1, 2]})
        assert 400 <= status < 500 and "stack_trace" not in body
        status, body = _post(base + "/invocations", b"{not json")
        assert status == 400 and "stack_trace" not in body and "valid JSON" in body["message"]
        status, body = _post(base + "/invocations", b"x", content_type="")
        assert status == 415 and "Content-Type" in body["message"]
        status, body = _post(base + "/invocations", b"x", content_type="text/plain")
        assert status == 415
    finally:
        _stop(proc)


def test_serve_body_limit(tmp_path: Path) -> None:
    """413 over the limit, announced by Content-Length or found while reading a chunked body."""
    from projects.house_prices import synthetic

    ds = synthetic.generate(120)
    train.run("house_prices", {"model": "linear"}, dataset=ds)
    proc, base = _serve("house_prices", tmp_path, extra=("--max-body-mb", "0.05"))
    try:
        big = json.dumps({"inputs": {"GrLivArea": [1500] * 20_000}}).encode()
        assert len(big) > 0.05 * 2**20
        status, body = _post(base + "/invocations", big)
        assert status == 413 and body["error_code"] == "REQUEST_TOO_LARGE" and "0.05 MiB" in body["message"]

        # A chunked body has no Content-Length: the server answers 413 as soon as the limit is passed, while
        # the client is still sending (so the client may see its connection closed mid-send).
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=30) as conn:
            conn.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n")
            try:
                for i in range(0, len(big), 8192):
                    piece = big[i:i + 8192]
                    conn.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                conn.sendall(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass
            answer = conn.recv(4096)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        rows = ds.X_predict.head(2)
        status, body = _post(base + "/invocations", _split_payload(rows))  # small requests still answered
        assert status == 200 and len(body["predictions"]) == 2
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
        for payload in ({"inputs": texts}, {"instances": texts}, {"inputs": {"text": texts}}):
            status, body = _post(base + "/invocations", payload)
            assert status == 200 and body["predictions"] == expected.tolist(), (payload, body)
        status, body = _post(base + "/invocations", "text\n" + "\n".join(f'"{t}"' for t in texts[:2]) + "\n", "text/csv")
        assert status == 200 and body["predictions"] == expected[:2].tolist(), body
        status, body = _post(base + "/invocations", {"dataframe_split": {"columns": ["message"], "data": [["hi"]]}})
        assert status == 400 and "'text' column" in body["message"] and set(body) == {"error_code", "message"}
        status, body = _post(base + "/invocations", {"inputs": ["fine", 42]})  # numpy would make 42 a text
        assert status == 400 and body["message"].startswith("spam input row 1, column 'text': got 42"), body
    finally:
        _stop(proc)
    # Plain `mlflow models serve` still serves the same champion (with MLflow's own error bodies).
    proc, base = _serve("spam", tmp_path, mlflow_cli=True)
    try:
        status, body = _post(base + "/invocations", {"dataframe_split": {"columns": ["text"], "data": [[t] for t in texts]}})
        assert status == 200 and body["predictions"] == expected.tolist(), body
    finally:
        _stop(proc)
