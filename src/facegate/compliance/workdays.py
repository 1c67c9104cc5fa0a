"""PRC working days for the CAC filing deadline (CAC-FR-15a/c: 30 working days).

Working days follow the State Council's yearly holiday schedule: weekends and official public
holidays are off, and the make-up working days (调休, often a Saturday or Sunday next to Golden
Week or Spring Festival) are on. The schedule comes from the maintained ``chinesecalendar``
package (import name ``chinese_calendar``).

Update path: the State Council publishes next year's schedule around November; a new
``chinesecalendar`` release follows. Upgrade it with ``pip install -U chinesecalendar`` (and
raise the floor in pyproject.toml); every deadline is computed afresh on each check, so an
upgrade replaces a provisional deadline by the official one at once.

Until the package knows a year, a deadline in that year is **provisional**. The days off that
the law fixes in advance are the statutory holidays of 全国年节及纪念日放假办法 (as amended by
State Council Order No. 795 of 2024-11-10, in force 2025-01-01): New Year's Day (1 day),
Spring Festival (4 days: New Year's Eve and the 1st-3rd of the first lunar month), Qingming
(1 day, the solar term), Labour Day (2 days, 1-2 May), Dragon Boat (1 day, 5th of the fifth
lunar month), Mid-Autumn (1 day, 15th of the eighth lunar month) and National Day (3 days,
1-3 October). Only the bridging days off and the make-up working days (调休) are announced
each year. Lunar dates come from ``lunar_python`` (MIT, computed astronomically; the tests
check them against chinesecalendar's official schedules for the years it knows).

The provisional deadline is the earliest the official one can be, so that it is never missed:
statutory holidays are off, every other weekday is a working day (an announced bridging day
off could only make the official deadline later), and a Saturday or Sunday within
MAKEUP_WINDOW_DAYS of a statutory holiday counts as a working day, since a make-up day may be
announced there. Measured over 2015-2026 against the official schedules (every start date,
30 working days; see tests/test_compliance_workdays.py): taking all weekends as rest days
(no make-up days) gave a date later than the official deadline for 224 of 4,322 start dates,
up to 7 days late; with the make-up window of 10 days none was late, and the provisional
date was at most 19 days early. Both dates are reported: ``Deadline.day`` (the earliest
possible, to act on) and ``Deadline.statutory_day`` (weekends all off).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

import chinese_calendar

from facegate.errors import HolidayDataMissing

FILING_WORKING_DAYS = 30
# A weekend day this close to a statutory holiday may be announced as a make-up working day:
# every make-up day of 2015-2026 but one (21 days) was within 10 days of a statutory holiday.
MAKEUP_WINDOW_DAYS = 10
# The amended national regulation (Order No. 795) applies from 2025; a provisional schedule
# is only ever needed for years after the installed package's data, so never before it.
STATUTE_FROM_YEAR = 2025


def _calendar_version() -> str:
    return getattr(chinese_calendar, "__version__", "?")


@lru_cache(maxsize=64)
def has_official_schedule(year: int) -> bool:
    """Whether the installed chinesecalendar carries the State Council schedule for ``year``."""
    try:
        chinese_calendar.is_workday(date(year, 6, 1))
    except NotImplementedError:
        return False
    return True


def is_prc_workday(day: date) -> bool:
    """True on a PRC working day (make-up days included); refuses years without data."""
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError as exc:
        raise HolidayDataMissing(
            f"The installed PRC holiday calendar (chinesecalendar {_calendar_version()}) has "
            f"no data for {day.year}, so working days cannot be counted. Run `pip install -U "
            f"chinesecalendar` once the State Council has published the {day.year} schedule.",
            zh=f"已安装的节假日日历没有 {day.year} 年的数据，无法计算工作日。国务院公布 "
            f"{day.year} 年放假安排后，请运行 `pip install -U chinesecalendar`。",
            year=day.year,
        ) from exc


def _lunar(year: int, month: int, day: int) -> date:
    from lunar_python import Lunar

    s = Lunar.fromYmd(year, month, day).getSolar()
    return date(s.getYear(), s.getMonth(), s.getDay())


def _qingming(year: int) -> date:
    from lunar_python import Lunar

    # The solar term 清明 of the Gregorian year (around 4-5 April).
    s = Lunar.fromYmd(year, 3, 1).getJieQiTable()["清明"]
    return date(s.getYear(), s.getMonth(), s.getDay())


@lru_cache(maxsize=64)
def statutory_holidays(year: int) -> dict[date, str]:
    """The rest days 全国年节及纪念日放假办法 (2024 amendment) fixes for ``year``, by date."""
    if year < STATUTE_FROM_YEAR:
        raise ValueError(f"the statutory holidays are computed from {STATUTE_FROM_YEAR} on")
    out: dict[date, str] = {date(year, 1, 1): "New Year's Day"}
    spring = _lunar(year, 1, 1)
    for i in range(-1, 3):  # 除夕 and 正月初一 to 初三
        out[spring + timedelta(days=i)] = "Spring Festival"
    out[_qingming(year)] = "Qingming"
    out[date(year, 5, 1)] = out[date(year, 5, 2)] = "Labour Day"
    out[_lunar(year, 5, 5)] = "Dragon Boat Festival"
    out[_lunar(year, 8, 15)] = "Mid-Autumn Festival"
    for d in (1, 2, 3):
        out[date(year, 10, d)] = "National Day"
    return out


def provisional_workday(day: date) -> bool:
    """A working day by statute alone: not a weekend, not a statutory holiday."""
    return day.weekday() < 5 and day not in statutory_holidays(day.year)


def possible_workday(day: date) -> bool:
    """A day that may turn out to be a working day: a weekday that is not a statutory holiday,
    or a weekend day near a statutory holiday (a possible make-up day)."""
    if day in statutory_holidays(day.year):
        return False
    if day.weekday() < 5:
        return True
    near: list[date] = []
    for year in (day.year - 1, day.year, day.year + 1):
        if year >= STATUTE_FROM_YEAR:
            near += statutory_holidays(year)
    return any(abs((day - h).days) <= MAKEUP_WINDOW_DAYS for h in near)


@dataclass(frozen=True)
class Deadline:
    """A date n PRC working days after a start; ``provisional`` when a year lacks a schedule."""

    day: date
    provisional: bool = False
    years: tuple[int, ...] = ()  # the years counted without an official schedule
    statutory_day: date | None = None  # provisional: with every weekend a rest day

    def reason(self, lang: str = "en") -> str:
        if not self.provisional:
            return ""
        ys = ", ".join(map(str, self.years))
        if lang == "zh-CN":
            return (
                f"暂定：已安装的节假日数据（chinesecalendar {_calendar_version()}）尚无 {ys} "
                "年的国务院放假安排，按《全国年节及纪念日放假办法》的法定节假日计算，并把节日前后 "
                f"{MAKEUP_WINDOW_DAYS} 天内的周末视为可能的调休工作日，取最早可能的日期"
                f"（周末全部休息时为 {self.statutory_day}）；放假安排公布后更新 chinesecalendar"
                "（pip install -U chinesecalendar）即按官方安排重新计算"
            )
        return (
            f"provisional: the installed holiday data (chinesecalendar {_calendar_version()}) "
            f"has no State Council schedule for {ys}, so the statutory holidays of the national "
            f"regulation were counted, with weekends within {MAKEUP_WINDOW_DAYS} days of a "
            "holiday taken as possible make-up working days: the earliest date the official "
            f"deadline can be (with every weekend off: {self.statutory_day}); it is recomputed "
            "from the official schedule once chinesecalendar is updated "
            "(pip install -U chinesecalendar)"
        )

    def text(self, lang: str = "en") -> str:
        """The date, with the provisional label and its reason when it is provisional."""
        if not self.provisional:
            return self.day.isoformat()
        return (
            f"{self.day.isoformat()}（{self.reason(lang)}）"
            if lang == "zh-CN"
            else f"{self.day.isoformat()} ({self.reason(lang)})"
        )


def add_working_days(start: date, n: int) -> date:
    """The n-th PRC working day after ``start`` by the official schedule; refuses years without
    data (``HolidayDataMissing``). ``working_deadline`` falls back to a provisional count."""
    if n < 1:
        raise ValueError("n must be at least 1")
    day = start
    counted = 0
    while counted < n:
        day += timedelta(days=1)
        if is_prc_workday(day):
            counted += 1
    return day


def working_deadline(start: date, n: int) -> Deadline:
    """The n-th PRC working day after ``start`` (``start`` itself is not counted).

    Official schedule where installed; in a year without one, the earliest date the official
    deadline can fall on (see the module docstring), marked provisional."""
    if n < 1:
        raise ValueError("n must be at least 1")
    early = _count(start, n, possible_workday)
    if early[1]:
        late = _count(start, n, provisional_workday)
        return Deadline(early[0], provisional=True, years=early[1], statutory_day=late[0])
    return Deadline(early[0])


def _count(start: date, n: int, guess: Callable[[date], bool]) -> tuple[date, tuple[int, ...]]:
    day = start
    counted = 0
    missing: list[int] = []
    while counted < n:
        day += timedelta(days=1)
        if has_official_schedule(day.year):
            work = is_prc_workday(day)
        else:
            if day.year < STATUTE_FROM_YEAR:
                is_prc_workday(day)  # raises HolidayDataMissing: no statute-only guess here
            if day.year not in missing:
                missing.append(day.year)
            work = guess(day)
        counted += work
    return day, tuple(missing)


def filing_deadline(reached_on: date) -> Deadline:
    """Last day to file after the stored count reached 100,000 on ``reached_on``."""
    return working_deadline(reached_on, FILING_WORKING_DAYS)
