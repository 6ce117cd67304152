"""Money and dates for the reader's locale, as Jinja filters that read the locale from context.

Templates write `{{ payload.amount | money(payload.currency) }}` or
`{{ payload.completed_at | datetime }}` and get Babel's formatting for the recipient's locale
(`€1,250.00` in English, `1 250,00 €` in French, with the narrow no-break spaces the CLDR
prescribes) and the configured display time zone. The filters take the locale from the
render context rather than being bound per locale, so one compiled template serves every
locale of a language (`fr_FR`, `fr_CA`).

Amounts are `Decimal`s straight from the event; Babel formats them with the currency's own
number of decimals (none for the yen), never through a float. An email shows its amount and
date several times (subject, text, HTML), so results are memoised.
"""

from __future__ import annotations

import functools
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency
from jinja2 import pass_context
from jinja2.runtime import Context

from notification_consumer.settings import parse_locale


@functools.lru_cache(maxsize=256)
def resolve_locale(wanted: str | None, default: str) -> Locale:
    """The recipient's locale if Babel knows it, else the default locale."""
    if wanted:
        try:
            return parse_locale(wanted)
        except ValueError:
            pass
    return parse_locale(default)


@functools.lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@functools.lru_cache(maxsize=4096)
def money(amount: Decimal, currency: str, locale: Locale) -> str:
    """`amount` in `currency`, written as `locale` writes money."""
    return format_currency(amount, currency, locale=locale)


@functools.lru_cache(maxsize=4096)
def when(value: datetime, locale: Locale, timezone: str, fmt: str = "long") -> str:
    """A date and time in `timezone`, written as `locale` writes them (`long` by default).

    CLDR puts a narrow no-break space before AM/PM; mail clients' sans-serif fonts draw it
    so thin that `10:32:15 AM` reads `10:32:15AM`. A plain no-break space keeps the two on
    one line and visible apart.
    """
    text = format_datetime(value, fmt, tzinfo=zone(timezone), locale=locale)
    return text.replace("\u202f", "\xa0")


def day(value: datetime, locale: Locale, timezone: str, fmt: str = "long") -> str:
    """A date alone, in `timezone`, written as `locale` writes dates."""
    return format_date(value.astimezone(zone(timezone)).date(), fmt, locale=locale)


@pass_context
def money_filter(context: Context, amount: Decimal, currency: str) -> str:
    return money(amount, currency, context["locale"])


@pass_context
def datetime_filter(context: Context, value: datetime, fmt: str = "long") -> str:
    return when(value, context["locale"], context["timezone"], fmt)


@pass_context
def date_filter(context: Context, value: datetime, fmt: str = "long") -> str:
    return day(value, context["locale"], context["timezone"], fmt)


FILTERS: dict[str, Any] = {
    "money": money_filter,
    "datetime": datetime_filter,
    "date": date_filter,
}
"""The filters every template environment gets."""
