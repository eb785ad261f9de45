"""sentiment's raw-input contract, the one shared by the text projects (``common.contract.text_contract``: texts of
at most ``MAX_TEXT_CHARS`` characters; a missing or non-text value is an ``InputError`` naming the row)."""

from __future__ import annotations

from common.contract import text_contract

CONTRACT = text_contract("sentiment")
