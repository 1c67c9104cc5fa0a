"""The CAC-FR-15a filing deadline counts PRC working days, make-up days included."""

from __future__ import annotations

from datetime import date

import pytest

from facegate.compliance.workdays import add_working_days, filing_deadline, is_prc_workday
from facegate.errors import HolidayDataMissing


def test_golden_week_2025_and_make_up_days() -> None:
    # State Council schedule for 2025: 1-8 Oct off; Sun 28 Sep and Sat 11 Oct are working days.
    assert is_prc_workday(date(2025, 9, 28))  # make-up Sunday
    assert is_prc_workday(date(2025, 10, 11))  # make-up Saturday
    assert not is_prc_workday(date(2025, 10, 1))
    assert not is_prc_workday(date(2025, 10, 8))
    assert not is_prc_workday(date(2025, 10, 12))  # an ordinary Sunday
    # From Fri 26 Sep: 28, 29, 30 Sep (3); 9, 10, 11 Oct (6); 13 Oct..7 Nov: 4 weeks (26);
    # 10, 11, 12, 13 Nov (30).
    assert filing_deadline(date(2025, 9, 26)) == date(2025, 11, 13)
    # Reached in the middle of Golden Week: the first working day is Thu 9 Oct.
    assert add_working_days(date(2025, 10, 3), 1) == date(2025, 10, 9)
    assert add_working_days(date(2025, 10, 3), 3) == date(2025, 10, 11)  # counts the Saturday


def test_weekends_alone_would_be_wrong() -> None:
    # Counting Mon-Fri only from 26 Sep 2025 gives 7 Nov: six days early.
    d, n = date(2025, 9, 26), 0
    from datetime import timedelta

    while n < 30:
        d += timedelta(days=1)
        n += d.weekday() < 5
    assert d == date(2025, 11, 7) != filing_deadline(date(2025, 9, 26))


def test_golden_week_2026() -> None:
    # 2026: 1-7 Oct off; Sun 20 Sep and Sat 10 Oct are working days (package data).
    assert is_prc_workday(date(2026, 9, 20)) and is_prc_workday(date(2026, 10, 10))
    assert not is_prc_workday(date(2026, 10, 7))
    assert add_working_days(date(2026, 9, 30), 1) == date(2026, 10, 8)


def test_year_without_data_is_refused_not_guessed() -> None:
    with pytest.raises(HolidayDataMissing) as err:
        is_prc_workday(date(2027, 1, 4))
    assert "2027" in err.value.message and "pip install -U chinesecalendar" in err.value.message
    # A deadline that would run into 2027 is refused too.
    with pytest.raises(HolidayDataMissing):
        filing_deadline(date(2026, 12, 1))
