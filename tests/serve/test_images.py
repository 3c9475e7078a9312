"""Base64 image decoding: round trips, formats, data URLs and every rejection names what was expected."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from drive_vla.serve.images import decode_image, encode_image


def _b64(img: Image.Image, fmt: str) -> str:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return base64.b64encode(buf.getvalue()).decode()


def test_png_round_trip_is_lossless():
    arr = np.random.default_rng(0).integers(0, 256, (36, 64, 3), dtype=np.uint8)
    assert np.array_equal(decode_image(encode_image(arr, "png")), arr)


def test_jpeg_and_data_url_and_grey_decode_to_rgb():
    arr = np.full((20, 30, 3), 128, dtype=np.uint8)
    out = decode_image("data:image/jpeg;base64," + encode_image(arr, "jpeg"))
    assert out.shape == (20, 30, 3) and out.dtype == np.uint8
    assert abs(int(out.mean()) - 128) <= 2
    grey = decode_image(_b64(Image.new("L", (17, 16), 200), "PNG"))
    assert grey.shape == (16, 17, 3) and (grey == 200).all()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("@@not-base64@@", "invalid base64"),
        (base64.b64encode(b"hello world, not a picture").decode(), "not an image"),
        ("", "empty image"),
        (_b64(Image.new("RGB", (32, 32)), "GIF"), "GIF"),
        (_b64(Image.new("RGB", (1601, 900)), "PNG"), "at most 1600x900"),
        (_b64(Image.new("RGB", (800, 901)), "PNG"), "at most 1600x900"),
        (_b64(Image.new("RGB", (15, 40)), "PNG"), "at least 16x16"),
        ("data:image/png,abc", "data URL"),
    ],
)
def test_rejections(data, expected):
    with pytest.raises(ValueError, match=expected):
        decode_image(data)


def test_size_is_checked_before_decoding_and_length_is_capped():
    # A truncated PNG whose header claims a huge size is rejected on the header alone.
    raw = base64.b64decode(_b64(Image.new("RGB", (4000, 3000)), "PNG"))[:200]
    with pytest.raises(ValueError, match="4000x3000"):
        decode_image(base64.b64encode(raw).decode())
    with pytest.raises(ValueError, match="at most 10"):
        decode_image("A" * 12, max_chars=10)


def test_encode_rejects_wrong_arrays():
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        encode_image(np.zeros((4, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match="fmt"):
        encode_image(np.zeros((4, 4, 3), dtype=np.uint8), "bmp")
