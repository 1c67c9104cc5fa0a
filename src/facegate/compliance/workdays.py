"""PRC working days for the CAC filing deadline (CAC-FR-15a/c: 30 working days).

Working days follow the State Council's yearly holiday schedule: weekends and official public
holidays are off, and the make-up working days (调休, often a Saturday or Sunday next to Golden
Week or Spring Festival) are on. The schedule comes from the maintained ``chinesecalendar``
package (import name ``chinese_calendar``).

Update path: the State Council publishes next year's schedule around November; a new
``chinesecalendar`` release follows within days. Upgrade it with
``pip install -U chinesecalendar`` (and raise the floor in pyproject.toml). Until the package
knows a year, every computation touching that year raises ``HolidayDataMissing`` instead of
guessing: a deadline computed from weekends alone could be days late.
"""

from __future__ import annotations

from datetime import date, timedelta

import chinese_calendar

from facegate.errors import HolidayDataMissing

FILING_WORKING_DAYS = 30


def is_prc_workday(day: date) -> bool:
    """True on a PRC working day (make-up days included); refuses years without data."""
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError as exc:
        raise HolidayDataMissing(
            f"The installed PRC holiday calendar (chinesecalendar "
            f"{getattr(chinese_calendar, '__version__', '?')}) has no data for {day.year}, so "
            f"working days cannot be counted. Run `pip install -U chinesecalendar` once the "
            f"State Council has published the {day.year} schedule.",
            year=day.year,
        ) from exc


def add_working_days(start: date, n: int) -> date:
    """The n-th PRC working day after ``start`` (``start`` itself is not counted)."""
    if n < 1:
        raise ValueError("n must be at least 1")
    day = start
    counted = 0
    while counted < n:
        day += timedelta(days=1)
        if is_prc_workday(day):
            counted += 1
    return day


def filing_deadline(reached_on: date) -> date:
    """Last day to file after the stored count reached 100,000 on ``reached_on``."""
    return add_working_days(reached_on, FILING_WORKING_DAYS)
