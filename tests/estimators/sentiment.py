"""sentiment's text steps. Both take texts (scikit-learn tags ``input_tags.string``, no ``two_d_array``), so
scikit-learn checks cloning only; tests/test_sentiment.py runs ``tests.estimators.text.check_text_step``
on tweets for the rest of the contract."""

from projects.sentiment.features import LexiconScores, TweetNormalizer

CASES = [
    (TweetNormalizer(), {}),
    (LexiconScores(), {}),
]
