"""The CAC-FR-15a filing deadline counts PRC working days, make-up days included."""

from __future__ import annotations

from datetime import date, timedelta

import chinese_calendar
import pytest

from facegate.compliance import workdays
from facegate.compliance.workdays import (
    add_working_days,
    filing_deadline,
    is_prc_workday,
    statutory_holidays,
)
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
    assert filing_deadline(date(2025, 9, 26)).day == date(2025, 11, 13)
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
    assert d == date(2025, 11, 7) != filing_deadline(date(2025, 9, 26)).day


def test_golden_week_2026() -> None:
    # 2026: 1-7 Oct off; Sun 20 Sep and Sat 10 Oct are working days (package data).
    assert is_prc_workday(date(2026, 9, 20)) and is_prc_workday(date(2026, 10, 10))
    assert not is_prc_workday(date(2026, 10, 7))
    assert add_working_days(date(2026, 9, 30), 1) == date(2026, 10, 8)


def test_year_without_data_is_refused_by_the_strict_count() -> None:
    with pytest.raises(HolidayDataMissing) as err:
        is_prc_workday(date(2027, 1, 4))
    assert "2027" in err.value.message and "pip install -U chinesecalendar" in err.value.message
    with pytest.raises(HolidayDataMissing):
        add_working_days(date(2026, 12, 1), 30)


def test_deadline_into_2027_is_provisional_not_refused() -> None:
    # Before: "30 working days after mid-November 2026" was refused. 16 Nov 2026 stays in 2026
    # (official schedule); 25 Nov runs into 2027, which the installed package does not know.
    assert not filing_deadline(date(2026, 11, 16)).provisional
    dl = filing_deadline(date(2026, 11, 25))
    assert dl.provisional and dl.years == (2027,)
    # 26 Nov .. 31 Dec 2026: 26 working days (official); 2027: 1 Jan is New Year's Day, and
    # Sat 2 / Sun 3 Jan are near it, so they may be make-up days: 2 Jan (27), 3 Jan (28),
    # 4 Jan (29), 5 Jan (30). With every weekend off: 4, 5, 6, 7 Jan.
    assert dl.day == date(2027, 1, 5) and dl.statutory_day == date(2027, 1, 7)
    assert "provisional" in dl.text("en") and "2027" in dl.reason("en")
    assert "暂定" in dl.text("zh-CN")
    # A deadline around Spring Festival 2027 (eve 5 Feb, 1st-3rd 6-8 Feb): statutory days off.
    spring = filing_deadline(date(2027, 1, 4))
    assert spring.provisional and spring.statutory_day is not None
    assert spring.day <= spring.statutory_day


def test_statutory_holidays_2027() -> None:
    h = statutory_holidays(2027)
    assert len(h) == 13  # 1 + 4 + 1 + 2 + 1 + 1 + 3 days, as the 2024 amendment fixes
    assert [d for d, name in h.items() if name == "Spring Festival"] == [
        date(2027, 2, 5),  # 除夕
        date(2027, 2, 6),  # 正月初一
        date(2027, 2, 7),
        date(2027, 2, 8),
    ]
    assert h[date(2027, 4, 5)] == "Qingming"
    assert h[date(2027, 6, 9)] == "Dragon Boat Festival"  # 五月初五
    assert h[date(2027, 9, 15)] == "Mid-Autumn Festival"  # 八月十五
    assert {date(2027, 5, 1), date(2027, 5, 2), date(2027, 10, 3)} <= set(h)


@pytest.mark.parametrize("year", [2025, 2026])
def test_statutory_holidays_match_the_official_schedule(year: int) -> None:
    # The lunar conversion and the statute, checked against the State Council schedules of the
    # years the package knows: every statutory day is an official holiday of that festival.
    for day, name in statutory_holidays(year).items():
        on_holiday, holiday = chinese_calendar.get_holiday_detail(day)
        assert on_holiday and holiday is not None, day
        official_name = {
            "Tomb-sweeping Day": "Qingming",
            "Mid-autumn Festival": "Mid-Autumn Festival",
        }
        assert official_name.get(holiday, holiday) == name, (day, holiday, name)
    official = {
        d
        for d in chinese_calendar.get_holidays(date(year, 1, 1), date(year, 12, 31), False)
        if d.weekday() < 5
    }
    # The official weekdays off are the statutory days plus the announced bridging days.
    assert set(statutory_holidays(year)) - official <= {
        d for d in statutory_holidays(year) if d.weekday() >= 5
    }


def test_provisional_is_never_later_than_official_2025_2026(monkeypatch) -> None:
    """Pretend 2025-2026 had no schedule: the provisional deadline of every start date is
    never after the official one (a deadline computed this way is never missed)."""
    strict = {}
    start = date(2024, 12, 31)
    for i in range(0, 640):
        d = start + timedelta(days=i)
        strict[d] = add_working_days(d, 30)
    workdays.has_official_schedule.cache_clear()
    monkeypatch.setattr(workdays, "has_official_schedule", lambda year: year < 2025)
    late = [d for d, official in strict.items() if filing_deadline(d).day > official]
    assert late == []
    # With every weekend off (no make-up day assumed) some would have been late.
    late_statutory = [
        d for d, official in strict.items() if filing_deadline(d).statutory_day > official
    ]
    assert late_statutory


def test_recomputed_once_the_schedule_is_installed(monkeypatch) -> None:
    assert filing_deadline(date(2026, 12, 20)).provisional
    real = chinese_calendar.is_workday

    def knows_2027(day: date) -> bool:  # a stand-in for the next chinesecalendar release
        if day.year == 2027:
            return day.weekday() < 5 and day not in statutory_holidays(2027)
        return real(day)

    monkeypatch.setattr(chinese_calendar, "is_workday", knows_2027)
    workdays.has_official_schedule.cache_clear()
    try:
        dl = filing_deadline(date(2026, 12, 20))
        assert not dl.provisional and dl.day == date(2027, 2, 1) and dl.text() == "2027-02-01"
    finally:
        monkeypatch.undo()
        workdays.has_official_schedule.cache_clear()
