"""Scoring on Spark through MLflow: ``mlflow.pyfunc.spark_udf`` on the champion (or a chosen version).

Spark does the distribution: the input is read as a Spark DataFrame (a Parquet file or folder, or a table),
the model's UDF is applied to the same raw columns ``mlprojects predict`` takes, and the output is a Parquet
folder with the input's id columns, the prediction column and, for classifiers, one ``proba_<class>``
column per class, exactly as in-process predictions.

The model folder is downloaded once and its model file checked against the sha256 recorded at logging
(``tracking.download_verified_model``) before its local path is handed to ``spark_udf``: the executors load
the verified bytes. Probabilities come from a second UDF on a copy of that folder whose pyfunc flavor calls
``predict_proba`` (what ``mlflow.sklearn.log_model(pyfunc_predict_fn="predict_proba")`` would have written).

The output is written to a temporary folder beside the final one and renamed (Hadoop FileSystem rename, so
local paths, HDFS and object stores alike) only when the job succeeded.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from common import predict, registry, tracking
from common.console import log
from common.errors import InputError, MLProjectsError

DEFAULT_MASTER = "local[2]"
_TABLE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*){0,2}$")
PROBA_FN = "predict_proba"


class SparkUnavailableError(MLProjectsError):
    """pyspark or Java is missing, or Spark could not start."""


class SparkScoringError(MLProjectsError):
    """The Spark job failed (a refused row, an unreadable input...)."""


@dataclass
class SparkResult:
    """What a Spark scoring run wrote."""

    rows: int
    output: str
    master: str
    seconds: float


def java_executable() -> str | None:
    """The ``java`` Spark will start: ``$JAVA_HOME/bin/java`` when JAVA_HOME is set, else the one on PATH."""
    home = os.environ.get("JAVA_HOME")
    if home:
        candidate = Path(home) / "bin" / "java"
        return str(candidate) if candidate.exists() else None
    return shutil.which("java")


def require_spark() -> None:
    """Raise ``SparkUnavailableError`` saying how to install what is missing (pyspark, or a Java runtime)."""
    try:
        import pyspark  # noqa: F401
    except ImportError as exc:
        raise SparkUnavailableError(
            "Scoring with --engine spark needs pyspark: install the spark extra (`pip install -e '.[spark]'`)."
        ) from exc
    if java_executable() is None:
        where = f"JAVA_HOME={os.environ['JAVA_HOME']} has no bin/java" if os.environ.get("JAVA_HOME") else \
            "no `java` on PATH"
        raise SparkUnavailableError(
            f"Spark needs a Java runtime (17 or newer) and found none ({where}). On Debian/Ubuntu: "
            "`sudo apt-get install default-jre-headless`; elsewhere install any OpenJDK 17+ and set JAVA_HOME."
        )


def is_local_master(master: str) -> bool:
    """``local``, ``local[2]``, ``local[*]``...: the driver and executors are this machine."""
    return master == "local" or master.startswith("local[")


def is_loopback_master(master: str) -> bool:
    """A local master, or a standalone master on this machine's loopback (``spark://127.0.0.1:7077``): the
    executors are this machine, so the driver can stay on 127.0.0.1 and they can run this interpreter."""
    if is_local_master(master):
        return True
    return master.startswith("spark://") and urlsplit(master).hostname in ("127.0.0.1", "localhost", "::1")


@contextmanager
def session(master: str = DEFAULT_MASTER, driver_memory: str = "2g", app_name: str = "mlprojects-predict") -> Iterator[Any]:
    """A SparkSession, stopped on exit. A local or loopback master (``is_loopback_master``) binds the driver
    to 127.0.0.1 and its Python workers run this interpreter; the web UI is off (it would listen on every
    interface).

    A session already active in this process is used as it is and left running (its master wins).
    """
    require_spark()
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        if active.sparkContext.master != master:
            log.warning("using the active Spark session (master %s), not %s", active.sparkContext.master, master)
        yield active
        return
    builder = (SparkSession.builder.master(master).appName(app_name)
               .config("spark.driver.memory", driver_memory)
               .config("spark.ui.enabled", "false")
               .config("spark.sql.execution.arrow.pyspark.enabled", "true"))
    if is_loopback_master(master):
        builder = (builder.config("spark.driver.host", "127.0.0.1")
                   .config("spark.driver.bindAddress", "127.0.0.1"))
        # Python workers start from PYSPARK_PYTHON (else `python3` on PATH, which may lack this environment).
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    try:
        with warnings.catch_warnings():  # pyspark 4's pandas >= 3 notice (see scored_frame)
            warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas",
                                    category=FutureWarning)
            spark = builder.getOrCreate()
    except Exception as exc:  # py4j / PySparkRuntimeError: the JVM did not start
        raise SparkUnavailableError(f"Spark could not start with master {master!r} "
                                    f"({type(exc).__name__}: {_first_line(exc)}). Java: {java_executable()}.") from exc
    spark.sparkContext.setLogLevel("ERROR")
    try:
        yield spark
    finally:
        spark.stop()


def label_type(model: Any) -> str:
    """The Spark type of the prediction column, from the fitted model: its classes' type, else double."""
    classes = getattr(model, "classes_", None)
    if classes is None:
        return "double"
    kind = np.asarray(classes).dtype.kind
    return {"i": "long", "u": "long", "b": "boolean", "f": "double"}.get(kind, "string")


def proba_model_dir(model_dir: Path, dst: Path) -> Path:
    """A copy of a verified model folder whose pyfunc flavor calls ``predict_proba`` instead of ``predict``."""
    from mlflow.models import Model, ModelSignature

    shutil.copytree(model_dir, dst)
    meta = Model.load(str(dst / "MLmodel"))
    meta.flavors["python_function"]["predict_fn"] = PROBA_FN
    if meta.signature is not None:  # the logged outputs describe labels, not probabilities
        meta.signature = ModelSignature(inputs=meta.signature.inputs)
    meta.save(str(dst / "MLmodel"))
    return dst


def model_columns(input_kind: str, columns: list[str]) -> list[str]:
    """The input columns handed to the model, as ``predict.model_input`` chooses them in-process."""
    if input_kind == "text":
        if "text" not in columns:
            raise InputError(f"Text input needs a 'text' column; found {columns[:10]}.")
        return ["text"]
    if input_kind == "array":
        return [c for c in columns if c.lower() not in predict.NOT_PIXELS]
    return list(columns)


def scored_frame(spark: Any, frame: Any, spec: Any, model: Any, model_dir: Path, work: Path) -> Any:
    """The Spark DataFrame of the input's id columns, the predictions and (classifiers) ``proba_<class>``."""
    with warnings.catch_warnings():
        # pyspark 4.x warns on every UDF that it "does not yet fully support pandas >= 3.0.0"; the tests
        # compare its output with in-process predictions for every row-scorable project.
        warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas",
                                category=FutureWarning)
        return _scored_frame(spark, frame, spec, model, model_dir, work)


def _scored_frame(spark: Any, frame: Any, spec: Any, model: Any, model_dir: Path, work: Path) -> Any:
    from mlflow.pyfunc import spark_udf
    from pyspark.sql import functions as F

    columns = _signature_columns(model_dir, model_columns(spec.input_kind, frame.columns))
    if _tensor_input(model_dir):
        # A tensor signature (mnist's (-1, 784) float64) takes one array column per row, per spark_udf's
        # docs: the pixel columns in image order, cast to double.
        ordered = image_order(spec.name, columns)
        args = F.array(*[F.col(f"`{c}`").cast("double") for c in ordered])
    else:
        args = F.struct(*[F.col(f"`{c}`") for c in columns])
    ids = [F.col(f"`{c}`") for c in predict.id_columns(frame.columns)]
    label = spark_udf(spark, str(model_dir), result_type=label_type(model), env_manager="local")
    out = [*ids, label(args).alias(spec.target)]
    classes = getattr(model, "classes_", None)
    if classes is not None and hasattr(model, PROBA_FN):
        proba = spark_udf(spark, str(proba_model_dir(model_dir, work / "proba")), result_type="array<double>",
                          env_manager="local")
        scored = frame.select(*out, proba(args).alias("__proba"))
        return scored.select(*[F.col(f"`{c}`") for c in scored.columns if c != "__proba"],
                             *[F.col("__proba")[i].alias(f"proba_{cls}") for i, cls in enumerate(classes)])
    return frame.select(*out)


def _tensor_input(model_dir: Path) -> bool:
    from mlflow.models import Model

    signature = Model.load(str(model_dir / "MLmodel")).signature
    return signature is not None and signature.inputs.is_tensor_spec()


def image_order(project: str, columns: list[str]) -> list[str]:
    """The pixel columns in image order, by the naming schemes the project declares (``PIXEL_NAMES`` in its
    ``features`` module, as its pipeline matches them in-process); else the input's order."""
    try:
        schemes = importlib.import_module(f"projects.{project}.features").PIXEL_NAMES
    except (ImportError, AttributeError):
        return columns
    names = {str(c) for c in columns}
    for scheme in schemes.values():
        if names.issuperset(scheme):
            return list(scheme)
    raise InputError(f"{project} input needs the pixel columns of one naming scheme "
                     f"({', '.join(f'{v[0]}..{v[-1]}' for v in schemes.values())}); got {columns[:6]} ...")


def _signature_columns(model_dir: Path, columns: list[str]) -> list[str]:
    """The input columns the model's signature names, in the input's order (others would only be dropped by
    MLflow with a warning per batch); a required one that is missing is an error before the job starts."""
    from mlflow.models import Model

    signature = Model.load(str(model_dir / "MLmodel")).signature
    if signature is None or signature.inputs.is_tensor_spec() or not signature.inputs.has_input_names():
        return columns
    names = signature.inputs.input_names()
    missing = [n for n in signature.inputs.required_input_names() if n not in columns]
    if missing:
        raise InputError(f"The input lacks column(s) the model requires: {', '.join(map(str, missing[:10]))}"
                         f"{' ...' if len(missing) > 10 else ''}.")
    return [c for c in columns if c in names]


def read_input(spark: Any, source: str) -> Any:
    """A Parquet file or folder (local path or URI such as hdfs://, s3a://), or a table name."""
    path = Path(source)
    has_scheme = "://" in source
    try:
        if has_scheme or path.exists():
            return spark.read.parquet(source if has_scheme else str(path.resolve()))
        if _TABLE.match(source) and path.suffix.lower() not in (".parquet", ".pq"):
            return spark.table(source)  # `name`, `db.name` or `catalog.db.name`
    except Exception as exc:  # AnalysisException and friends
        raise InputError(f"Spark could not read {source}: {_first_line(exc)}") from exc
    raise InputError(f"Input {source} does not exist (give a Parquet file or folder, or a table name).")


def score(project: str, input_path: str | None, output_path: str | None, master: str = DEFAULT_MASTER,
          driver_memory: str = "2g", version: str | None = None, alias: str | None = None,
          run_id: str | None = None, spark: Any = None) -> SparkResult:
    """Score a Parquet input (or a table) on Spark with a registered pipeline and write a Parquet folder.

    Args:
        project: a row-scorable project (house_prices, spam, sentiment, churn, mnist).
        input_path: a Parquet file or folder, or a table name.
        output_path: the output Parquet folder (replaced if it exists, only after the job succeeded).
        master: the Spark master URL (``local[2]``, ``spark://host:7077``...); ignored when ``spark`` is given.
        driver_memory: ``spark.driver.memory`` for a session started here.
        version, alias, run_id: which model (the champion by default).
        spark: an existing SparkSession to use (it is left running).

    Raises:
        NotRowScorableError, SparkUnavailableError, InputError, SparkScoringError, and the model errors of
        ``tracking.load_model``.
    """
    spec = registry.get_spec(project)
    predict.require_row_scorable(spec)
    if not input_path or not output_path:
        raise InputError("--engine spark scores an --input (Parquet file or folder, or table) into an "
                         "--output Parquet folder: give both.")
    require_spark()
    import mlflow

    with tempfile.TemporaryDirectory(prefix="mlprojects-spark-") as tmp:
        work = Path(tmp)
        model_dir, label = tracking.download_verified_model(spec.name, work / "download", alias=alias,
                                                            version=version, run_id=run_id,
                                                            make_target=spec.make_target)
        model = mlflow.sklearn.load_model(str(model_dir))  # the driver reads classes_ from the verified bytes
        log.info("scoring with %s on Spark", label)
        if spark is not None:
            return _run(spark, spec, model, model_dir, work, input_path, output_path)
        with session(master, driver_memory) as started:
            return _run(started, spec, model, model_dir, work, input_path, output_path)


def _run(spark: Any, spec: Any, model: Any, model_dir: Path, work: Path, input_path: str,
         output_path: str) -> SparkResult:
    start = time.perf_counter()
    frame = read_input(spark, input_path)
    scored = scored_frame(spark, frame, spec, model, model_dir, work)
    final = output_path if "://" in output_path else str(Path(output_path).resolve())
    jvm = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path
    target = hadoop_path(final)
    fs = target.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    tmp = hadoop_path(target.getParent(), f".{target.getName()}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        scored.write.mode("error").parquet(tmp.toString())
        if fs.exists(target):
            fs.delete(target, True)
        if not fs.rename(tmp, target):
            raise SparkScoringError(f"Could not rename {tmp.toString()} to {final}.")
    except MLProjectsError:
        raise
    except Exception as exc:
        raise SparkScoringError(f"Scoring {input_path} on Spark failed: {_reason(exc)}") from exc
    finally:
        if fs.exists(tmp):
            fs.delete(tmp, True)
    rows = spark.read.parquet(final).count()  # from the Parquet footers: the scoring does not run again
    return SparkResult(rows=rows, output=final, master=spark.sparkContext.master,
                       seconds=time.perf_counter() - start)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _reason(exc: BaseException) -> str:
    """The useful line of a failed Spark job: the Python error raised in a worker when there is one."""
    lines = str(exc).splitlines()
    for marker in ("InputError:", "MLProjectsError:", "MlflowException:"):
        found = [line for line in lines if marker in line]
        if found:
            return found[-1].split(marker, 1)[1].strip() + (
                " (a row number here counts from the start of one Spark batch: "
                "score the file with the local engine to get the row in the file)" if marker == "InputError:" else "")
    return _first_line(exc)
