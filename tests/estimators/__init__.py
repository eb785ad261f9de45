"""Every custom estimator of the collection, with the scikit-learn checks it is known to fail and why.

One module per project (``tests/estimators/<project>.py``) defines ``CASES``: a list of
``(estimator instance, {check name: reason})``. ``tests/test_estimator_checks.py`` runs scikit-learn's
``parametrize_with_checks`` over all of them, with the declared failures as strict expected failures, so a
check that starts passing (or a new failure) shows up instead of being skipped silently.
"""
