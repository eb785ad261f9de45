"""Compatibility shim so that models pickled before the move to ``common.text`` still load; import ``common.text``."""

from common.text import CharWbCounts, word_ngrams

__all__ = ["CharWbCounts", "word_ngrams"]
