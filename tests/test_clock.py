"""The one as-of clock: parsing dates and ages, fixed and fake clocks, flag over environment over wall clock."""

from __future__ import annotations

import datetime as dt

import pytest

from custscore.clock import FakeClock, FixedClock, WallClock, clock_for, now, parse_age, parse_date
from custscore.config import Settings
from custscore.errors import ConfigError


def test_parse_date_reads_dates_times_and_offsets_as_naive_utc():
    assert parse_date("2025-06-30") == dt.datetime(2025, 6, 30)
    assert parse_date("2025-06-30", end_of_day=True) == dt.datetime(2025, 6, 30, 23, 59, 59, 999000)
    assert parse_date("2025-06-30T14:03", end_of_day=True) == dt.datetime(2025, 6, 30, 14, 3)
    assert parse_date("2025-06-30T14:03:00+02:00") == dt.datetime(2025, 6, 30, 12, 3)
    assert parse_date(None) is None and parse_date("  ") is None
    assert parse_date(dt.date(2025, 1, 2), end_of_day=True).date() == dt.date(2025, 1, 2)


def test_a_bad_date_names_the_option_and_the_format():
    with pytest.raises(ConfigError) as exc:
        parse_date("2025-13-01", "--as-of")
    assert str(exc.value) == "--as-of '2025-13-01' is not a date; use YYYY-MM-DD or YYYY-MM-DDTHH:MM"


def test_clocks():
    fixed = clock_for("2025-06-30")
    assert isinstance(fixed, FixedClock) and fixed.fixed
    assert fixed.now() == dt.datetime(2025, 6, 30, 23, 59, 59, 999000)
    assert fixed.describe() == "as of 2025-06-30"
    assert isinstance(clock_for(None), WallClock) and not clock_for(None).fixed
    assert abs(clock_for(None).now() - now()) < dt.timedelta(seconds=5)
    assert now().tzinfo is None and now().microsecond % 1000 == 0
    fake = FakeClock(dt.datetime(2025, 1, 1))
    assert fake.advance(days=120) == dt.datetime(2025, 5, 1) == fake()
    with pytest.raises(ValueError):
        fake.advance(days=-1)


def test_flag_over_environment_over_wall_clock():
    settings = Settings.build(home="/tmp/x", environ={"CUSTSCORE_AS_OF": "2024-12-31"})
    assert settings.as_of == dt.datetime(2024, 12, 31, 23, 59, 59, 999000)
    assert settings.clock().now() == settings.as_of
    assert settings.clock("2025-01-05").now().date() == dt.date(2025, 1, 5)
    assert not Settings.build(home="/tmp/x", environ={}).clock().fixed
    with pytest.raises(ConfigError, match="^CUSTSCORE_AS_OF 'yesterday' is not a date"):
        Settings.build(home="/tmp/x", environ={"CUSTSCORE_AS_OF": "yesterday"})


@pytest.mark.parametrize(("text", "age"), [("1d", dt.timedelta(days=1)), ("12h", dt.timedelta(hours=12)),
                                           ("30m", dt.timedelta(minutes=30)), ("2", dt.timedelta(days=2)),
                                           ("0", dt.timedelta(0)), (0, dt.timedelta(0))])
def test_parse_age(text, age):
    assert parse_age(text) == age


def test_a_bad_age_says_how_to_write_one():
    with pytest.raises(ConfigError) as exc:
        parse_age("soon")
    assert str(exc.value) == "--max-age 'soon' is not a duration; use e.g. 1d, 12h, 30m or 0 to turn it off"
    with pytest.raises(ConfigError, match="negative"):
        parse_age("-1d")
