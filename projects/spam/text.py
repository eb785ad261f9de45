"""Compatibility shim so that models pickled before the move to ``common.text`` still load; import ``common.text``."""

from common.text import MAX_CHARS, TEXT_COLUMN, TextInput, as_texts, signature_example

__all__ = ["MAX_CHARS", "TEXT_COLUMN", "TextInput", "as_texts", "signature_example"]
