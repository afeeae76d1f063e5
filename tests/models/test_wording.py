"""Reasons read as sentences (issue 12 item 16): plurals, no "0.0x the usual gap", no "0% of orders", big numbers."""

from __future__ import annotations

import pytest

from custscore.models.drift import reference_profile
from custscore.models.feature_words import describe


@pytest.mark.parametrize(("name", "value", "text"), [
    ("orders_365d", 1.0, "1 order in the last year"),
    ("orders_365d", 2.0, "2 orders in the last year"),
    ("orders_90d", 0.0, "0 orders in the last 90 days"),
    ("orders_total", 1.0, "1 order in all"),
    ("support_tickets", 1.0, "1 support ticket"),
    ("category_count", 1.0, "bought from 1 category"),
    ("tenure_days", 10927.0, "customer for 10,927 days"),
    ("recency_days", 1.0, "last purchase 1 day ago"),
    ("recency_days", None, "no purchase yet"),
    ("overdue_ratio", 0.02, "last order well within the usual gap"),
    ("overdue_ratio", 2.5, "2.5x the usual gap since last order"),
    ("share_grocery", 0.0, "no orders in grocery"),
    ("share_grocery", 0.25, "25% of orders in grocery"),
])
def test_reasons_read_as_sentences(name, value, text):
    assert describe(name, value) == text


def test_drift_buckets_use_thousands_separators_not_exponents():
    import pandas as pd

    from custscore.models.drift import psi_row

    frame = pd.DataFrame({"income": [float(v) for v in range(20_000, 60_000, 100)]})
    profile = reference_profile(frame)["features"]["income"]
    row = psi_row("feature", "income", profile, frame["income"].head(50))
    assert "e+0" not in row["bucket"] and "," in row["bucket"]


@pytest.mark.parametrize(("currency", "text"), [("", "spends 91 a month"), ("$", "spends $91 a month"),
                                                ("EUR", "spends 91 EUR a month")])
def test_money_carries_the_currency_setting(currency, text):
    assert describe("spend_per_month", 91.3, currency) == text


def test_the_currency_is_a_setting(tmp_path):
    from custscore.config import Settings
    from custscore.errors import ConfigError

    assert Settings.build(home=tmp_path, environ={}).currency == ""
    assert Settings.build(home=tmp_path, environ={"CUSTSCORE_CURRENCY": " € "}).currency == "€"
    assert describe("spend_mean", 12.5, "€") == "average order €12.50"
    with pytest.raises(ConfigError, match="currency 'dollars and cents' is too long"):
        Settings.build(home=tmp_path, environ={"CUSTSCORE_CURRENCY": "dollars and cents"})
