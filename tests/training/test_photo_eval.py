"""The photo-like test proxy (training/photo_eval.py): fixed, seeded,
per-image, and it really changes the studio images it is given."""

from __future__ import annotations

import numpy as np
import pytest

from training.photo_eval import photo_like


def _studio_images(count: int = 3, size: int = 64) -> np.ndarray:
    """White backdrop with a dark square product in the middle."""
    images = np.full((count, size, size, 3), 255, np.uint8)
    for k in range(count):
        images[k, size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = (40 * k, 80, 160)
    return images


def test_the_same_seed_gives_the_same_images_and_another_seed_others() -> None:
    images = _studio_images()
    first = photo_like(images, seed=7)
    assert first.shape == images.shape and first.dtype == np.uint8
    assert np.array_equal(first, photo_like(images, seed=7))
    assert not np.array_equal(first, photo_like(images, seed=8))


def test_each_image_gets_its_own_changes_whatever_the_batch() -> None:
    images = _studio_images(4)
    whole = photo_like(images, seed=3)
    assert np.array_equal(whole[:2], photo_like(images[:2], seed=3))
    assert not np.array_equal(whole[0], whole[1])


def test_the_white_backdrop_is_replaced() -> None:
    images = _studio_images()
    changed = photo_like(images)
    corner = changed[:, :6, :6].reshape(len(images), -1, 3)
    assert (corner.min(axis=(1, 2)) < 230).all(), "the corners, white before, should no longer be backdrop white"


@pytest.mark.parametrize("shape", [(8, 8, 3), (1, 8, 8), (1, 8, 8, 4)])
def test_a_wrong_shape_is_a_clear_error(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="expected RGB images"):
        photo_like(np.zeros(shape, np.uint8))
