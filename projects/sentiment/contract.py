"""sentiment's raw-input contract (checked by ``ValidateInput``, the pipeline's first step; see common/contract.py).

The input is texts: a list/Series/array of strings, one string, or a DataFrame with a ``text`` column
(what ``mlflow models serve`` passes). Per text:

* a string (or UTF-8 bytes) is accepted; an empty string is a text like any other and predicts;
* None, NaN or a number is an ``InputError`` naming the row and the value: a missing message cannot be
  classified, and a number is a broken client (before this contract both were silently turned into text);
* a text longer than ``MAX_TEXT_CHARS`` characters is an ``InputError`` naming the row (texts up to that
  size are accepted, and the pipeline's ``TextInput`` step still cuts them to its ``max_chars``);
* no texts at all (``[]``, an empty file) is an ``InputError``: "no rows to predict".

All-missing rows: a row is one text, so a missing text is the all-missing row, and it is refused.
"""

from __future__ import annotations

from common.contract import ColumnRule, InputContract
from common.text import TEXT_COLUMN, text_frame

# A bound on one request's cost: 100k characters is ~50 pages, far beyond any SMS, e-mail or tweet seen.
MAX_TEXT_CHARS = 100_000

CONTRACT = InputContract(
    project="sentiment",
    columns={TEXT_COLUMN: ColumnRule("text", required=True, allow_missing=False, max_chars=MAX_TEXT_CHARS)},
    what="texts (a list of strings, or a DataFrame with a 'text' column)",
    all_missing="error",
    as_frame=text_frame,
)
