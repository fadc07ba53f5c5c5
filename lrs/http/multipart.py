"""multipart/mixed bodies (RFC 2046) for statements with attachments, both directions.

Parsing uses python-multipart's streaming parser, which is binary-safe and strict about
delimiters; this module only collects parts and headers and checks the body was complete.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header


class MultipartError(ValueError):
    pass


@dataclass(slots=True)
class Part:
    headers: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)


MAX_BOUNDARY_LENGTH = 70
"""RFC 2046 §5.1.1: a boundary is 1 to 70 characters ..."""
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")
"""... of ``bchars``, the last one not a space."""


def boundary_of(content_type: str) -> str:
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise MultipartError("multipart/mixed needs a boundary parameter in Content-Type")
    text = boundary.decode("latin-1")
    if len(text) > MAX_BOUNDARY_LENGTH:
        raise MultipartError(
            f"the multipart boundary is {len(text)} characters long; RFC 2046 allows 1 to {MAX_BOUNDARY_LENGTH}"
        )
    if not _BOUNDARY.fullmatch(text):
        raise MultipartError(
            "the multipart boundary holds characters RFC 2046 does not allow (letters, digits,"
            " space and '()+_,-./:=? only, not ending in a space)"
        )
    return text


_FIRST_PART = re.compile(
    rb"--(?P<boundary>[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?])\r\n"
    rb"(?P<headers>(?:[!-9;-~]+:[^\r\n]*\r\n){1,20})\r\n"
)
"""The start of a multipart body: its first delimiter line (RFC 2046), then the first part's
header lines up to the empty line."""


def sniffed_multipart(body: bytes) -> str | None:
    """``multipart/mixed; boundary=…`` when ``body`` is unmistakably a multipart/mixed statement
    body whatever its declared type: it starts with a delimiter line ``--BOUNDARY`` (RFC 2046
    characters), its first part declares ``Content-Type: application/json``, and the closing
    delimiter ``--BOUNDARY--`` is there. ``None`` for anything else (which stays refused).

    This is a leniency for a real client: ``@xapi/xapi`` 3.x under Node.js sends statements with
    attachments as a correct multipart/mixed body declared ``application/octet-stream`` (the
    boundary is only in the body's first line)."""
    found = _FIRST_PART.match(body[:4096])
    if found is None:
        return None
    boundary = found["boundary"]
    first_type = None
    for line in found["headers"].split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-type":
            first_type = value.split(b";", 1)[0].strip().lower()
    if first_type != b"application/json" or b"\r\n--" + boundary + b"--" not in body:
        return None
    return 'multipart/mixed; boundary="' + boundary.decode("ascii") + '"'


def parse_multipart(body: bytes, content_type: str) -> list[Part]:
    """Split a multipart body into parts; header names are lower-cased."""
    boundary = boundary_of(content_type)
    delimiter = b"--" + boundary.encode("latin-1")
    if not body.startswith(delimiter):  # RFC 2046 preamble: ignored
        at = body.find(b"\r\n" + delimiter)
        if at < 0:
            raise MultipartError("multipart/mixed body has no boundary line")
        body = body[at + 2 :]
    parts: list[Part] = []
    header = {"field": bytearray(), "value": bytearray()}
    done = []

    def on_header_end() -> None:
        name = header["field"].decode("latin-1").strip().lower()
        parts[-1].headers[name] = header["value"].decode("latin-1").strip()
        header["field"].clear()
        header["value"].clear()

    callbacks = {
        "on_part_begin": lambda: parts.append(Part()),
        "on_header_field": lambda data, start, end: header["field"].extend(data[start:end]),
        "on_header_value": lambda data, start, end: header["value"].extend(data[start:end]),
        "on_header_end": on_header_end,
        "on_part_data": lambda data, start, end: parts[-1].body.extend(data[start:end]),
        "on_end": lambda: done.append(True),
    }
    try:
        parser = MultipartParser(boundary, callbacks)
        parser.write(body)
        parser.finalize()
    except FormParserError as exc:  # the base of python-multipart's errors, MultipartParseError too
        raise MultipartError(f"malformed multipart/mixed body: {exc}") from None
    if not done:
        raise MultipartError("multipart/mixed body is incomplete: no closing boundary")
    if not parts:
        raise MultipartError("multipart/mixed body has no parts")
    return parts


def build_multipart(first: bytes, attachments: list[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    """A multipart/mixed response: the JSON first, then each (sha2, content type, content)."""
    boundary = secrets.token_hex(16)
    delimiter = f"--{boundary}\r\n".encode()
    chunks = [delimiter, b"Content-Type: application/json\r\n\r\n", first, b"\r\n"]
    for sha2, content_type, content in attachments:
        chunks += [
            delimiter,
            f"Content-Type: {content_type}\r\nContent-Transfer-Encoding: binary\r\n"
            f"X-Experience-API-Hash: {sha2}\r\n\r\n".encode(),
            content,
            b"\r\n",
        ]
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/mixed; boundary={boundary}"
