"""The shared input-validation step (common/contract.py) for scikit-learn's checks (see tests/estimators/__init__.py).

``ValidateInput`` is checked with churn's contract, the way the churn pipeline uses it. Its input is a raw
table read by column name, not a numeric 2-D array, so its tags say so (``two_d_array=False``, as the text
steps declare) and scikit-learn runs only the checks that apply to such a step; ``tests/test_input_contracts.py``
checks the rest on raw rows.
"""

from __future__ import annotations

from common.contract import ValidateInput
from projects.churn.contract import CONTRACT

CASES = [(ValidateInput(CONTRACT), {})]
