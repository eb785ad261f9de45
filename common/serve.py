"""Serving a registered pipeline over REST: MLflow's scoring server, speaking the project's errors.

``mlprojects serve <project>`` (``make serve``) runs the app MLflow's own ``mlflow models serve`` runs
(``mlflow.pyfunc.scoring_server.init``: the same ``/invocations``, ``/ping``, ``/health`` and ``/version``
routes, payload parsing and response format) around a thin adapter and one ASGI middleware:

* The adapter (``ServedPipeline``) gives the scoring server the fitted pipeline itself, loaded by
  ``tracking.load_model`` (so the recorded sha256 is checked first), and takes every payload form MLflow
  documents: ``dataframe_split``, ``dataframe_records``, ``inputs`` and ``instances`` (rows of
  ``{column: value}``, ``{column: [values]}``, or bare texts for the text projects) and ``text/csv``. It
  parses without MLflow's signature (ours lists every training column as required, of type ``Any``, which
  refuses CSV and any partial row); the project's input contract, the first pipeline step, checks the rows
  instead, exactly as in-process and in ``mlprojects predict``.
* A project ``InputError`` becomes ``400 {"error_code": "BAD_REQUEST", "message": <the project's message>}``:
  the message that names the row, column, value and expectation, and nothing else (no echo of the input,
  no stack trace). Any other failure is a ``500`` with the exception's type and first line; its traceback
  goes to the server log only.
* The middleware refuses a body over ``max_body_bytes`` with ``413`` before it is read (``Content-Length``)
  or as soon as a chunked body passes the limit, answers ``415`` for a request with no content type, and
  strips ``stack_trace`` from (and shortens) MLflow's own error bodies, e.g. for JSON that does not parse.

What this relies on in MLflow (``scoring_server.init`` taking any object with ``metadata`` and ``predict``,
``invocations`` answering an ``MlflowException`` with its ``serialize_as_json``, the route running in a task
and thread that inherit contextvars) is pinned by tests/test_serve.py, which runs the real server and checks
the exact bodies; a change in MLflow fails those tests rather than the clean answers silently.

Plain ``mlflow models serve -m models:/<project>@champion`` keeps working; it answers with MLflow's generic
error bodies, has no body limit and refuses CSV for our signatures.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import logging
import os
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from common.errors import InputError, MLProjectsError

log = logging.getLogger(__name__)

#: Default request-body limit in MiB: ~10k tabular rows or ~1k pages of text per request; larger inputs
#: belong in files (`mlprojects predict <project> --input FILE`), not one request.
DEFAULT_MAX_BODY_MB = 10.0
MAX_BODY_ENV = "MLPROJECTS_SERVE_MAX_BODY_MB"
# MLflow's own error messages can echo a whole request; a client needs the start of them.
_MAX_MESSAGE_CHARS = 2000

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def max_body_bytes(mb: float | None = None) -> int:
    """The request-body limit in bytes: ``mb``, else ``$MLPROJECTS_SERVE_MAX_BODY_MB``, else 10 MiB.

    Raises:
        MLProjectsError: the value is not a positive number.
    """
    raw: Any = mb if mb is not None else os.environ.get(MAX_BODY_ENV, DEFAULT_MAX_BODY_MB)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = float("nan")
    if not np.isfinite(value) or value <= 0:
        raise MLProjectsError(f"The request-body limit must be a positive number of MiB; got {raw!r} "
                              f"(--max-body-mb or {MAX_BODY_ENV}).")
    return int(value * 1024 * 1024)


@functools.cache
def _clean_error_class() -> type:
    """An MlflowException subclass whose JSON body is only ``error_code`` and the message it was built with.

    MLflow's ``invocations`` prefixes a failed prediction's message with the whole input ("Failed to predict
    data '...'") before answering; ``serialize_as_json`` is what it answers with, so the body stays clean.
    (Built on first use: importing mlflow is slow and ``mlprojects --help`` should not pay for it.)
    """
    from mlflow.exceptions import MlflowException

    class CleanError(MlflowException):
        def __init__(self, message: str, error_code: int) -> None:
            super().__init__(message, error_code=error_code)
            self.clean_message = message

        def serialize_as_json(self) -> str:
            return json.dumps({"error_code": self.error_code, "message": self.clean_message})

    return CleanError


def _mlflow_exception(message: str, code: str) -> Exception:
    """``code`` names an MLflow error code (``BAD_REQUEST`` answers 400, ``INTERNAL_ERROR`` 500)."""
    from mlflow.protos import databricks_pb2

    return _clean_error_class()(message, databricks_pb2.ErrorCode.Value(code))


def request_rows(data: Any) -> Any:
    """A parsed request as the pipeline's raw input.

    ``inputs``/``instances`` given as ``{column: values}`` (or rows of ``{column: value}``, which MLflow turns
    into that) become a DataFrame; a single ``{column: value}`` row becomes a one-row DataFrame. Tables, texts
    and arrays pass unchanged: the project's pipeline accepts them or says what it expects.

    Raises:
        InputError: the columns have different lengths.
    """
    if isinstance(data, dict):
        columns = {str(k): (np.asarray(v) if not isinstance(v, np.ndarray) else v) for k, v in data.items()}
        if columns and all(v.ndim == 0 for v in columns.values()):
            return pd.DataFrame([{k: v.item() for k, v in columns.items()}])
        lengths = {k: len(v) if v.ndim else 1 for k, v in columns.items()}
        if len(set(lengths.values())) > 1:
            shown = ", ".join(f"{k}: {n}" for k, n in list(lengths.items())[:6])
            raise InputError(f"the input's columns have different lengths ({shown}); send one value per row "
                             "in every column.")
        return pd.DataFrame({k: (list(v) if v.ndim > 1 else v) for k, v in columns.items()})
    return data


# The JSON body of the request being answered, for ServedPipeline.predict. MLflow parses ``inputs`` and
# ``instances`` through numpy, which turns ``["fine", 42]`` into two strings and a record's null into a 0-d
# array; the project's contract must see what the client sent. RequestGuard sets it before the app runs;
# contextvars are copied into the tasks and the worker thread MLflow's route uses, so each request sees its own.
_REQUEST_JSON: contextvars.ContextVar[Any] = contextvars.ContextVar("mlprojects_request_json", default=None)
_TENSOR_FORMS = ("inputs", "instances")


@contextlib.contextmanager
def request_body(body: bytes | str, content_type: str | None) -> Iterator[None]:
    """Make a JSON request body visible to ``ServedPipeline.predict`` while the request is answered."""
    value = None
    if content_type and content_type.split(";")[0].strip().lower() == "application/json":
        try:
            value = json.loads(body)
        except ValueError:  # MLflow answers for a body that does not parse
            value = None
    token = _REQUEST_JSON.set(value)
    try:
        yield
    finally:
        _REQUEST_JSON.reset(token)


def tensor_rows(value: Any) -> Any:
    """The raw input of an ``inputs``/``instances`` value, built from the JSON as sent (no numpy conversion).

    Rows of ``{column: value}`` and ``{column: [values]}`` become a DataFrame; a list of values (texts,
    titles) stays a list; a list of lists (image rows) becomes an array; a single value becomes a list of one.

    Raises:
        InputError: the columns have different lengths.
    """
    if isinstance(value, dict):
        return request_rows(value)
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return pd.DataFrame(value)
    if isinstance(value, list) and value and all(isinstance(v, list) for v in value):
        return np.asarray(value, dtype=object if any(isinstance(x, str | None) for v in value for x in v) else None)
    if isinstance(value, list):
        return value
    return [value]


class _Metadata:
    """The model's MLmodel metadata, minus the input schema (the project's contract checks the rows)."""

    def __init__(self, metadata: Any) -> None:
        self._metadata = metadata

    def get_input_schema(self) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._metadata, name)


@dataclass
class ServedPipeline:
    """What MLflow's scoring server calls: ``metadata`` and ``predict(data, params=None)``."""

    project: str
    pipeline: Any
    model_metadata: Any

    @property
    def metadata(self) -> Any:
        return _Metadata(self.model_metadata)

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        """Predict on a parsed request; project input errors become clean 400s, anything else a 500."""
        payload = _REQUEST_JSON.get()
        try:
            forms = [k for k in _TENSOR_FORMS if isinstance(payload, dict) and k in payload]
            rows = tensor_rows(payload[forms[0]]) if len(forms) == 1 else request_rows(data)
            return self.pipeline.predict(rows)
        except InputError as exc:
            raise _mlflow_exception(str(exc), "BAD_REQUEST") from exc
        except Exception as exc:  # the client gets the type and first line; the server log gets the rest
            log.exception("%s: prediction failed", self.project)
            first = str(exc).splitlines()[0][:300] if str(exc) else "no detail"
            raise _mlflow_exception(f"{self.project} could not score this input ({type(exc).__name__}: {first}); "
                                    "the server log has the details.", "INTERNAL_ERROR") from exc


class RequestGuard:
    """ASGI middleware: body limit (413), a content type on POST (415), and short error bodies without stack
    traces."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _answer(self, send: Send, status: int, code: str, message: str) -> None:
        body = json.dumps({"error_code": code, "message": message}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    def _too_large(self, size: str) -> str:
        return (f"The request body ({size}) is over this server's limit of {self.max_bytes / 2**20:.4g} MiB "
                f"(--max-body-mb or {MAX_BODY_ENV}). Send fewer rows per request, or score a file with "
                "`mlprojects predict <project> --input FILE`.")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._answer(send, 413, "REQUEST_TOO_LARGE", self._too_large(f"{int(length):,} bytes"))
            return
        if not headers.get("content-type"):
            await self._answer(send, 415, "BAD_REQUEST", "The request has no Content-Type: send application/json "
                               "(dataframe_split, dataframe_records, inputs or instances) or text/csv.")
            return
        # MLflow's endpoint reads the whole body anyway; reading it here first lets a chunked body be cut off
        # at the limit instead of after it has all arrived.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._answer(send, 413, "REQUEST_TOO_LARGE", self._too_large(f"over {self.max_bytes:,} bytes"))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        start: Message = {}
        parts: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                if message["status"] < 400:
                    await send(message)
                return
            if start.get("status", 200) < 400:
                await send(message)
                return
            parts.append(message.get("body", b""))
            if not message.get("more_body", False):
                cleaned = _clean_error_body(b"".join(parts))
                headers_out = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
                headers_out.append((b"content-length", str(len(cleaned)).encode()))
                await send({**start, "headers": headers_out})
                await send({"type": "http.response.body", "body": cleaned})

        with request_body(body, headers.get("content-type")):
            await self.app(scope, replay, capture)


def _clean_error_body(body: bytes) -> bytes:
    """An error body without ``stack_trace`` and with a message short enough to read."""
    try:
        payload = json.loads(body)
    except ValueError:
        text = body.decode("utf-8", "replace")
        return text[:_MAX_MESSAGE_CHARS].encode() if len(text) > _MAX_MESSAGE_CHARS else body
    if not isinstance(payload, dict):
        return body
    payload.pop("stack_trace", None)
    message = payload.get("message")
    if isinstance(message, str) and len(message) > _MAX_MESSAGE_CHARS:
        payload["message"] = message[:_MAX_MESSAGE_CHARS] + " [...]"
    return json.dumps(payload).encode()


def build_app(project: str, alias: str | None = None, version: str | None = None,
              max_body_mb: float | None = None) -> Any:
    """The ASGI app serving a project's registered pipeline (the champion by default).

    Raises:
        ModelNotFoundError, ModelLoadError, ModelIntegrityError: as ``tracking.load_model``.
        MLProjectsError: the body limit is not a positive number.
    """
    import mlflow
    from mlflow.pyfunc import scoring_server

    from common import registry, tracking

    limit = max_body_bytes(max_body_mb)
    spec = registry.get_spec(project)
    tracking.configure()
    pipeline = tracking.load_model(spec.name, alias=alias, version=version, make_target=spec.make_target)
    metadata = mlflow.models.Model.load(tracking.model_uri(spec.name, alias=alias, version=version))
    app = scoring_server.init(ServedPipeline(spec.name, pipeline, metadata))
    return RequestGuard(app, limit)


def serve(project: str, host: str = "127.0.0.1", port: int = 5001, alias: str | None = None,
          version: str | None = None, max_body_mb: float | None = None) -> None:
    """Serve a project's pipeline until interrupted (one process; uvicorn handles SIGINT/SIGTERM)."""
    import uvicorn

    app = build_app(project, alias=alias, version=version, max_body_mb=max_body_mb)
    log.info("serving %s on http://%s:%d/invocations (body limit %.0f MiB)", project, host, port,
             max_body_bytes(max_body_mb) / 2**20)
    uvicorn.run(app, host=host, port=port, log_level="info")
