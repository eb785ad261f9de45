"""Finding data files: explicit path, local mirror, cache, then a checksum-verified download.

A file is declared once (``DataFile``) with its place in the mirror layout (``house-prices/train.csv``), the
sha256 of its content and where to get it. ``resolve`` returns a verified local path or raises a
``DataError`` that says exactly how to obtain the file.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import logging
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from common.errors import DataError, DownloadError

log = logging.getLogger(__name__)

DATA_DIR_ENV = "MLPROJECTS_DATA_DIR"
CACHE_DIR_ENV = "MLPROJECTS_CACHE_DIR"
OFFLINE_ENV = "MLPROJECTS_OFFLINE"  # set to 1 to never download (tests, air-gapped machines)
_CHUNK = 1 << 16


@dataclass(frozen=True)
class Source:
    """One place a file can be downloaded from.

    Attributes:
        url: where to GET it.
        member: for a zip archive, the member to extract (the archive itself is not kept).
        gunzip: the download is gzip-compressed but the file is stored uncompressed.
    """

    url: str
    member: str | None = None
    gunzip: bool = False


@dataclass(frozen=True)
class DataFile:
    """A file a project needs, in the layout of the local mirror and the cache.

    Attributes:
        path: relative path, e.g. ``house-prices/train.csv``.
        sha256: sha256 of the file's content (after gzip decompression for ``.gz`` files), or None.
        sources: downloads tried in order.
        kaggle: ``competition:<slug>`` or ``dataset:<owner/slug>`` when the file lives on Kaggle.
        homepage: where a person can read about and get the data.
    """

    path: str
    sha256: str | None = None
    sources: tuple[Source, ...] = ()
    kaggle: str | None = None
    homepage: str = ""

    @property
    def name(self) -> str:
        return Path(self.path).name


@dataclass(frozen=True)
class FileInfo:
    """Provenance of a file that was read: logged to MLflow with every run."""

    path: str
    sha256: str
    origin: str  # explicit | mirror | cache | download | generated


@dataclass
class Dataset:
    """Raw inputs and targets as a loader returns them. Nothing in here has been learned from data.

    Attributes:
        X, y: the labelled development rows (raw columns or raw strings or raw arrays).
        X_test, y_test: a labelled test set that ships with the data, when there is one.
        X_predict: unlabelled rows to predict (for example Kaggle's test.csv), when there are some.
        predict_ids: identifiers of ``X_predict`` rows, for a submission file.
        files: provenance of every file read.
        name: the dataset variant (``sms``, ``enron``, ``telco``...).
        notes: things the loader did that a user should know (deduplication, fallbacks).
        extras: project-specific material (ratings for the recommender...).
    """

    X: Any
    y: Any = None
    X_test: Any = None
    y_test: Any = None
    X_predict: Any = None
    predict_ids: Any = None
    files: list[FileInfo] = field(default_factory=list)
    name: str = "default"
    notes: list[str] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        """A fingerprint of exactly which data was used (files, variant and any sampling note)."""
        h = hashlib.sha256(self.name.encode())
        for f in sorted(self.files, key=lambda f: f.path):
            h.update(f"{f.path}:{f.sha256}".encode())
        for note in self.notes:
            if note.startswith("sample:"):
                h.update(note.encode())
        return h.hexdigest()

    @property
    def rows(self) -> int:
        return _len(self.X)

    @property
    def test_rows(self) -> int:
        return 0 if self.X_test is None else _len(self.X_test)


def _len(x: Any) -> int:
    return int(x.shape[0]) if hasattr(x, "shape") else len(x)


# --------------------------------------------------------------------------------------------------- dirs
def repo_root() -> Path:
    """The checkout root when running from a source tree, else the current directory."""
    here = Path(__file__).resolve().parents[1]
    return here if (here / "pyproject.toml").exists() else Path.cwd()


def mirror_dir() -> Path | None:
    """The local mirror named by ``MLPROJECTS_DATA_DIR`` (laid out like ``../shared/data``), if any."""
    value = os.environ.get(DATA_DIR_ENV)
    return Path(value).expanduser().resolve() if value else None


def cache_dir() -> Path:
    """Where downloads are kept: ``MLPROJECTS_CACHE_DIR`` or ``data/raw`` in the checkout."""
    value = os.environ.get(CACHE_DIR_ENV)
    return Path(value).expanduser().resolve() if value else repo_root() / "data" / "raw"


# ------------------------------------------------------------------------------------------- checksums
def file_sha256(path: Path, gz: bool | None = None) -> str:
    """sha256 of a file's content; gzip files (``.gz``, or ``gz=True``) are hashed after decompression."""
    h = hashlib.sha256()
    opener = gzip.open if (path.suffix == ".gz" if gz is None else gz) else open
    try:
        with opener(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                h.update(chunk)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"Cannot read {path}: {exc}. The file is damaged; delete it and fetch it again.") from exc
    return h.hexdigest()


def _verify(spec: DataFile, path: Path, origin: str) -> FileInfo:
    digest = file_sha256(path)
    if spec.sha256 and digest != spec.sha256:
        raise DataError(
            f"Checksum mismatch for {spec.path} at {path} ({origin}): expected sha256 {spec.sha256}, "
            f"got {digest}. The file is corrupt or a different version; replace it with the original "
            f"({_how_to_get(spec)})."
        )
    return FileInfo(path=str(path), sha256=digest, origin=origin)


# ------------------------------------------------------------------------------------------- resolving
def resolve(spec: DataFile, explicit: str | os.PathLike[str] | None = None, download: bool = True) -> FileInfo:
    """Find ``spec`` locally or download it, and verify its checksum.

    Order: ``explicit`` (a file, or a directory in mirror layout), ``$MLPROJECTS_DATA_DIR``, the cache, then
    each download source, then Kaggle's client when it is configured.

    Raises:
        DataError: when the file cannot be found or fetched, with instructions to get it.
    """
    if explicit is not None:
        base = Path(explicit).expanduser()
        candidates = [base] if base.is_file() else [base / spec.path, base / spec.name]
        for cand in candidates:
            if cand.is_file():
                return _verify(spec, cand, "explicit")
        raise DataError(f"{spec.path} was not found at {base}. {_how_to_get(spec)}")
    mirror = mirror_dir()
    if mirror is not None and (mirror / spec.path).is_file():
        return _verify(spec, mirror / spec.path, "mirror")
    cached = cache_dir() / spec.path
    if cached.is_file():
        return _verify(spec, cached, "cache")
    errors: list[str] = []
    if os.environ.get(OFFLINE_ENV, "") not in ("", "0"):
        download = False
        errors.append(f"downloads are disabled ({OFFLINE_ENV} is set)")
    if download:
        for source in spec.sources:
            try:
                fetch(source, cached, sha256=spec.sha256)
                return FileInfo(path=str(cached), sha256=spec.sha256 or file_sha256(cached), origin="download")
            except DownloadError as exc:
                errors.append(str(exc))
                log.warning("%s", exc)
        if spec.kaggle and kaggle_configured():
            try:
                _kaggle_download(spec, cached)
                return _verify(spec, cached, "download")
            except Exception as exc:  # the Kaggle client raises many types
                errors.append(f"Kaggle download failed: {exc}")
    where = f" (looked in {mirror / spec.path if mirror else '$' + DATA_DIR_ENV + ' (unset)'} and {cached})"
    tried = (" Download attempts: " + " | ".join(errors)) if errors else ""
    raise DataError(f"{spec.path} is not available{where}.{tried} {_how_to_get(spec)}")


def _how_to_get(spec: DataFile) -> str:
    parts = []
    if spec.sources:
        parts.append(f"It downloads automatically from {spec.sources[0].url} when the network allows")
    if spec.kaggle:
        kind, _, slug = spec.kaggle.partition(":")
        cmd = (
            f"kaggle competitions download -c {slug} -f {spec.name}"
            if kind == "competition"
            else f"kaggle datasets download -d {slug} -f {spec.name}"
        )
        parts.append(
            f"it is on Kaggle: install the 'kaggle' extra and configure ~/.kaggle/kaggle.json, or run `{cmd}` "
            f"yourself"
        )
    parts.append(
        f"or put the file at {cache_dir() / spec.path}, or set {DATA_DIR_ENV} to a mirror holding {spec.path}"
    )
    if spec.homepage:
        parts.append(f"(about the data: {spec.homepage})")
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."


def kaggle_configured() -> bool:
    """True when Kaggle's official client is installed and has credentials."""
    has_creds = bool(os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY")) or (
        Path(os.environ.get("KAGGLE_CONFIG_DIR", Path.home() / ".kaggle")) / "kaggle.json"
    ).is_file()
    if not has_creds:
        return False
    try:
        import kaggle  # noqa: F401  (import authenticates; only checked when credentials exist)
    except Exception:
        return False
    return True


def _kaggle_download(spec: DataFile, dest: Path) -> None:
    from kaggle.api.kaggle_api_extended import KaggleApi

    api = KaggleApi()
    api.authenticate()
    kind, _, slug = (spec.kaggle or "").partition(":")
    with tempfile.TemporaryDirectory() as tmp:
        if kind == "competition":
            api.competition_download_file(slug, spec.name, path=tmp, quiet=False)
        else:
            api.dataset_download_file(slug, spec.name, path=tmp, quiet=False)
        got = next(Path(tmp).iterdir())
        if got.suffix == ".zip":
            with zipfile.ZipFile(got) as zf:
                zf.extract(zf.namelist()[0], tmp)
                got = Path(tmp) / zf.namelist()[0]
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(got), dest)


# ------------------------------------------------------------------------------------------- download
def fetch(
    source: Source,
    dest: Path,
    sha256: str | None = None,
    retries: int = 2,
    timeout: float = 30.0,
    backoff: float = 1.0,
) -> Path:
    """Download ``source`` to ``dest`` atomically, verifying length and checksum.

    The bytes go to a temporary file in the destination folder and are moved into place only after every
    check passed, so an interrupted or corrupt transfer never leaves a file in the cache.

    Raises:
        DownloadError: on HTTP/network errors (after ``retries`` retries for server errors), truncated
            transfers, and checksum mismatches.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    attempt = 0
    while True:
        try:
            raw = _download_bytes(source.url, dest, timeout)
            break
        except DownloadError as exc:
            retryable = getattr(exc, "retryable", False)
            if not retryable or attempt >= retries:
                raise
            attempt += 1
            log.info("retrying %s in %.1fs (%s)", source.url, backoff * attempt, exc)
            time.sleep(backoff * attempt)
    try:
        final = _unpack(raw, source, dest)
        digest = file_sha256(final, gz=dest.suffix == ".gz")
        if sha256 and digest != sha256:
            raise DownloadError(
                f"Checksum mismatch downloading {source.url}: expected sha256 {sha256}, got {digest}. "
                "Nothing was cached. The server may be serving a different version of the file."
            )
        os.replace(final, dest)
        return dest
    finally:
        for leftover in (raw, raw.with_suffix(".unpacked")):
            leftover.unlink(missing_ok=True)


def _download_bytes(url: str, dest: Path, timeout: float) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(name)
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "mlprojects"})
        with urllib.request.urlopen(request, timeout=timeout) as resp, os.fdopen(fd, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0) or None
            done = 0
            with _progress(f"downloading {dest.name}", total) as advance:
                while chunk := resp.read(_CHUNK):
                    out.write(chunk)
                    done += len(chunk)
                    advance(len(chunk))
            if total is not None and done != total:
                raise DownloadError(f"Download of {url} was interrupted: got {done} of {total} bytes.")
        return tmp
    except urllib.error.HTTPError as exc:
        tmp.unlink(missing_ok=True)
        err = DownloadError(f"Download of {url} failed: HTTP {exc.code} {exc.reason}.")
        err.retryable = exc.code >= 500 or exc.code == 429  # type: ignore[attr-defined]
        raise err from exc
    except (http.client.IncompleteRead, ConnectionError) as exc:
        tmp.unlink(missing_ok=True)
        err = DownloadError(f"Download of {url} was interrupted: {exc!r}.")
        err.retryable = True  # type: ignore[attr-defined]
        raise err from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        tmp.unlink(missing_ok=True)
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"Download of {url} failed: {reason} (no network?).") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _unpack(raw: Path, source: Source, dest: Path) -> Path:
    if source.member is None and not source.gunzip:
        return raw
    out = raw.with_suffix(".unpacked")
    try:
        if source.member is not None:
            with zipfile.ZipFile(raw) as zf, zf.open(source.member) as member, open(out, "wb") as fh:
                shutil.copyfileobj(member, fh, _CHUNK)
        else:
            with gzip.open(raw, "rb") as gz, open(out, "wb") as fh:
                shutil.copyfileobj(gz, fh, _CHUNK)
    except (zipfile.BadZipFile, KeyError, OSError, EOFError) as exc:
        out.unlink(missing_ok=True)
        raise DownloadError(f"Downloaded archive {source.url} could not be unpacked: {exc}.") from exc
    return out


class _progress:
    """A rich progress bar for downloads when a terminal is attached, silent otherwise."""

    def __init__(self, label: str, total: int | None) -> None:
        self.label, self.total, self._bar = label, total, None

    def __enter__(self):
        from common.console import console

        if console.is_terminal:
            from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

            self._bar = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                console=console,
                transient=True,
            )
            self._bar.__enter__()
            task = self._bar.add_task(self.label, total=self.total)
            return lambda n: self._bar.advance(task, n)
        log.info("%s", self.label)
        return lambda n: None

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)


# -------------------------------------------------------------------------------------------- reading
def read_csv(info: FileInfo | Path | str, **kwargs: Any) -> pd.DataFrame:
    """``pandas.read_csv`` with errors that name the file instead of a parser traceback."""
    path = Path(info.path if isinstance(info, FileInfo) else info)
    try:
        frame = pd.read_csv(path, **kwargs)
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path} is empty. Replace it with the original file.") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{path} could not be parsed as CSV: {exc}") from exc
    if frame.empty:
        raise DataError(f"{path} has a header but no rows. Replace it with the original file.")
    return frame


def check_columns(
    frame: pd.DataFrame,
    where: str,
    required: Iterable[str] = (),
    numeric: Iterable[str] = (),
    text: Iterable[str] = (),
) -> pd.DataFrame:
    """Check a raw frame's schema and say precisely what is wrong.

    Args:
        frame: the frame to check.
        where: a name for the message (file path or "input").
        required: columns that must be present.
        numeric: columns that must be numeric (NaN allowed).
        text: columns that must hold strings (NaN allowed).

    Raises:
        DataError: naming the missing columns or the columns of the wrong type.
    """
    if frame.shape[0] == 0:
        raise DataError(f"{where} has no rows.")
    needed = list(dict.fromkeys([*required, *numeric, *text]))
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DataError(f"{where} is missing required column(s): {', '.join(missing)}.")
    wrong = [c for c in numeric if not pd.api.types.is_numeric_dtype(frame[c])]
    if wrong:
        examples = {c: frame[c].dropna().astype(str).head(2).tolist() for c in wrong}
        raise DataError(f"{where}: column(s) {', '.join(wrong)} should be numeric; found values like {examples}.")
    bad_text = [
        c for c in text if pd.api.types.is_numeric_dtype(frame[c]) and frame[c].notna().any()
    ]
    if bad_text:
        raise DataError(f"{where}: column(s) {', '.join(bad_text)} should hold text but are numeric.")
    return frame


def generated(name: str, content: Mapping[str, Any] | Sequence[Any] | None = None) -> FileInfo:
    """Provenance for data generated in memory (tests, synthetic benchmarks)."""
    digest = hashlib.sha256(repr(content).encode() if content is not None else name.encode()).hexdigest()
    return FileInfo(path=f"generated:{name}", sha256=digest, origin="generated")


def open_text(info: FileInfo, encoding: str = "utf-8") -> io.TextIOBase:
    """Open a resolved file as text, transparently decompressing ``.gz``."""
    path = Path(info.path)
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding=encoding)
    return open(path, encoding=encoding)
