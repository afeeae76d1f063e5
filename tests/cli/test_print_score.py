"""The one-line score a user reads, for a buyer and for a new customer with or without a first_purchase model."""

from __future__ import annotations

from custscore.cli import common


def _printed(capsys, score):
    common.print_score("C1", score)
    return capsys.readouterr().out.splitlines()[0]


def test_a_buyer_shows_probability_and_band(capsys):
    assert _printed(capsys, {"churn_probability": 0.25, "risk": "low", "reasons": []}) == "C1  churn 25.0% (low risk)"


def test_a_new_customer_without_a_first_purchase_model_is_not_a_traceback(capsys):
    assert _printed(capsys, {"churn_probability": None, "risk": "new", "reasons": []}) == "C1  new: no purchase yet"
    assert _printed(capsys, {"churn_probability": 0.8, "risk": "new", "reasons": []}) == \
        "C1  churn 80.0% (new: no purchase yet)"
