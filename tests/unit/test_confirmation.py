"""Confirmation numbers: a pure function of (bookingId, paymentId), shared through `common`."""

from __future__ import annotations

import re

import pytest

from common.confirmation import confirmation_number


class TestConfirmationNumber:
    def test_it_is_deterministic_and_in_crockford_base32(self) -> None:
        """Same ids, same number; `DS-` and two groups of five Crockford base32 digits."""
        number = confirmation_number("booking_456def", "pay_abc123xyz")
        assert number == confirmation_number("booking_456def", "pay_abc123xyz")
        assert re.fullmatch(r"DS-[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}", number)

    def test_another_payment_gives_another_number(self) -> None:
        """The winning payment is part of the number, so a different payment gives a new one."""
        assert confirmation_number("bk_1", "pay_1") != confirmation_number("bk_1", "pay_2")

    @pytest.mark.parametrize(
        ("booking_id", "payment_id", "number"),
        [
            ("booking_456def", "pay_abc123xyz", "DS-4WG7B-CCEJ2"),
            ("bk_1", "pay_1", "DS-0BJ7Y-E3E8D"),
            ("bk_é", "pay_é", "DS-NSE4P-VDNZN"),
        ],
    )
    def test_numbers_voyage_stored_before_the_move_are_computed_still(
        self, booking_id: str, payment_id: str, number: str
    ) -> None:
        """The numbers voyage_consumer.confirmation computed (and voyage stored) before it moved to common are unchanged (issue 21)."""
        assert confirmation_number(booking_id, payment_id) == number
