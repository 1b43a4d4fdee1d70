"""functions.base64_input: every base64 form that browsers and command-line
tools produce decodes to the same bytes; anything else says what is wrong."""

from __future__ import annotations

import base64
import subprocess
from urllib.parse import quote

import pytest

from functions.base64_input import Base64InputError, decode_image_string, max_encoded_chars
from tests.images import make_photo_like

DATA = make_photo_like((48, 40), seed=8) + b"\xfb\xff\xfe"  # ends in bytes whose base64 uses '+' or '/' and '-' or '_'


def forms() -> dict[str, str]:
    plain = base64.b64encode(DATA).decode()
    wrapped76 = "\n".join(plain[i : i + 76] for i in range(0, len(plain), 76)) + "\n"  # coreutils base64
    return {
        "standard": plain,
        "unpadded": plain.rstrip("="),
        "coreutils wrapped 76 LF": wrapped76,
        "openssl wrapped 64 LF": "\n".join(plain[i : i + 64] for i in range(0, len(plain), 64)) + "\n",
        "MIME wrapped 76 CRLF": "\r\n".join(plain[i : i + 76] for i in range(0, len(plain), 76)),
        "url-safe padded": base64.urlsafe_b64encode(DATA).decode(),
        "url-safe unpadded": base64.urlsafe_b64encode(DATA).decode().rstrip("="),
        "data URL (readAsDataURL)": "data:image/jpeg;base64," + plain,
        "data URL with parameters": "data:image/jpeg;name=photo.jpg;charset=utf-8;base64," + plain,
        "data URL, no media type": "data:;base64," + plain,
        "data URL, upper-case scheme": "DATA:image/jpeg;BASE64," + plain,
        "data URL, wrapped": "data:image/png;base64," + wrapped76,
        "percent-encoded (encodeURIComponent)": quote(plain, safe=""),
        "percent-encoded data URL": quote("data:image/jpeg;base64," + plain, safe=":;,"),
        "surrounding whitespace": "  \t" + plain + " \n",
    }


@pytest.mark.parametrize("form", sorted(forms()))
def test_every_client_form_decodes_to_the_same_bytes(form: str) -> None:
    assert decode_image_string(forms()[form]) == DATA


def test_the_coreutils_base64_command_output_decodes(tmp_path) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(DATA)
    try:
        out = subprocess.run(["base64", str(path)], capture_output=True, text=True, check=True).stdout
    except FileNotFoundError:
        pytest.skip("no base64 command on this machine")
    assert "\n" in out.strip()  # really wrapped
    assert decode_image_string(out) == DATA


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("QUJD*RUY=", "character '*' at position 4 of the base64 text is not base64"),
        ("data:image/jpeg;base64,QUJD!", "character '!' at position 4 of the data URL's data (after its comma)"),
        ("data:image/jpeg,QUJD", "the data URL is not base64-encoded"),
        ("data:image/jpeg;base64", "the data URL has no ','"),
        ("QUJDRUZHS=", "4k+1"),  # 9 characters + padding: one too many or three too few
        ("QUJDR", "4k+1"),
        ("QU=JD", "'=' padding at position 2 is in the middle"),
        ("QUJD===", "at most 2 are possible"),
        ("ab+c-d", "mixes the standard ('+', '/') and URL-safe ('-', '_') alphabets"),
        ("QUJD\u00e9", "character 'é' at position 4"),
    ],
)
def test_anything_else_says_exactly_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(Base64InputError) as info:
        decode_image_string(text)
    assert message in str(info.value)


def test_empty_text_is_no_bytes() -> None:
    assert decode_image_string("") == b"" and decode_image_string(" \n ") == b""  # the image check says "empty"


def test_max_encoded_chars_allows_every_form_of_the_largest_image() -> None:
    limit = 3000
    largest = bytes(range(256)) * 11 + bytes(limit - 2816)
    plain = base64.b64encode(largest).decode()
    wrapped = "\r\n".join(plain[i : i + 64] for i in range(0, len(plain), 64))
    assert len("data:image/jpeg;base64," + wrapped) <= max_encoded_chars(limit)
    assert decode_image_string(wrapped) == largest
