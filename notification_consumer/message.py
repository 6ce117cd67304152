"""`Email` + addresses → the message's wire bytes: the MIME structure every notification shares.

`multipart/alternative` with the plain text first and the HTML last (clients show the last
part they can render), both UTF-8 in quoted-printable. The bytes are written once, from a
skeleton whose constant parts (the From header, the parts' headers) are encoded when the
writer is built; per message only the recipient, subject, date, the `Email`'s own headers
and the two bodies are encoded and joined. No `EmailMessage` is built and serialised: that
cost two thirds of the service's time (docs/performance.md).

What the `email` package guaranteed, this module keeps (tests/notification/test_message.py
checks each against the package's own parser):

* no header injection: a CR or LF in any header value is refused (`ValueError`, as the
  package does); the subject and the display name are already one line (`rendering.one_line`);
* RFC 2047: a value that is not plain printable ASCII (or that holds `=?`, which a reader
  would take for an encoded word) is written as UTF-8 encoded words, Q or B, whichever is
  shorter, each at most 75 characters and never splitting a character;
* line lengths: CRLF line ends, header lines folded at 78 characters (a token that cannot be
  folded, such as a long address, at most 998), body lines at most 76 (quoted-printable);
* both parts decode to the rendered text and HTML (line ends as CRLF, a final one added).
"""

from __future__ import annotations

import binascii
import re
from base64 import b64encode
from datetime import datetime
from email import message_from_bytes
from email import policy as policies
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Final

from notification_consumer.domain import Recipient
from notification_consumer.rendering import Email, one_line

MAX_LINE: Final = 78
"""RFC 5322's recommended limit on a header line, CRLF excluded (the email package's too)."""
MAX_WORD: Final = 75
"""RFC 2047's limit on one encoded word."""
CRLF: Final = "\r\n"

_ATEXT: Final = re.compile(
    r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+(?: [A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+)*"
)
"""A phrase that needs no quoting: atext words, one space between them."""
_PLAIN: Final = re.compile(r"[\x21-\x7e]+(?: [\x21-\x7e]+)*")
"""An unstructured value that needs no encoding: printable ASCII words, one space apart."""
_WORDS: Final = re.compile(r"[^ \t]+(?: [^ \t]+)*")
"""Words separated by single spaces, no other blanks at their ends."""
_DOT_ATOM_ADDRESS: Final = re.compile(
    r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+(?:\.[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+)*"
    r"@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*"
)
_Q_SAFE: Final = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-!*+/")
"""Bytes a Q encoded word carries as themselves, in a phrase as in unstructured text
(RFC 2047 5(3); the email package's set)."""
_Q_BYTE: Final = tuple(
    chr(b) if b in _Q_SAFE else "_" if b == 0x20 else f"={b:02X}" for b in range(256)
)
_BODY_HEADERS: Final = 'Content-Type: text/{subtype}; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'


def _q(data: bytes) -> str:
    return "".join([_Q_BYTE[b] for b in data])


def _continues(byte: int) -> bool:
    """Whether a UTF-8 byte continues a character (a word must not start with one)."""
    return byte & 0xC0 == 0x80


def encoded_words(text: str, first: int = MAX_WORD) -> list[str]:
    """`text` as UTF-8 encoded words: the first at most `first` characters long, the others 75.

    Q or B for the whole value, whichever is shorter (Q unless B saves 5 characters, as the
    email package decides); a word never ends inside a character, so each decodes alone.
    """
    data = text.encode("utf-8")
    q = _q(data)
    room = max(first, 24) - 12  # 12: `=?utf-8?q?` and `?=`; room for any character
    words: list[str] = []
    if len(q) - 4 * -(-len(data) // 3) < 5:
        start = 0
        while len(q) - start > room:
            cut = start + room
            while (
                q[cut - 1] == "="
                or q[cut - 2] == "="
                or (  # not inside `=XX`
                    q[cut] == "=" and _continues(int(q[cut + 1 : cut + 3], 16))
                )
            ):
                cut -= 1
            words.append(f"=?utf-8?q?{q[start:cut]}?=")
            start, room = cut, MAX_WORD - 12
        words.append(f"=?utf-8?q?{q[start:]}?=")
        return words
    start = 0
    while True:
        cut = start + room // 4 * 3  # the bytes that `room` base64 characters carry
        if cut >= len(data):
            break
        while _continues(data[cut]):
            cut -= 1
        words.append(f"=?utf-8?b?{b64encode(data[start:cut]).decode('ascii')}?=")
        start, room = cut, MAX_WORD - 12
    words.append(f"=?utf-8?b?{b64encode(data[start:]).decode('ascii')}?=")
    return words


def fold(name: str, tokens: list[str]) -> str:
    """`Name: token token ...` with CRLF, folded before a token that would pass 78 characters.

    Tokens are joined by one space, which unfolding keeps, so the value reads the same. The
    first token stays next to the name (callers size it to fit): a value that starts on the
    next line reads back with a leading space.
    """
    lines: list[str] = []
    line = f"{name}: {tokens[0]}"
    for token in tokens[1:]:
        if len(line) + 1 + len(token) > MAX_LINE:
            lines.append(line)
            line = ""
        line = f"{line} {token}"
    lines.append(line)
    return CRLF.join(lines) + CRLF


def _refuse_line_breaks(name: str, value: str) -> None:
    if "\r" in value or "\n" in value:
        raise ValueError(f"{name}: header values may not contain CR or LF")


def unstructured(name: str, value: str) -> str:
    """An unstructured header (Subject, say): as it is if plain ASCII, else encoded words."""
    _refuse_line_breaks(name, value)
    if not value:
        return f"{name}:{CRLF}"
    room = MAX_LINE - len(name) - 2  # for the first token, after `Name: `
    if _PLAIN.fullmatch(value) and "=?" not in value:
        words = value.split(" ")
        if len(words[0]) <= room and max(map(len, words)) <= MAX_LINE - 1:
            return fold(name, words)
    return fold(name, encoded_words(value, room))


def phrase(display_name: str, room: int) -> list[str]:
    """A display name as header tokens: atext words, a quoted string or encoded words.

    A name that needs encoding keeps its plain words as they are and encodes each run of the
    others as one text, the spaces between them inside: two encoded words are adjacent
    only where a run is too long for one (RFC 2047 readers join those without a space).
    """
    plain = _ATEXT.fullmatch(display_name) and "=?" not in display_name
    if plain and max(map(len, display_name.split(" "))) <= min(room, MAX_LINE - 1):
        return display_name.split(" ")
    if _PLAIN.fullmatch(display_name) and "=?" not in display_name:
        quoted = display_name.replace("\\", "\\\\").replace('"', '\\"')
        if len(quoted) + 2 <= room:
            return [f'"{quoted}"']
    if not _WORDS.fullmatch(display_name):  # blanks other than single spaces: encode it all
        return encoded_words(display_name, room)
    tokens: list[str] = []
    run: list[str] = []
    for word in display_name.split(" "):
        first = room if not tokens else MAX_WORD
        if _ATEXT.fullmatch(word) and "=?" not in word and len(word) <= first:
            if run:
                tokens += encoded_words(" ".join(run), first)
                run = []
            tokens.append(word)
        else:
            run.append(word)
    if run:
        tokens += encoded_words(" ".join(run), room if not tokens else MAX_WORD)
    return tokens


def addr_spec(address: str) -> str:
    """The address as the header shows it: as given when a plain dot-atom, else normalised."""
    if not _DOT_ATOM_ADDRESS.fullmatch(address):
        address = Address(addr_spec=address).addr_spec  # quoted local parts, comments...
    _refuse_line_breaks("To", address)
    return address


def mailbox(name: str, display_name: str, address: str) -> str:
    """`Name: display name <address>` (the bare address without a display name)."""
    _refuse_line_breaks(name, display_name)
    spec = addr_spec(address)
    if not display_name:
        return fold(name, [spec])
    return fold(name, [*phrase(display_name, MAX_LINE - len(name) - 2), f"<{spec}>"])


def msg_id(name: str, value: str) -> str:
    """A Message-ID (`<left@right>`): never encoded; on a line of its own if too long."""
    _refuse_line_breaks(name, value)
    if not (value.isascii() and value.isprintable()) or " " in value:
        raise ValueError(f"{name}: not a message id: {value!r}")
    if len(name) + 2 + len(value) > MAX_LINE:  # as the email package folds it
        return f"{name}:{CRLF} {value}{CRLF}"
    return f"{name}: {value}{CRLF}"


def quoted_printable(text: str) -> bytes:
    """`text` in UTF-8 quoted-printable: CRLF line ends, lines of at most 76 characters.

    Line ends are normalised as the email package does (CR, LF or CRLF each end a line; a
    final one is added), and `=` is always encoded, so no body line can start a boundary.
    """
    lines = text.encode("utf-8").splitlines()
    data = b"\r\n".join(lines) + b"\r\n"
    return binascii.b2a_qp(data, quotetabs=False, istext=True, header=False)


class MessageWriter:
    """Writes notifications for one sender; what every message shares is encoded here, once."""

    def __init__(self, sender: str) -> None:
        _refuse_line_breaks("From", sender)
        self.envelope_from = parseaddr(sender)[1]
        """The sender's bare address, for SMTP's MAIL FROM."""
        policy = policies.SMTP
        # The one header the email package still writes: once per process, not per message.
        self._from = policy.header_factory("From", sender).fold(policy=policy)
        self._dated: tuple[datetime, str] | None = None

    def _date(self, date: datetime) -> str:
        """The Date header; the last one is reused within its second (a batch's emails share it)."""
        second = date.replace(microsecond=0)
        dated = self._dated
        if dated is None or dated[0] != second:
            dated = self._dated = (second, f"Date: {format_datetime(second)}{CRLF}")
        return dated[1]

    def write(self, email: Email, *, recipient: Recipient, date: datetime) -> bytes:
        """The message's bytes as they go on the wire; `date` is when it is written (aware)."""
        boundary = f"=_{email.boundary}"
        headers = [
            self._from,
            mailbox("To", one_line(recipient.display_name or ""), recipient.address),
            unstructured("Subject", email.subject),
            self._date(date),
            "MIME-Version: 1.0\r\n",
            f'Content-Type: multipart/alternative;{CRLF} boundary="{boundary}"{CRLF}',
        ]
        for name, value in email.headers.items():
            header = msg_id if name.lower() == "message-id" else unstructured
            headers.append(header(name, value))
        head = "".join(headers).encode("ascii")
        delimiter = f"\r\n--{boundary}\r\n".encode("ascii")
        return b"".join(
            [
                head,
                delimiter,  # its CRLF is the blank line that ends the header
                _BODY_HEADERS.format(subtype="plain").encode("ascii"),
                quoted_printable(email.text),
                delimiter,
                _BODY_HEADERS.format(subtype="html").encode("ascii"),
                quoted_printable(email.html),
                delimiter[:-2],
                b"--\r\n",
            ]
        )


def compose(email: Email, *, sender: str, recipient: Recipient, date: datetime) -> EmailMessage:
    """The message `MessageWriter` writes, parsed back by the email package (for previews).

    Parsed under `email.policy.SMTP`, so `bytes()` of it gives CRLF line ends as on the wire.
    """
    raw = MessageWriter(sender).write(email, recipient=recipient, date=date)
    message = message_from_bytes(raw, policy=policies.SMTP)
    assert isinstance(message, EmailMessage)
    return message


def parse(raw: bytes) -> EmailMessage:
    """`raw` parsed by the email package (its default policy): what a reader's client sees."""
    message = message_from_bytes(raw, policy=policies.default)
    assert isinstance(message, EmailMessage)
    return message
