"""Tweet sentiment (negative/neutral/positive) from the tweet's text only: never from ``selected_text``."""
