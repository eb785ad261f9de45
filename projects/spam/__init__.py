"""Spam filter: SMS (UCI SMS Spam Collection) or Enron emails, ham/spam from raw text, deduplicated first."""
