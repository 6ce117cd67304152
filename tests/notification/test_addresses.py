"""Recipient addresses built from untrusted user ids: invalid ones are rejected, never raised."""

from __future__ import annotations

import pytest

from notification_consumer.domain import valid_address


class TestValidAddress:
    @pytest.mark.parametrize(
        "address",
        [
            "a@evil.com#@example.test",  # HeaderParseError (issue 10, finding 13)
            "x@[",  # AttributeError inside the email package
            '"@x',
            "no-at-sign",
            "a@b\n.example",
        ],
    )
    def test_an_unparseable_address_is_invalid_not_an_exception(self, address: str) -> None:
        """Whatever the email package raises for a malformed address, the answer is False (that notification becomes undeliverable; the batch goes on)."""
        assert valid_address(address) is False

    def test_a_plain_address_is_valid(self) -> None:
        """An ordinary addr-spec is accepted."""
        assert valid_address("traveller-42@example.test") is True
