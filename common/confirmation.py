"""Deterministic confirmation numbers: the same booking and payment always give the same one.

A random number would be issued again on every replay or redelivery, and two consumers
handling the same completion would disagree. Hashing (booking id, winning payment id)
instead means the number is a property of the facts, like every other derived column.

It lives in `common` because two services show it: voyage stores it on the booking, and
notification prints it on the receipt, each computing it from the completion's ids (no
service imports another). Numbers are stored, so the function must never change
(tests/unit/test_confirmation.py pins a few).

Format `DS-XXXXX-XXXXX`: 50 bits of SHA-256 in Crockford base32 (no I, L, O, U, so it reads
back unambiguously over the phone). With a million bookings the chance that any two share a
number is about 0.04 %; the number is for humans, the booking id remains the key.
"""

from __future__ import annotations

import hashlib
from typing import Final

CROCKFORD: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
PREFIX: Final = "DS-"
_PAIRS: Final = tuple(a + b for a in CROCKFORD for b in CROCKFORD)
"""Every 10-bit value as two digits: five lookups instead of a ten-step loop (hot path)."""


def confirmation_number(booking_id: str, payment_id: str) -> str:
    """`DS-` and ten Crockford base32 characters: the first 50 bits of SHA-256 of the two ids."""
    digest = hashlib.sha256(f"{booking_id}\x1f{payment_id}".encode()).digest()
    bits = int.from_bytes(digest[:8], "big") >> 14
    p = _PAIRS
    first = p[bits >> 40] + p[(bits >> 30) & 1023] + p[(bits >> 20) & 1023][0]
    second = p[(bits >> 20) & 1023][1] + p[(bits >> 10) & 1023] + p[bits & 1023]
    return f"{PREFIX}{first}-{second}"
