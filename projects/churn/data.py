"""Loading the two churn datasets. Pure: parse, check and define the target; nothing is learned here.

* ``telco`` (default): IBM's Telco Customer Churn sample, 7,043 customers.
* ``kaggle``: the Kaggle "Customer Churn Dataset" (M. S. Azeem). Its training file (~440k rows) is not in
  the mirror; the loader uses whichever of the two files exist and says what it did in ``Dataset.notes``.

Checksums are of the *content* with a UTF-8 byte-order mark and CRLF line endings normalised away: the
same table circulates with both line endings (the mirror's Telco copy has CRLF, Kaggle's testing file was
published with a BOM and CRLF), and a checksum that rejected a byte-different copy of identical rows would
only stop a user for nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import pandas as pd

from common.datasets import DataFile, Dataset, FileInfo, Source, check_columns, read_csv, resolve
from common.errors import DataError
from projects.churn.features import KAGGLE_COLUMNS, KAGGLE_NUMERIC, TELCO_COLUMNS

DATASETS = ("telco", "kaggle")


@dataclass(frozen=True)
class Pinned:
    """A data file plus the sha256 of its normalised content (no BOM, LF line endings)."""

    file: DataFile
    content_sha256: str | None


TELCO = Pinned(
    DataFile(
        path="churn/WA_Fn-UseC_-Telco-Customer-Churn.csv",
        # sha256 of the mirror's bytes (CRLF) is 88be4b93fbe0cc83421af1c503794c97c342eca914c1576db7c276e61d61358a;
        # the content check below accepts the same rows with LF endings as well.
        sources=(Source("https://raw.githubusercontent.com/IBM/telco-customer-churn-on-icp4d/master/data/"
                        "Telco-Customer-Churn.csv"),),
        kaggle="dataset:blastchar/telco-customer-churn",
        homepage="https://www.kaggle.com/datasets/blastchar/telco-customer-churn (IBM sample data)",
    ),
    content_sha256="16320c9c1ec72448db59aa0a26a0b95401046bef5d02fd3aeb906448e3055e91",
)
_AZEEM = "dataset:muhammadshahidazeem/customer-churn-dataset"
_AZEEM_HOME = "https://www.kaggle.com/datasets/muhammadshahidazeem/customer-churn-dataset"
KAGGLE_TRAIN = Pinned(
    DataFile(path="churn/customer_churn_dataset-training-master.csv", kaggle=_AZEEM, homepage=_AZEEM_HOME),
    content_sha256=None,  # no complete copy could be verified (see ../shared/data/MANIFEST.md)
)
KAGGLE_TEST = Pinned(
    DataFile(path="churn/customer_churn_dataset-testing-master.csv", kaggle=_AZEEM, homepage=_AZEEM_HOME),
    content_sha256="71f5e24c6189d14160169a4ee4ea41d0bf2cfacb783fb8f2e84accc3443e32a9",
)


def content_sha256(path: str | Path) -> str:
    """sha256 of a text file's bytes after dropping a UTF-8 BOM and turning CRLF into LF."""
    data = Path(path).read_bytes()
    return hashlib.sha256(data.removeprefix(b"\xef\xbb\xbf").replace(b"\r\n", b"\n")).hexdigest()


def fetch(pinned: Pinned, data_dir: str | Path | None = None) -> FileInfo:
    """Resolve a file (explicit dir, mirror, cache, download, Kaggle) and verify its normalised content.

    Raises:
        DataError: when the file cannot be found, or its content is not the pinned one.
    """
    info = resolve(replace(pinned.file, sha256=None), data_dir)
    digest = content_sha256(info.path)
    if pinned.content_sha256 and digest != pinned.content_sha256:
        raise DataError(
            f"{info.path} ({info.origin}) is not the expected {pinned.file.name}: its content sha256 (BOM and "
            f"CRLF ignored) is {digest}, expected {pinned.content_sha256}. Delete it and get the original "
            f"from {pinned.file.homepage}."
        )
    return FileInfo(path=info.path, sha256=digest, origin=info.origin)


def _target(values: pd.Series, where: str) -> pd.Series:
    """Churn as 1 (churned) / 0, from Yes/No strings or 0/1 numbers."""
    if pd.api.types.is_numeric_dtype(values):
        bad = ~values.isin([0, 1])
        mapped = values
    else:
        text = values.astype("string").str.strip()
        mapped = text.map({"Yes": 1, "No": 0, "1": 1, "0": 0, "1.0": 1, "0.0": 0})
        bad = mapped.isna()
    if bad.any():
        examples = values[bad].astype(str).unique()[:5].tolist()
        raise DataError(f"{where}: Churn must be Yes/No or 1/0; found {examples} in {int(bad.sum())} row(s).")
    return mapped.astype(int).rename("Churn")


def load_telco(data_dir: str | Path | None = None) -> Dataset:
    """IBM Telco: 19 raw customer columns (``gender`` dropped, see features.py) and Churn as 1/0."""
    info = fetch(TELCO, data_dir)
    frame = read_csv(info.path, encoding="utf-8-sig")
    check_columns(frame, info.path, required=["customerID", *TELCO_COLUMNS, "Churn"],
                  numeric=["SeniorCitizen", "tenure", "MonthlyCharges"])
    notes = []
    dup = int(frame["customerID"].duplicated().sum())
    if dup:
        frame = frame.drop_duplicates("customerID")
        notes.append(f"dropped {dup} repeated customerID row(s)")
    # TotalCharges is text because 11 brand-new customers (tenure 0) have a blank: parse it as a number.
    total = pd.to_numeric(frame["TotalCharges"], errors="coerce")
    blank = int(total.isna().sum())
    if blank:
        zero_tenure = int((total.isna() & (frame["tenure"] == 0)).sum())
        notes.append(f"TotalCharges blank for {blank} customer(s) ({zero_tenure} with tenure 0) read as NaN; "
                     "the pipeline sets it to tenure x MonthlyCharges (0 for new customers)")
    frame["TotalCharges"] = total
    y = _target(frame["Churn"], info.path)
    X = frame[TELCO_COLUMNS].reset_index(drop=True)
    notes.append(f"telco: {len(X)} customers, churn rate {y.mean():.1%}")
    return Dataset(X=X, y=y.reset_index(drop=True), files=[info], name="telco", notes=notes)


def _read_kaggle(info: FileInfo) -> tuple[pd.DataFrame, pd.Series, list[str]]:
    frame = read_csv(info.path, encoding="utf-8-sig")
    frame.columns = [str(c).strip() for c in frame.columns]
    check_columns(frame, info.path, required=["CustomerID", *KAGGLE_COLUMNS, "Churn"], numeric=KAGGLE_NUMERIC)
    notes = []
    unlabelled = frame["Churn"].isna()
    if unlabelled.any():
        # The published training file ends with one completely empty row.
        notes.append(f"{Path(info.path).name}: dropped {int(unlabelled.sum())} row(s) without a Churn label")
        frame = frame[~unlabelled]
    y = _target(frame["Churn"], info.path).reset_index(drop=True)
    return frame[KAGGLE_COLUMNS].reset_index(drop=True), y, notes


def load_kaggle(data_dir: str | Path | None = None) -> Dataset:
    """Kaggle Customer Churn Dataset: train on the training file and test on the testing file when both
    exist; otherwise a stratified split of whichever file exists (done by the evaluation, not here)."""
    found: dict[str, FileInfo] = {}
    errors: dict[str, str] = {}
    for key, pinned in (("training", KAGGLE_TRAIN), ("testing", KAGGLE_TEST)):
        try:
            found[key] = fetch(pinned, data_dir)
        except DataError as exc:
            errors[key] = str(exc)
    if not found:
        raise DataError(
            "Neither file of the Kaggle Customer Churn Dataset is available. "
            + " | ".join(f"{k}: {v}" for k, v in errors.items())
        )
    parts = {key: _read_kaggle(info) for key, info in found.items()}
    notes = [n for _, _, extra in parts.values() for n in extra]
    if len(parts) == 2:
        X, y, _ = parts["training"]
        X_test, y_test, _ = parts["testing"]
        shift = y_test.mean() - y.mean()
        notes.append(
            f"kaggle: training on the training file ({len(X)} rows, churn rate {y.mean():.1%}) and reporting on "
            f"the testing file ({len(X_test)} rows, churn rate {y_test.mean():.1%}): a {shift:+.1%} shift in "
            "the churn rate, reported beside the test metrics"
        )
        return Dataset(X=X, y=y, X_test=X_test, y_test=y_test, files=[found["training"], found["testing"]],
                       name="kaggle", notes=notes)
    (key, info), = found.items()
    other = "testing" if key == "training" else "training"
    X, y, _ = parts[key]
    notes.append(
        f"kaggle: only the {key} file is available ({len(X)} rows, churn rate {y.mean():.1%}); the {other} file "
        f"is missing ({errors[other].split('. ')[0]}). Evaluating on a stratified split of this one file, so "
        "the train/test churn-rate shift of the published split cannot be measured"
    )
    return Dataset(X=X, y=y, files=[info], name=f"kaggle-{key}-only", notes=notes)


def load(data_dir: str | Path | None = None, dataset: Literal["telco", "kaggle"] = "telco") -> Dataset:
    """Raw customer columns and Churn (1 = churned) of the chosen dataset.

    Args:
        data_dir: an explicit folder in mirror layout (else the usual resolution order).
        dataset: ``telco`` (IBM Telco Customer Churn) or ``kaggle`` (Customer Churn Dataset).
    """
    if dataset == "telco":
        return load_telco(data_dir)
    if dataset == "kaggle":
        return load_kaggle(data_dir)
    raise DataError(f"Unknown churn dataset {dataset!r}: use one of {', '.join(DATASETS)}.")


__all__ = ["load", "load_telco", "load_kaggle", "content_sha256", "TELCO", "KAGGLE_TRAIN", "KAGGLE_TEST"]
