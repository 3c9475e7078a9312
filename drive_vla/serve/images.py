"""Camera images on the wire: base64 PNG/JPEG strings <-> (H, W, 3) uint8 RGB arrays, with size limits."""

from __future__ import annotations

import base64
import binascii
import io

import numpy as np
from PIL import Image, UnidentifiedImageError

MAX_IMAGE_WH = (1600, 900)  # nuScenes camera resolution: the largest image the service accepts
MIN_IMAGE_SIDE_PX = 16
MAX_ENCODED_CHARS = 8 * 1024 * 1024  # one base64 image string; the whole body has its own limit
ACCEPTED_FORMATS = ("PNG", "JPEG")


def decode_image(
    data: str,
    *,
    max_wh: tuple[int, int] = MAX_IMAGE_WH,
    min_side_px: int = MIN_IMAGE_SIDE_PX,
    max_chars: int = MAX_ENCODED_CHARS,
) -> np.ndarray:
    """Decode a base64 PNG or JPEG (optionally a ``data:image/...;base64,`` URL) to RGB.

    The image size is read from the header and checked before any pixel is decoded, so an oversized
    image costs no memory.

    Args:
        data: base64 text of a PNG or JPEG file.
        max_wh: largest accepted (width, height) in pixels.
        min_side_px: smallest accepted width and height.
        max_chars: longest accepted base64 string.

    Returns:
        (H, W, 3) uint8 RGB.

    Raises:
        ValueError: not a string, not base64, not a PNG/JPEG, corrupt, or outside the size limits; the
            message names the value and what was expected (the caller adds the field name).
    """
    if not isinstance(data, str):
        raise ValueError(f"got {type(data).__name__}, expected a base64-encoded PNG or JPEG string")
    if len(data) > max_chars:
        raise ValueError(f"got {len(data)} base64 characters, expected at most {max_chars}")
    if data.startswith("data:"):
        head, sep, data = data.partition(",")
        if not sep or not head.endswith(";base64"):
            raise ValueError(f"got a data URL {head[:40]!r}, expected 'data:image/png;base64,...'")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"invalid base64 ({exc}), expected a base64-encoded PNG or JPEG") from None
    if not raw:
        raise ValueError("got an empty image, expected a base64-encoded PNG or JPEG")
    try:
        img = Image.open(io.BytesIO(raw))
    except (UnidentifiedImageError, OSError):
        raise ValueError(f"{len(raw)} decoded bytes are not an image, expected PNG or JPEG") from None
    if img.format not in ACCEPTED_FORMATS:
        raise ValueError(f"got a {img.format} image, expected one of {list(ACCEPTED_FORMATS)}")
    w, h = img.size
    if w > max_wh[0] or h > max_wh[1]:
        raise ValueError(f"got a {w}x{h} image, expected at most {max_wh[0]}x{max_wh[1]} (width x height)")
    if w < min_side_px or h < min_side_px:
        raise ValueError(f"got a {w}x{h} image, expected at least {min_side_px}x{min_side_px}")
    try:
        rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError) as exc:
        raise ValueError(f"corrupt {img.format} image ({exc})") from None
    return np.ascontiguousarray(rgb)


def encode_image(image: np.ndarray, fmt: str = "png", jpeg_quality: int = 90) -> str:
    """Encode an (H, W, 3) uint8 RGB array as base64 PNG or JPEG text (the inverse of decode_image)."""
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"image: got array{arr.shape} {arr.dtype}, expected (H, W, 3) uint8 RGB")
    fmt = fmt.lower()
    if fmt not in ("png", "jpeg", "jpg"):
        raise ValueError(f"fmt: got {fmt!r}, expected 'png' or 'jpeg'")
    buf = io.BytesIO()
    if fmt == "png":
        Image.fromarray(arr).save(buf, format="PNG")
    else:
        Image.fromarray(arr).save(buf, format="JPEG", quality=int(jpeg_quality))
    return base64.b64encode(buf.getvalue()).decode("ascii")
