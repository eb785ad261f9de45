"""The data layer: resolution order, checksums, schema checks, and real downloads from a local server."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from common import datasets
from common.datasets import DataFile, Source, check_columns, fetch, read_csv, resolve
from common.errors import DataError, DownloadError

CONTENT = b"a,b\n1,x\n2,y\n"
SHA = hashlib.sha256(CONTENT).hexdigest()


def _zip_bytes(member: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(member, data)
    return buf.getvalue()


class _Handler(http.server.BaseHTTPRequestHandler):
    hits: dict[str, int] = {}

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        _Handler.hits[self.path] = _Handler.hits.get(self.path, 0) + 1
        if self.path == "/ok.csv":
            self._send(CONTENT)
        elif self.path == "/data.zip":
            self._send(_zip_bytes("folder/ok.csv", CONTENT))
        elif self.path == "/data.csv.gz":
            self._send(gzip.compress(CONTENT))
        elif self.path == "/error":
            self.send_error(500, "boom")
        elif self.path == "/missing":
            self.send_error(404, "not here")
        elif self.path == "/truncated":
            self.send_response(200)
            self.send_header("Content-Length", str(len(CONTENT) * 10))
            self.end_headers()
            self.wfile.write(CONTENT)
            self.wfile.flush()
            self.close_connection = True
        else:
            self.send_error(404)

    def _send(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.delenv("MLPROJECTS_OFFLINE", raising=False)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    _Handler.hits = {}
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


# ------------------------------------------------------------------------------------------- downloads
def test_download_success_is_verified_and_cached(server: str, tmp_path: Path) -> None:
    spec = DataFile("demo/ok.csv", sha256=SHA, sources=(Source(f"{server}/ok.csv"),))
    info = resolve(spec)
    assert info.origin == "download"
    cached = datasets.cache_dir() / "demo/ok.csv"
    assert Path(info.path) == cached and cached.read_bytes() == CONTENT
    assert _leftovers(cached.parent) == [cached]  # no temporary file left behind
    # The second call is served from the cache, without a request.
    assert resolve(spec).origin == "cache"
    assert _Handler.hits["/ok.csv"] == 1


def test_download_zip_member_and_gzip(server: str) -> None:
    zipped = DataFile("demo/z.csv", sha256=SHA, sources=(Source(f"{server}/data.zip", member="folder/ok.csv"),))
    assert Path(resolve(zipped).path).read_bytes() == CONTENT
    gz = DataFile("demo/g.csv", sha256=SHA, sources=(Source(f"{server}/data.csv.gz", gunzip=True),))
    assert Path(resolve(gz).path).read_bytes() == CONTENT
    # A .gz file is stored compressed and checked by the sha256 of its decompressed content.
    stored_gz = DataFile("demo/g.csv.gz", sha256=SHA, sources=(Source(f"{server}/data.csv.gz"),))
    assert gzip.decompress(Path(resolve(stored_gz).path).read_bytes()) == CONTENT


def test_checksum_mismatch_caches_nothing(server: str) -> None:
    spec = DataFile("demo/ok.csv", sha256="0" * 64, sources=(Source(f"{server}/ok.csv"),))
    with pytest.raises(DataError, match="Checksum mismatch"):
        resolve(spec)
    assert _leftovers(datasets.cache_dir()) == []


def test_server_error_is_retried_then_reported(server: str, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="HTTP 500"):
        fetch(Source(f"{server}/error"), tmp_path / "x.csv", retries=2, backoff=0.01)
    assert _Handler.hits["/error"] == 3
    assert _leftovers(tmp_path) == []


def test_client_error_is_not_retried(server: str, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch(Source(f"{server}/missing"), tmp_path / "x.csv", retries=2, backoff=0.01)
    assert _Handler.hits["/missing"] == 1


def test_interrupted_transfer_leaves_nothing(server: str, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="interrupted"):
        fetch(Source(f"{server}/truncated"), tmp_path / "x.csv", retries=1, backoff=0.01)
    assert _leftovers(tmp_path) == []


def test_unreachable_source_says_how_to_get_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLPROJECTS_OFFLINE", raising=False)
    spec = DataFile("demo/ok.csv", sha256=SHA, sources=(Source("http://127.0.0.1:9/ok.csv"),),
                    kaggle="competition:some-competition")
    with pytest.raises(DataError) as err:
        resolve(spec)
    text = str(err.value)
    assert "demo/ok.csv is not available" in text
    assert "kaggle competitions download -c some-competition" in text
    assert "MLPROJECTS_DATA_DIR" in text


def test_offline_mode_skips_downloads(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLPROJECTS_OFFLINE", "1")
    with pytest.raises(DataError, match="downloads are disabled"):
        resolve(DataFile("demo/ok.csv", sha256=SHA, sources=(Source(f"{server}/ok.csv"),)))
    assert _Handler.hits == {}


# -------------------------------------------------------------------------------------------- resolving
def test_resolution_order_explicit_then_mirror_then_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = DataFile("demo/ok.csv", sha256=SHA)
    for folder in ("explicit", "mirror", "cache"):
        (tmp_path / folder / "demo").mkdir(parents=True)
        (tmp_path / folder / "demo/ok.csv").write_bytes(CONTENT)
    monkeypatch.setenv("MLPROJECTS_CACHE_DIR", str(tmp_path / "cache"))
    assert resolve(spec).origin == "cache"
    monkeypatch.setenv("MLPROJECTS_DATA_DIR", str(tmp_path / "mirror"))
    assert resolve(spec).origin == "mirror"
    assert resolve(spec, tmp_path / "explicit").origin == "explicit"
    assert resolve(spec, tmp_path / "explicit/demo/ok.csv").origin == "explicit"


def test_corrupt_mirror_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo/ok.csv").write_bytes(CONTENT + b"3,z\n")
    monkeypatch.setenv("MLPROJECTS_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match="Checksum mismatch"):
        resolve(DataFile("demo/ok.csv", sha256=SHA))


def test_damaged_gzip_is_a_data_error(tmp_path: Path) -> None:
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo/x.csv.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="damaged"):
        resolve(DataFile("demo/x.csv.gz", sha256=SHA), tmp_path)


def test_missing_explicit_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="was not found"):
        resolve(DataFile("demo/ok.csv"), tmp_path)


# ------------------------------------------------------------------------------------------------ schema
def test_read_csv_empty_and_header_only(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header.csv").write_text("a,b\n")
    with pytest.raises(DataError, match="is empty"):
        read_csv(tmp_path / "empty.csv")
    with pytest.raises(DataError, match="no rows"):
        read_csv(tmp_path / "header.csv")


def test_check_columns_names_what_is_wrong() -> None:
    frame = pd.DataFrame({"a": ["x", "y"], "b": [1, 2]})
    with pytest.raises(DataError, match="missing required column\\(s\\): c, d"):
        check_columns(frame, "f.csv", required=["a", "c", "d"])
    with pytest.raises(DataError, match="a should be numeric"):
        check_columns(frame, "f.csv", numeric=["a"])
    with pytest.raises(DataError, match="b should hold text"):
        check_columns(frame, "f.csv", text=["b"])
    assert check_columns(frame, "f.csv", required=["a"], numeric=["b"], text=["a"]) is frame
