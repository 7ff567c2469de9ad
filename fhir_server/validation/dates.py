"""Calendar-exact regexes for date, dateTime and instant.

The official patterns accept ``2021-02-30``. Checking the calendar in a Python
``format`` callback costs a round trip per value, so the rule is written into the
regexes instead (leap years included) and runs inside the schema engine.
:func:`calendar_valid` is only used to word error messages.
"""

from __future__ import annotations

import calendar

_YEAR = r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)"
_LEAP = r"([0-9]{2}(0[48]|[2468][048]|[13579][26])|(0[48]|[2468][048]|[13579][26])00)"
_MONTH = r"(0[1-9]|1[0-2])"
_DAY = (
    rf"({_YEAR}-(0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])"
    rf"|{_YEAR}-(0[469]|11)-(0[1-9]|[12][0-9]|30)"
    rf"|{_YEAR}-02-(0[1-9]|1[0-9]|2[0-8])"
    rf"|{_LEAP}-02-29)"
)
_TIME = (r"T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?"
         r"(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))")

PATTERNS = {
    "date": rf"^({_YEAR}(-{_MONTH})?|{_DAY})$",
    "dateTime": rf"^({_YEAR}(-{_MONTH})?|{_DAY}({_TIME})?)$",
    "instant": rf"^{_DAY}{_TIME}$",
}

_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def calendar_valid(value: str) -> bool:
    """Whether the ``YYYY-MM-DD`` prefix of ``value``, if it has one, is a real day.

    Values without a full date, or not shaped like one, count as calendar-valid: only
    the day-of-month rule is judged here.
    """
    if len(value) < 10 or value[4] != "-" or value[7] != "-":
        return True
    year, month, day = value[0:4], value[5:7], value[8:10]
    if not (year.isdigit() and month.isdigit() and day.isdigit()) or not 1 <= int(month) <= 12:
        return True
    m = int(month)
    limit = 29 if m == 2 and calendar.isleap(int(year)) else _DAYS[m - 1]
    return int(day) <= limit
