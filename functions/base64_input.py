"""Image bytes from a base64 string as clients send it, or a precise reason why not.

Accepted forms, all of which browsers and common command-line tools produce:

- standard base64 with or without its ``=`` padding (``btoa``, Python's
  ``base64.b64encode``, ``base64 -w0``);
- base64 wrapped in lines, with ``\\n`` or ``\\r\\n`` line ends and stray
  spaces or tabs (``base64`` wraps at 76 characters, ``openssl base64`` at 64,
  MIME at 76 with CRLF);
- URL-safe base64 (``-`` and ``_`` for ``+`` and ``/``, usually unpadded:
  ``base64.urlsafe_b64encode``, ``basenc --base64url``, JWT-style tooling);
- a ``data:`` URL (RFC 2397) with ``;base64``, as ``FileReader.readAsDataURL``
  and ``canvas.toDataURL`` give, whatever its media type and parameters;
- any of the above percent-encoded once (``encodeURIComponent``), since ``%``
  is never part of base64.

Anything else raises :class:`Base64InputError` whose message names what is
wrong: the first character outside the alphabet and its position, a length
that no base64 text can have, a data URL without ``;base64``, padding in the
middle, or an alphabet mixing the standard and URL-safe characters.
"""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import unquote

_WHITESPACE = re.compile(r"[ \t\r\n\f\v]+")
_INVALID = re.compile(r"[^A-Za-z0-9+/=_\- \t\r\n\f\v]")


class Base64InputError(ValueError):
    """The string is not base64 (or a base64 data URL); the message says why."""


def max_encoded_chars(max_bytes: int) -> int:
    """The longest string that could still decode to at most ``max_bytes``
    bytes in any accepted form: 4 characters per 3 bytes, a line end every 64
    characters (``openssl base64``'s width, the narrowest common one), CRLFs,
    and room for a data URL's prefix. Used to refuse huge strings unread."""
    chars = (max_bytes + 2) // 3 * 4
    return chars + chars // 64 * 2 + 1024


def decode_image_string(value: str) -> bytes:
    """Decode ``value`` (base64 text in any accepted form) to bytes.

    Raises :class:`Base64InputError` with a message for people (it goes to
    the caller in a 400) when ``value`` is none of the accepted forms.
    """
    text = value.strip()
    if "%" in text:
        text = unquote(text)
    where = "the base64 text"
    if text[:5].lower() == "data:":
        text, where = _data_url_payload(text), "the data URL's data (after its comma)"
    bad = _INVALID.search(text)
    if bad:
        raise Base64InputError(
            f"character {bad.group()!r} at position {bad.start()} of {where} is not base64 "
            "(A-Z, a-z, 0-9, '+' and '/' or '-' and '_', '=' padding at the end)"
        )
    text = _WHITESPACE.sub("", text)
    if not text:
        return b""  # no bytes: the image check answers "empty"
    if ("-" in text or "_" in text) and ("+" in text or "/" in text):
        raise Base64InputError("the base64 text mixes the standard ('+', '/') and URL-safe ('-', '_') alphabets")
    body = text.rstrip("=")
    padding = len(text) - len(body)
    if "=" in body:
        raise Base64InputError(f"'=' padding at position {body.index('=')} is in the middle of the base64 text")
    if padding > 2:
        raise Base64InputError(f"the base64 text ends with {padding} '=' characters; at most 2 are possible")
    if len(body) % 4 == 1:
        raise Base64InputError(
            f"the base64 text has {len(body)} characters without its padding; no base64 text has 4k+1: "
            "a character is missing or extra (was it cut short?)"
        )
    body += "=" * (-len(body) % 4)
    try:
        if "-" in body or "_" in body:
            return base64.urlsafe_b64decode(body)
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as exc:  # not expected after the checks above
        raise Base64InputError(f"the base64 text cannot be decoded: {exc}") from exc


def _data_url_payload(text: str) -> str:
    """The base64 part of a data URL ``data:[<media type>][;param=value]*;base64,<data>``."""
    header, comma, payload = text.partition(",")
    if not comma:
        raise Base64InputError("the data URL has no ',' between its header and its data")
    parameters = [p.strip().lower() for p in header[5:].split(";")[1:]]
    if "base64" not in parameters:
        raise Base64InputError(f"the data URL is not base64-encoded (its header {header[:80]!r} lacks ';base64')")
    return payload
