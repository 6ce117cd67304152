"""The MIME writer against the email package: what it parses back is what was rendered.

`MessageWriter` writes the wire bytes itself instead of building an `EmailMessage`; these
tests hold it to the guarantees the package gave: every header reads back as its value
(RFC 2047 encoded words where needed), no value can add a header, lines end in CRLF and stay
within 78 (headers) and 76 (quoted-printable bodies) characters, and both parts decode to
the rendered text and HTML. Property tests draw the values; the email package's parser
(default policy, the one the test SMTP server uses) is the judge.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dreamscape_dev.testing.builders import payment_event
from notification_consumer.domain import Recipient, valid_address
from notification_consumer.message import (
    MAX_LINE,
    MessageWriter,
    compose,
    encoded_words,
    parse,
    quoted_printable,
)
from notification_consumer.rendering import Email, EmailContext, Renderer, one_line
from tests.notification.support import MAIL_FROM, RETRY_URL

DATE = datetime(2025, 12, 18, 10, 33, tzinfo=UTC)
WRITER = MessageWriter(MAIL_FROM)
EVENT_ID = "11e25dce-e5ae-4be3-ad58-d4206b389421"
MESSAGE_ID = f"<{EVENT_ID}.receipt@notifications.dreamscape>"
HEADERS = {
    "Message-ID": MESSAGE_ID,
    "Auto-Submitted": "auto-generated",
    "Content-Language": "fr",
    "X-DreamScape-Notification": "receipt",
}
HEADER_NAMES = [
    "From",
    "To",
    "Subject",
    "Date",
    "MIME-Version",
    "Content-Type",
    *HEADERS,
]
SUBJECTS = [
    "Payment receipt: €1,250.00 for booking booking_456def",
    "Reçu de paiement : 1\u202f250,00\xa0€ pour la réservation booking_456def",
    "Zahlungsbestätigung: 1.250,00\xa0€ für Buchung booking_456def \u2013 Grüße aus Köln",
    "お支払いの領収書\uff1a予約 booking_456def の ¥12,500 を受領しました。ありがとうございます。",
    "Платёж получен 🎉 " * 8,
    "=?utf-8?q?not_an_encoded_word?= looks like one",
    "x" * 120,
    "",
]
# Unicode text that UTF-8 can encode (no surrogates); CR and LF are drawn separately (they must be refused).
TEXT = st.text(st.characters(codec="utf-8", blacklist_characters="\r\n"))


def email_of(subject: str, text: str = "Hello\n", html: str = "<p>Hello</p>\n") -> Email:
    return Email(subject=subject, html=html, text=text, headers=HEADERS, language="fr")


def write(
    email: Email, name: str | None = "Zoé Martin", address: str = "zoe@example.test"
) -> bytes:
    return WRITER.write(email, recipient=Recipient(address, name), date=DATE)


def header_lines(raw: bytes) -> list[bytes]:
    return raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


def assert_wire_form(raw: bytes) -> None:
    """ASCII, every line ended by CRLF, headers within 78 characters, body lines within 76."""
    assert raw.isascii()
    assert raw.endswith(b"\r\n")
    lines = raw[:-2].split(b"\r\n")
    assert not any(b"\r" in line or b"\n" in line for line in lines), "a bare CR or LF"
    head = header_lines(raw)
    assert all(len(line) <= MAX_LINE for line in head), max(head, key=len)
    body = lines[len(head) :]
    assert all(len(line) <= 76 for line in body), max(body, key=len)


class TestHeaders:
    @given(subject=TEXT.map(one_line), name=TEXT)
    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @example(subject="a  b\tc ", name='"Zoé" \\ <x@y>, =?utf-8?q?a?=')
    @example(subject="€ €", name="€ €")
    @example(subject="=?utf-8?b?w6k=?=", name="Dr. O'Brien, Jr.")
    def test_every_header_reads_back_as_its_value(self, subject: str, name: str) -> None:
        """Any subject and display name (CR/LF aside) parse back to themselves, and the other headers to theirs."""
        raw = write(email_of(subject), name)
        assert_wire_form(raw)
        message = parse(raw)
        assert [key for key, _ in message.items()] == HEADER_NAMES
        assert str(message["Subject"]) == subject
        (to,) = message["To"].addresses
        assert to.addr_spec == "zoe@example.test"
        if to.display_name != read_as_phrase(name):
            # The email package keeps the blank between two adjacent encoded words of a
            # phrase, which RFC 2047 drops: a name whose run of non-ASCII words is too
            # long for one word is judged by RFC 2047 decoding.
            assert rfc2047(display_name_of(raw)) == one_line(name)
        assert str(message["From"]) == MAIL_FROM
        assert message["Date"] == format_datetime(DATE)
        for key, value in HEADERS.items():
            # A Message-ID too long for its line starts on the next one, as the email package
            # writes it; its parser keeps that fold's space (CFWS, which readers ignore).
            assert str(message[key]).strip() == value
        assert not message.defects

    @pytest.mark.parametrize("subject", SUBJECTS)
    def test_subjects_in_every_script_are_encoded_words_of_75_characters_at_most(
        self, subject: str
    ) -> None:
        """French, German, Japanese, Cyrillic and emoji subjects go out as UTF-8 encoded words, each within RFC 2047's 75 characters."""
        raw = write(email_of(subject))
        assert_wire_form(raw)
        assert str(parse(raw)["Subject"]) == subject
        folded = b" ".join(
            line.strip() for line in header_lines(raw) if line.startswith((b"Subject:", b" "))
        )
        for word in folded.split(b" "):
            if word.startswith(b"=?"):
                assert len(word) <= 75
                assert word.startswith((b"=?utf-8?q?", b"=?utf-8?b?"))

    def test_a_plain_ascii_subject_is_written_as_it_is(self) -> None:
        """An ASCII subject is not encoded, only folded at its spaces."""
        subject = "Payment receipt: $1,250.00 for booking booking_456def and a few more words"
        raw = write(email_of(subject))
        assert b"Subject: Payment receipt: $1,250.00 for booking booking_456def and a few" in raw
        assert str(parse(raw)["Subject"]) == subject

    @given(
        name=TEXT,
        cut=st.integers(min_value=0, max_value=40),
        line_break=st.sampled_from(
            ["\r", "\n", "\r\n", "\r\nBcc: all@example.test", "\nTo: x@example.test"]
        ),
    )
    def test_a_line_break_in_any_header_value_is_refused(
        self, name: str, cut: int, line_break: str
    ) -> None:
        """CR or LF anywhere in a subject, an added header or the sender is a ValueError, never a new header."""
        value = name[:cut] + line_break + name[cut:]
        with pytest.raises(ValueError, match="CR or LF"):
            write(email_of(value))
        with pytest.raises(ValueError, match="CR or LF"):
            WRITER.write(
                Email("s", "h", "t", {**HEADERS, "X-DreamScape-Notification": value}, "en"),
                recipient=Recipient("zoe@example.test"),
                date=DATE,
            )
        with pytest.raises(ValueError, match="CR or LF"):
            MessageWriter(f"DreamScape {value} <no-reply@dreamscape.test>")

    @settings(deadline=None)
    @given(name=st.text(st.sampled_from(["\r", "\n", "\u2028", "a", " ", "B", "c", ":"])))
    def test_a_display_name_with_line_breaks_stays_one_name(self, name: str) -> None:
        """The recipient's display name is made one line (as the subject is), so it cannot add a header either."""
        message = parse(write(email_of("s"), name))
        assert [key for key, _ in message.items()] == HEADER_NAMES
        assert message["To"].addresses[0].display_name == read_as_phrase(name)

    @given(address=st.emails().filter(valid_address))
    @settings(
        max_examples=200, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
    )
    @example(address='"a b"@example.test')
    @example(address="a(comment)@example.test")
    def test_any_valid_address_reads_back_as_the_email_package_writes_it(
        self, address: str
    ) -> None:
        """Every address planning accepts reads back as the addr-spec the email package itself would write."""
        message = parse(write(email_of("s"), "Zoé", address))
        (to,) = message["To"].addresses
        assert to.addr_spec == Address(addr_spec=address).addr_spec
        assert to.display_name == "Zoé"

    def test_no_display_name_gives_the_bare_address(self) -> None:
        """Without a display name the To header is the address alone."""
        raw = write(email_of("s"), None)
        assert b"To: zoe@example.test\r\n" in raw

    def test_a_long_message_id_is_folded_onto_its_own_line_and_never_encoded(self) -> None:
        """The Message-ID is kept whole (never an encoded word): on the next line when it does not fit."""
        long_id = f"<{EVENT_ID}.payment_failed@{'notifications.' * 4}dreamscape>"
        raw = WRITER.write(
            Email("s", "h", "t", {**HEADERS, "Message-ID": long_id}, "en"),
            recipient=Recipient("zoe@example.test"),
            date=DATE,
        )
        assert f"Message-ID:\r\n {long_id}\r\n".encode() in raw
        assert str(parse(raw)["Message-ID"]).strip() == long_id

    @settings(deadline=None)
    @given(text=TEXT, first=st.integers(min_value=0, max_value=75))
    def test_encoded_words_never_split_a_character(self, text: str, first: int) -> None:
        """Each encoded word decodes alone (whole UTF-8 characters), and all together give the text."""
        words = encoded_words(text, first)
        assert all(len(word) <= 75 for word in words)
        decoded = [str(parse(f"Subject: {w}\r\n\r\n".encode())["Subject"]) for w in words]
        assert "".join(decoded) == text


class TestBodies:
    @given(text=st.text(st.characters(codec="utf-8")), html=TEXT)
    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @example(text="a\rb\r\nc\nd", html="")
    @example(text="trailing space \nand tab\t\n.\n..\nFrom me\n--=_x\n", html="=" * 200)
    @example(text="é" * 100 + "\n" + "x" * 300, html="<p>" + "€" * 80 + "</p>")
    def test_both_parts_decode_to_the_rendered_text(self, text: str, html: str) -> None:
        """The text and HTML parts decode to what was rendered (line ends as CRLF, a last one added), in lines of 76 at most."""
        raw = write(email_of("s", text=text, html=html))
        assert_wire_form(raw)
        message = parse(raw)
        assert message.get_content_type() == "multipart/alternative"
        plain, rich = message.iter_parts()
        assert (plain.get_content_type(), rich.get_content_type()) == ("text/plain", "text/html")
        for part, rendered in ((plain, text), (rich, html)):
            assert part["Content-Transfer-Encoding"] == "quoted-printable"
            assert part.get_content_charset() == "utf-8"
            assert part.get_content() == crlf_lines(rendered)
        assert not any(part.defects for part in message.walk())

    def test_no_body_line_can_end_the_part(self) -> None:
        """`=` is always encoded, so a body holding the boundary text does not split the message."""
        boundary = f"--=_{EVENT_ID}.receipt"
        encoded = quoted_printable(f"{boundary}\n{boundary}--\n")
        assert boundary.encode() not in encoded
        assert b"=3D_" in encoded

    def test_the_parts_are_utf8_quoted_printable_as_the_email_package_wrote_them(self) -> None:
        """The writer keeps the transfer encoding the service always used: quoted-printable, UTF-8, text then HTML."""
        renderer = Renderer(retry_url=RETRY_URL)
        recipient = Recipient("claire@example.test", "Claire", "fr")
        rendered = renderer.render(
            payment_event("payment.completed"), EmailContext("receipt", recipient)
        )
        ours = compose(rendered, sender=MAIL_FROM, recipient=recipient, date=DATE)
        theirs = package_message(rendered, recipient)
        assert [k for k, _ in ours.items()] == [k for k, _ in theirs.items()]
        for key, value in theirs.items():
            assert str(ours[key]) == str(value), key
        for mine, package in zip(ours.iter_parts(), theirs.iter_parts(), strict=True):
            assert mine.get_content_type() == package.get_content_type()
            assert mine["Content-Transfer-Encoding"] == package["Content-Transfer-Encoding"]
            assert mine.get_content() == package.get_content()


def read_as_phrase(name: str) -> str:
    """A display name as the email package reads one back: one line, blanks run into one space.

    Its parser joins the blanks of a phrase (encoded words included) into one space, also
    when it wrote the name itself.
    """
    return re.sub(r"[ \t]+", " ", one_line(name))


def display_name_of(raw: bytes) -> str:
    """The raw display name of the To header, unfolded."""
    (to,) = [
        line
        for line in raw.decode().split("\r\n\r\n")[0].replace("\r\n ", " ").split("\r\n")
        if line.startswith("To: ")
    ]
    return to.removeprefix("To: ").rpartition(" <")[0]


def rfc2047(value: str) -> str:
    """`value` decoded as RFC 2047 says (the email package's legacy decoder does)."""
    return str(make_header(decode_header(value)))


def crlf_lines(text: str) -> str:
    """What a part decodes to: each line (ended by CR, LF or CRLF) ended by CRLF."""
    lines = text.encode("utf-8").splitlines()
    return b"".join(line + b"\r\n" for line in lines).decode("utf-8") if lines else "\r\n"


def package_message(rendered: Email, recipient: Recipient) -> EmailMessage:
    """The same email built by the email package (how the service composed it before), parsed back."""
    message = EmailMessage(policy=SMTP)
    message["From"] = MAIL_FROM
    message["To"] = Address(display_name=recipient.display_name or "", addr_spec=recipient.address)
    message["Subject"] = rendered.subject
    message["Date"] = format_datetime(DATE)
    message.set_content(rendered.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_alternative(rendered.html, subtype="html", charset="utf-8", cte="quoted-printable")
    message.set_boundary(f"=_{rendered.boundary}")
    for name, value in rendered.headers.items():
        message[name] = value
    return parse(message.as_bytes())
