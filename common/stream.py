"""Streaming scoring: any size of input file in constant memory, with the same output as one-shot predict.

The input is read in chunks (Parquet record batches through ``pyarrow.parquet.ParquetFile.iter_batches``,
CSV through ``pandas.read_csv(chunksize=...)``, JSON lines through ``pandas.read_json(lines=True,
chunksize=...)``), each chunk is scored by the same pipeline ``mlprojects predict`` loads, and the
predictions are appended to the output (``pyarrow.parquet.ParquetWriter``, or CSV / JSON lines appends).
Peak memory is one chunk's input and output plus the model, whatever the file's size.

Each chunk keeps the global row numbers of the file as its index (0 = the first data row), so an input
contract's error names the row of the file. The output is written under a temporary name beside the final
one and renamed only when every row was scored: an error or an interrupt never leaves a half-written file
under the final name.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.text import Text

from common import predict, registry, tracking
from common.console import console, log
from common.errors import InputError

OnError = Literal["raise", "skip"]
DEFAULT_BATCH_SIZE = 50_000
READ_FORMATS = (".parquet", ".pq", ".csv", ".tsv", ".txt", ".jsonl", ".ndjson")
WRITE_FORMATS = (".parquet", ".pq", ".csv", ".jsonl", ".ndjson")
_COLUMN = re.compile(r"column '([^']+)'")


@dataclass
class StreamResult:
    """What a streaming run did."""

    rows: int
    scored: int
    rejected: int
    output: Path
    rejects: Path | None
    seconds: float

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("nan")


def string_columns(project: str) -> tuple[str, ...]:
    """The raw columns the project's input contract declares as categories or texts (none without one).

    A CSV chunk infers its column types from its own rows: a category column whose values all look like
    numbers in one chunk (and like words in another) would be read as numbers there and refused. Reading
    these columns as strings gives every chunk the types a whole-file read gives.
    """
    import importlib

    try:
        contract = importlib.import_module(f"projects.{registry.get_spec(project).name}.contract").CONTRACT
    except (ImportError, AttributeError):
        return ()
    return tuple(c for c, rule in contract.columns.items() if rule.kind in ("category", "text"))


def iter_chunks(path: Path, batch_size: int, texts: bool = False,
                strings: tuple[str, ...] = ()) -> Iterator[pd.DataFrame]:
    """The file's rows in chunks of at most ``batch_size``, each indexed by its rows' global positions.

    Args:
        path: a Parquet, CSV (``.csv``/``.tsv``/``.txt``) or JSON lines (``.jsonl``/``.ndjson``) file.
        batch_size: the most rows per chunk.
        texts: the rows are texts: CSV cells are read as written (see ``predict.read_table``).
        strings: CSV columns read as strings in every chunk (``string_columns``); others are inferred.

    Raises:
        InputError: a missing, empty or unreadable file, or an unsupported format.
    """
    if not path.is_file():
        raise InputError(f"Input file {path} does not exist.")
    suffix = path.suffix.lower()
    if suffix not in READ_FORMATS:
        raise InputError(f"Cannot stream '{suffix}' input {path}: use .parquet, .csv or .jsonl "
                         "(a .json document is read whole: predict it without --batch-size/--on-error).")
    if path.stat().st_size == 0:
        raise InputError(f"Input file {path} is empty (no header, no rows): nothing to predict.")
    start = 0
    try:
        for chunk in _raw_chunks(path, suffix, batch_size, texts, strings):
            if len(chunk) == 0:
                continue
            chunk.index = pd.RangeIndex(start, start + len(chunk))
            start += len(chunk)
            yield chunk
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise InputError(f"Could not read {path} after row {start}: {str(exc).splitlines()[0]}") from exc


def _raw_chunks(path: Path, suffix: str, batch_size: int, texts: bool,
                strings: tuple[str, ...] = ()) -> Iterator[pd.DataFrame]:
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        with pq.ParquetFile(path) as pf:
            for batch in pf.iter_batches(batch_size=batch_size):
                yield batch.to_pandas()
        return
    if suffix in (".jsonl", ".ndjson"):
        with pd.read_json(path, lines=True, chunksize=batch_size) as reader:
            yield from reader
        return
    try:
        reader = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", keep_default_na=not texts,
                             chunksize=batch_size, dtype=dict.fromkeys(strings, str) or None)
    except pd.errors.EmptyDataError as exc:
        raise InputError(f"Input file {path} has no header and no rows: nothing to predict.") from exc
    with reader:
        yield from reader


def count_rows(path: Path) -> int | None:
    """The number of rows when it is known without reading the data (Parquet metadata), else None."""
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(path).metadata.num_rows
        except (OSError, ValueError):
            return None
    return None


class AtomicWriter:
    """Appends tables to a temporary file beside ``path``; ``commit`` renames it to ``path``, ``abort``
    removes it. The format follows the suffix: Parquet, CSV, or JSON lines."""

    def __init__(self, path: Path) -> None:
        suffix = path.suffix.lower()
        if suffix not in WRITE_FORMATS:
            raise InputError(f"Cannot write '{suffix}' output {path}: use .parquet, .csv or .jsonl.")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.tmp = path.with_name(f".{path.name}.part-{os.getpid()}")
        self.rows = 0
        self._kind = "parquet" if suffix in (".parquet", ".pq") else "jsonl" if suffix != ".csv" else "csv"
        self._parquet: Any = None
        self._schema: Any = None

    def write(self, frame: pd.DataFrame) -> None:
        """Append one chunk of output rows (the first chunk fixes the columns and, for Parquet, the types)."""
        if self._kind == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            if self._parquet is None:
                table = pa.Table.from_pandas(frame, preserve_index=False)
                self._schema = table.schema.remove_metadata()
                self._parquet = pq.ParquetWriter(self.tmp, self._schema)
            try:
                table = pa.Table.from_pandas(frame, schema=self._schema, preserve_index=False)
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                raise InputError(f"Rows {frame.index[0]}-{frame.index[-1]} give output columns of other types "
                                 f"than the first rows ({exc}); write CSV instead.") from exc
            self._parquet.write_table(table)
        elif self._kind == "csv":
            frame.to_csv(self.tmp, mode="a", header=self.rows == 0, index=False)
        else:
            with open(self.tmp, "a", encoding="utf-8") as fh:
                frame.to_json(fh, orient="records", lines=True)
                if len(frame):
                    fh.write("\n")
        self.rows += len(frame)

    def _close(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None

    def commit(self) -> None:
        """Finish the file and give it its final name (an empty Parquet file when no rows were written)."""
        self._close()
        if not self.tmp.exists():
            self.tmp.touch()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        """Remove the temporary file; the final name is never touched."""
        try:
            self._close()
        finally:
            self.tmp.unlink(missing_ok=True)


def applies(project: str, input_path: str | None, output_path: str | None, batch_size: int | None = None,
            on_error: OnError = "raise") -> bool:
    """Whether ``mlprojects predict`` streams: an input file and an output file of streamable formats and a
    row-scorable project. Asking for it (``--batch-size``, ``--on-error skip``) where it cannot apply is an
    error that says why, rather than a silent one-shot read."""
    asked = batch_size is not None or on_error != "raise"
    if not asked and not (input_path and output_path):
        return False
    if asked and not (input_path and output_path):
        raise InputError("--batch-size and --on-error stream an --input file to an --output file: give both.")
    spec = registry.get_spec(project)
    if asked:
        predict.require_row_scorable(spec)
        return True
    return (predict.row_scorable(spec) and Path(str(input_path)).suffix.lower() in READ_FORMATS
            and Path(str(output_path)).suffix.lower() in WRITE_FORMATS)


def rejects_path_for(output: Path) -> Path:
    """Where ``--on-error skip`` writes refused rows by default: ``<output stem>.rejects.csv`` beside it."""
    return output.with_name(f"{output.stem}.rejects.csv")


def score_chunk(model: Any, spec: Any, chunk: pd.DataFrame) -> pd.DataFrame:
    """One chunk's output rows: its id columns, then the predictions (``predict.predict_frame``)."""
    X = chunk_input(spec.input_kind, chunk)
    out = predict.predict_frame(model, X, spec.target)
    out.index = chunk.index
    ids = predict.id_columns(chunk.columns)
    for col in reversed(ids):
        out.insert(0, col, chunk[col].to_numpy())
    return out


def chunk_input(input_kind: str, chunk: pd.DataFrame) -> Any:
    """What the pipeline takes for a chunk, keeping the chunk's index so errors name the file's rows.

    Texts go as a one-column ``text`` DataFrame (the text contracts accept it and keep its index) rather than
    a list, which would number rows from 0 in every chunk.
    """
    if input_kind == "text":
        if "text" not in chunk.columns:
            raise InputError(f"Text input needs a 'text' column; found {list(chunk.columns)[:10]}.")
        return chunk[["text"]]
    return predict.model_input(input_kind, chunk, None)


def _bisect(model: Any, spec: Any, chunk: pd.DataFrame) -> tuple[list[pd.DataFrame], list[dict[str, Any]]]:
    """Score what can be scored in a chunk that failed; the rows that fail alone are rejected with the reason.

    Halving keeps the cost to about ``2 * bad * log2(len(chunk))`` extra pipeline calls.
    """
    try:
        return [score_chunk(model, spec, chunk)], []
    except InputError as exc:
        if len(chunk) == 1:
            reason = str(exc)
            found = _COLUMN.search(reason)
            return [], [{"row": int(chunk.index[0]), "column": found.group(1) if found else "", "reason": reason}]
    half = len(chunk) // 2
    left_ok, left_bad = _bisect(model, spec, chunk.iloc[:half])
    right_ok, right_bad = _bisect(model, spec, chunk.iloc[half:])
    return left_ok + right_ok, left_bad + right_bad


class _RowsPerSecond(ProgressColumn):
    """A rich progress column: the task's speed in rows per second."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} rows/s", style="progress.data.speed")


def _progress(enabled: bool) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(),
                    TextColumn("{task.completed:,.0f}/{task.fields[total_text]} rows"), _RowsPerSecond(),
                    TimeElapsedColumn(), console=console, disable=not enabled, transient=False)


def score_file(project: str, input_path: str | Path, output_path: str | Path, batch_size: int = DEFAULT_BATCH_SIZE,
               on_error: OnError = "raise", rejects_path: str | Path | None = None, version: str | None = None,
               alias: str | None = None, run_id: str | None = None, progress: bool = True,
               model: Any = None) -> StreamResult:
    """Score a file of raw rows chunk by chunk with a registered pipeline (the champion by default).

    Args:
        project: a project whose champion predicts row by row (``predict.require_row_scorable``).
        input_path: Parquet, CSV or JSON lines file of raw rows.
        output_path: Parquet, CSV or JSON lines file: the id columns of the input, then the predictions, in
            the input's order.
        batch_size: rows per chunk (peak memory grows with it, not with the file).
        on_error: ``raise``: the first refused row stops the run with an error naming its row (its position
            in the file, from 0) and column, and no output is left. ``skip``: refused rows are written to
            ``rejects_path`` (row, column, reason) and the others are scored.
        rejects_path: where skipped rows are described (default ``<output stem>.rejects.csv``).
        version, alias, run_id: which model (the champion by default).
        progress: show a progress bar (rows and rows/s) on stderr.
        model: an already loaded pipeline (skips loading; for benchmarks and tests).

    Raises:
        InputError: an unreadable or empty input, or (with ``on_error="raise"``) a row the contract refuses.
    """
    if batch_size < 1:
        raise InputError(f"--batch-size must be at least 1; got {batch_size}.")
    spec = registry.get_spec(project)
    predict.require_row_scorable(spec)
    src, dst = Path(input_path), Path(output_path)
    if src.resolve() == dst.resolve():
        raise InputError(f"--output {dst} is the input file: write predictions to another file.")
    texts = spec.input_kind == "text"
    chunks = iter_chunks(src, batch_size, texts=texts, strings=string_columns(project))
    first = next(chunks, None)  # empty or header-only input fails here, before loading the model
    if first is None:
        raise InputError(f"Input file {src} has no rows (only a header or a schema): nothing to predict.")
    writer = AtomicWriter(dst)  # an unsupported output format fails here, before loading the model too
    if model is None:
        model = tracking.load_model(spec.name, alias=alias, version=version, run_id=run_id,
                                    make_target=spec.make_target)
    rejects: list[dict[str, Any]] = []
    total = count_rows(src)
    start = time.perf_counter()
    rows = 0
    try:
        with _progress(progress and console.is_terminal) as bar:
            task = bar.add_task(f"{project}: scoring {src.name}", total=total,
                                total_text=f"{total:,}" if total is not None else "?")
            for n, chunk in enumerate(_prepend(first, chunks)):
                try:
                    out = score_chunk(model, spec, chunk)
                except InputError as exc:
                    if on_error != "skip":
                        raise InputError(f"{src}, batch {n + 1} (rows {chunk.index[0]}-{chunk.index[-1]}): {exc} "
                                         "(the index is the row's position in the file, counting data rows from "
                                         "0; --on-error skip scores the other rows and lists refused ones)") from exc
                    parts, bad = _bisect(model, spec, chunk)
                    rejects.extend(bad)
                    out = pd.concat(parts) if parts else None
                if out is not None and len(out):
                    writer.write(out)
                rows += len(chunk)
                bar.update(task, advance=len(chunk))
        if writer.rows == 0:
            raise InputError(f"Every one of the {rows} rows of {src} was refused; see {_write_rejects(rejects, dst, rejects_path)}.")
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    seconds = time.perf_counter() - start
    written = _write_rejects(rejects, dst, rejects_path) if on_error == "skip" else None
    log.debug("%s: %d rows in %.1fs", project, rows, seconds)
    return StreamResult(rows=rows, scored=writer.rows, rejected=len(rejects), output=dst, rejects=written,
                        seconds=seconds)


def _prepend(first: pd.DataFrame, rest: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    yield first
    yield from rest


def _write_rejects(rejects: list[dict[str, Any]], output: Path, rejects_path: str | Path | None) -> Path:
    """Write the refused rows (an empty file with the header when none were) under a temporary name first."""
    path = Path(rejects_path) if rejects_path else rejects_path_for(output)
    frame = pd.DataFrame(rejects, columns=["row", "column", "reason"])
    frame["row"] = np.asarray(frame["row"], dtype=np.int64)
    tmp = path.with_name(f".{path.name}.part-{os.getpid()}")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        frame.to_csv(tmp, index=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
