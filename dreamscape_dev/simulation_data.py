"""What realistic payment values look like: the vocabulary and random draws of the simulator.

Kept apart from the flow logic so that the shapes of ids, the currency and method mix, and
the amount and delay distributions can be read and tuned in one place. Every draw takes the
simulator's `random.Random`; nothing here touches the global random state or the wall clock,
so one seed always yields the same values. Money is drawn as integer minor units (cents, or
whole yen) and only ever turned into an exact `Decimal`, never into a binary float.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Final

BASE36: Final = "0123456789abcdefghijklmnopqrstuvwxyz"
ALPHANUMERIC: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
DIGITS: Final = "0123456789"

MINOR_UNITS: Final[dict[str, int]] = {"EUR": 2, "USD": 2, "GBP": 2, "CHF": 2, "JPY": 0}
"""Decimal places of each simulated currency (ISO 4217 minor units; the yen has none)."""

CURRENCIES: Final = ("EUR", "USD", "GBP", "CHF", "JPY")
CURRENCY_WEIGHTS: Final = (70, 12, 8, 5, 5)
PER_EUR: Final[dict[str, float]] = {"EUR": 1.0, "USD": 1.08, "GBP": 0.85, "CHF": 0.94, "JPY": 160.0}

PAYMENT_METHODS: Final = (
    "credit_card",
    "debit_card",
    "paypal",
    "bank_transfer",
    "crypto",
    "apple_pay",  # not in the spec: a new method the tolerant reader must accept
)
METHOD_WEIGHTS: Final = (46, 22, 20, 7, 3, 2)

ERROR_MESSAGES: Final[dict[str, str]] = {
    "card_declined": "Your card was declined. Please try another payment method.",
    "insufficient_funds": "Your card has insufficient funds.",
    "expired_card": "Your card has expired. Please update your card details.",
    "processing_error": "An error occurred while processing your card. Please try again.",
    "fraud_suspected": "This payment was blocked because it looked fraudulent.",
}
ERROR_CODES: Final = tuple(ERROR_MESSAGES)
ERROR_WEIGHTS: Final = (45, 25, 10, 15, 5)

FULL_REFUND_REASONS: Final = (
    "Customer requested cancellation",
    "Flight cancelled by airline",
    "Hotel overbooked",
    "Duplicate booking",
    "Trip cancelled due to illness",
)
PARTIAL_REFUND_REASONS: Final = (
    "Partial cancellation: one traveller removed",
    "Room downgrade compensation",
    "Excursion cancelled by provider",
    "Goodwill gesture for delayed transfer",
)

HOUR_WEIGHTS: Final = (
    *(2, 1, 1, 1, 1, 2, 3, 5, 7, 8, 8, 8),  # 00-11 UTC: a Europe-heavy night, then the morning
    *(9, 9, 8, 8, 9, 10, 10, 10, 9, 7, 5, 3),  # 12-23 UTC: afternoon and evening peak
)
"""Relative booking activity per UTC hour of the day."""

_MAX_HOUR_WEIGHT: Final = max(HOUR_WEIGHTS)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_DAY_MS: Final = 86_400_000
_HOUR_MS: Final = 3_600_000
_MINUTE_MS: Final = 60_000


def to_ms(moment: datetime) -> int:
    """Milliseconds since the Unix epoch of an aware datetime, computed without floats."""
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def iso_ms(ms: int) -> str:
    """ISO 8601 UTC text with milliseconds and a `Z`, as the spec prints timestamps."""
    t = time.gmtime(ms // 1000)  # an int, so no float; far faster than strftime (performance.md)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (  # noqa: UP031 - the fastest way here
        t.tm_year,
        t.tm_mon,
        t.tm_mday,
        t.tm_hour,
        t.tm_min,
        t.tm_sec,
        ms % 1000,
    )


def to_decimal(minor: int, currency: str) -> Decimal:
    """An exact amount with exactly the currency's decimal places (12500 cents → 125.00)."""
    return Decimal(minor).scaleb(-MINOR_UNITS[currency])


class _Weighted:
    """A weighted choice with its cumulative weights computed once (`rng.choices` redoes it)."""

    def __init__(self, population: tuple[str, ...], weights: tuple[int, ...]) -> None:
        self._population = population
        self._cumulative = list(itertools.accumulate(weights))
        self._total = self._cumulative[-1]

    def draw(self, rng: random.Random) -> str:
        return self._population[bisect.bisect(self._cumulative, rng.random() * self._total)]


_CURRENCY: Final = _Weighted(CURRENCIES, CURRENCY_WEIGHTS)
_METHOD: Final = _Weighted(PAYMENT_METHODS, METHOD_WEIGHTS)
_ERROR: Final = _Weighted(ERROR_CODES, ERROR_WEIGHTS)


def draw_currency(rng: random.Random) -> str:
    return _CURRENCY.draw(rng)


def draw_method(rng: random.Random) -> str:
    return _METHOD.draw(rng)


def draw_error_code(rng: random.Random) -> str:
    return _ERROR.draw(rng)


def draw_amount_minor(rng: random.Random, currency: str) -> int:
    """A price in minor units: log-normal around a few hundred euros, kept within 30..5000 EUR."""
    euros = min(5000.0, max(30.0, rng.lognormvariate(math.log(320.0), 0.85)))
    major = euros * PER_EUR[currency]
    if MINOR_UNITS[currency] == 0:
        return max(10, round(major / 10) * 10)
    style = rng.random()
    if style < 0.35:  # a round price
        return round(major) * 100
    if style < 0.55:  # a ".99" price
        return round(major) * 100 - 1
    return round(major * 100)


def draw_share(rng: random.Random, minor: int, low: float, high: float) -> int:
    """Part of an amount (between the two fractions), at least 1 and less than the whole."""
    return max(1, min(minor - 1, round(minor * rng.uniform(low, high))))


def draw_initiated_ms(rng: random.Random, start_ms: int, days: int) -> int:
    """A moment within `days` after `start_ms`, busier in the day than at night."""
    while True:
        at = start_ms + rng.randrange(days * _DAY_MS)
        hour = (at // _HOUR_MS) % 24
        if rng.random() * _MAX_HOUR_WEIGHT < HOUR_WEIGHTS[hour]:
            return at


def draw_processing_ms(rng: random.Random) -> int:
    """Gateway time from initiation to outcome: 2 s-3 min, a few past the 2-minute alert."""
    roll = rng.random()
    if roll < 0.03:
        return rng.randint(120_001, 180_000)
    if roll < 0.15:
        return rng.randint(20_000, 120_000)
    return rng.randint(2_000, 20_000)


def draw_retry_gap_ms(rng: random.Random) -> int:
    """Time a user takes to try again after a failure: 30 s to 20 min."""
    return rng.randint(30_000, 20 * _MINUTE_MS)


def draw_refund_delay_ms(rng: random.Random) -> int:
    """Time from payment to a refund: 2 hours to 6 days."""
    return rng.randint(2 * _HOUR_MS, 6 * _DAY_MS)


def draw_second_refund_gap_ms(rng: random.Random) -> int:
    """Time between two partial refunds of one booking: 1 hour to 3 days."""
    return rng.randint(_HOUR_MS, 3 * _DAY_MS)


class _Alphabet:
    """Random text over an alphabet, two characters per step from one big random integer.

    Faster than `"".join(rng.choices(letters, k=n))` (docs/performance.md), which matters
    when a simulation draws tens of thousands of ids.
    """

    def __init__(self, letters: str) -> None:
        self._pairs = [first + second for first in letters for second in letters]
        self._bits_per_pair = len(self._pairs).bit_length() + 16  # keeps the modulo bias tiny

    def text(self, rng: random.Random, length: int) -> str:
        """`length` random characters."""
        steps = (length + 1) // 2
        number = rng.getrandbits(self._bits_per_pair * steps)
        size, pairs, parts = len(self._pairs), self._pairs, []
        for _ in range(steps):
            number, index = divmod(number, size)
            parts.append(pairs[index])
        return "".join(parts)[:length]


_BASE36: Final = _Alphabet(BASE36)
_ALPHANUMERIC: Final = _Alphabet(ALPHANUMERIC)
_DIGITS: Final = _Alphabet(DIGITS)


class IdFactory:
    """Identifiers shaped like the spec's examples, unique within one simulation."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._seen: set[str] = set()

    def _unique(self, prefix: str, alphabet: _Alphabet, length: int) -> str:
        while True:
            value = prefix + alphabet.text(self._rng, length)
            if value not in self._seen:
                self._seen.add(value)
                return value

    def payment(self) -> str:
        return self._unique("pay_", _BASE36, 12)

    def booking(self) -> str:
        return self._unique("booking_", _BASE36, 10)

    def user(self) -> str:
        return self._unique("usr_", _DIGITS, 9)

    def transaction(self) -> str:
        return self._unique("stripe_ch_", _ALPHANUMERIC, 24)

    def refund(self) -> str:
        return self._unique("refund_", _BASE36, 12)

    def event(self) -> str:
        """A UUID v4 from the seeded generator (uuid.uuid4() would read the OS entropy)."""
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
