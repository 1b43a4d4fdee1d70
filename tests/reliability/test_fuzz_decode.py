"""Fuzzing the decode and preprocessing path (shared/imaging.py,
shared/preprocess.py ``prepare_image``) with hypothesis: arbitrary bytes and
damaged valid JPEG/PNG/GIF/WebP/BMP/TIFF files (bit flips, truncations,
inserted/deleted bytes, edited headers and declared sizes) either give a
``(size, size, 3)`` uint8 array or raise :class:`ImageError` with a known
reason, never another exception; each input finishes in bounded time; and no
image larger than the decode limit's pixel count ever reaches the decoder
(the memory bound)."""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

import numpy as np
import pytest
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

import shared.imaging as imaging
from shared.errors import ImageError
from shared.imaging import DecodeLimits
from shared.preprocess import prepare_image
from tests.reliability.conftest import fuzz_examples
from tests.reliability.corpus import CORPUS, gif_bomb, jpeg_bomb
from tests.reliability.mutations import VALID, mutated_images, random_files, set_dimensions

SIZE = 32
#: A small pixel limit keeps every lucky decode cheap; the property checked is
#: that it holds, whatever the input declares.
LIMITS = DecodeLimits(max_pixels=2_000_000)
#: Generous per-input bound (the slowest seen here is well under 0.1 s): a
#: decoder stuck in a loop would blow it.
MAX_SECONDS = 10.0

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about broken EXIF/TIFF tags


@contextmanager
def decoded_sizes() -> Iterator[list[tuple[int, int]]]:
    """The declared size of every image that reaches pixel decoding."""
    sizes: list[tuple[int, int]] = []
    real = imaging._decode

    def spy(image: imaging.Image.Image) -> None:
        sizes.append(image.size)
        real(image)

    with mock.patch.object(imaging, "_decode", spy):
        yield sizes


def check(data: bytes) -> str:
    """Run prepare_image on ``data`` and check the contract; return the outcome."""
    started = time.perf_counter()
    with decoded_sizes() as sizes:
        try:
            pixels = prepare_image(data, SIZE, limits=LIMITS)
        except ImageError as exc:
            assert exc.reason in ImageError.REASONS, exc.reason
            assert exc.message and exc.to_dict() == {"reason": exc.reason, "message": exc.message}
            outcome = exc.reason
        else:
            assert isinstance(pixels, np.ndarray)
            assert pixels.shape == (SIZE, SIZE, 3) and pixels.dtype == np.uint8
            outcome = "ok"
    assert time.perf_counter() - started < MAX_SECONDS
    for width, height in sizes:
        assert width * height <= LIMITS.max_pixels, (width, height)
    return outcome


@settings(max_examples=fuzz_examples(1000))
@given(random_files())
@example(b"")
@example(b"\x00")
@example(b"\x89PNG\r\n\x1a\n")
@example(b"GIF89a\xff\xff\xff\xff")
def test_arbitrary_bytes_decode_or_raise_image_error(data: bytes) -> None:
    event(check(data))


@settings(max_examples=fuzz_examples(2000))
@given(mutated_images())
def test_damaged_images_decode_or_raise_image_error(data: bytes) -> None:
    event(check(data))


@settings(max_examples=fuzz_examples(300))
@given(st.sampled_from(sorted(VALID)), st.integers(1, 2**16 - 1), st.integers(1, 2**16 - 1))
def test_any_declared_size_is_refused_or_bounded(fmt: str, width: int, height: int) -> None:
    """Only the declared size changes: above the limit it must be refused
    before decoding; below, decode or a typed error. The limit bounds what a
    decode holds (issue 13): a JPEG decodes shrunk by up to 1/8 a side, so it
    must be refused when even that is over the limit (``check`` asserts, for
    every format, that no decode holds more than the limit)."""
    outcome = check(set_dimensions(VALID[fmt], width, height))
    event(outcome)
    held = width * height / 64 if fmt.startswith("jpeg") else width * height
    if held > LIMITS.max_pixels and fmt.startswith(("png", "gif", "jpeg")):
        assert outcome in (ImageError.TOO_MANY_PIXELS, ImageError.CORRUPT, ImageError.TRUNCATED), outcome


def test_every_valid_base_image_decodes() -> None:
    for fmt, data in VALID.items():
        assert check(data) == "ok", fmt


def test_corpus_outcomes_hold_under_the_fuzz_limits_too() -> None:
    for case in CORPUS:
        outcome = check(case.data)
        if case.kind != "wide_10000x10":  # 100,000 pixels: within either limit
            assert outcome == ("ok" if case.outcome == "sorted" else case.reason), case.kind


def test_bombs_do_not_cost_memory() -> None:
    """Gigapixel declarations are refused from the header: decoding a run of
    them leaves the process's peak memory where it was (ru_maxrss, kB)."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(50):
        for bomb in (gif_bomb(), jpeg_bomb(), set_dimensions(VALID["png"], 60_000, 60_000)):
            assert check(bomb) == ImageError.TOO_MANY_PIXELS
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000
