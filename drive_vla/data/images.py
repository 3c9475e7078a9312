"""Camera images: JPEG encode/decode with clear errors, the uint8 area resize, matching intrinsics, the image cache."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from drive_vla.geometry import scale_intrinsics

IMAGE_CACHE_FORMAT = 2  # 2: frames resized by resize_area (earlier caches hold a plain INTER_AREA resize)


class ImageError(ValueError):
    """A camera image is missing, unreadable or corrupt (the message names the path)."""


def encode_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    """(H, W, 3) uint8 RGB -> JPEG bytes."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"image: could not encode an array of shape {rgb.shape} as JPEG")
    return buf.tobytes()


def jpeg_size(data: bytes, where: str = "image") -> tuple[int, int]:
    """(width, height) read from the SOF marker of JPEG bytes; ImageError if the bytes are not a JPEG."""
    if len(data) < 4 or data[:2] != b"\xff\xd8":
        raise ImageError(f"{where}: not a JPEG file (no start-of-image marker)")
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            i += 1 if marker == 0xFF else 2
            continue
        seg_len = int.from_bytes(data[i + 2 : i + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if i + 9 > len(data):
                break
            h = int.from_bytes(data[i + 5 : i + 7], "big")
            w = int.from_bytes(data[i + 7 : i + 9], "big")
            return w, h
        i += 2 + seg_len
    raise ImageError(f"{where}: corrupt JPEG (no frame header found)")


def read_jpeg_bytes(path: str | os.PathLike) -> bytes:
    """The bytes of a JPEG file; ImageError naming the path if it is missing or truncated."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"image file not found: {p}; expected the JPEG that sample_data.json names") from None
    except OSError as exc:
        raise ImageError(f"image file: {p}: cannot be read ({exc}), expected a readable JPEG file") from None
    if data[:2] != b"\xff\xd8":
        raise ImageError(f"image file: {p}: got no start-of-image marker, expected a JPEG file")
    if data.rstrip(b"\x00")[-2:] != b"\xff\xd9":
        raise ImageError(
            f"image file: {p}: got a corrupt or truncated JPEG (no end-of-image marker), expected a complete JPEG"
        )
    return data


def reduction_for(src_wh: tuple[int, int], dst_wh: tuple[int, int] | None) -> int:
    """Largest JPEG DCT reduction (1, 2, 4, 8) that keeps the decoded image at least ``dst_wh`` and exact."""
    if dst_wh is None:
        return 1
    best = 1
    for r in (2, 4, 8):
        if src_wh[0] % r or src_wh[1] % r:
            break
        if src_wh[0] // r >= dst_wh[0] and src_wh[1] // r >= dst_wh[1]:
            best = r
    return best


_REDUCED_FLAGS = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}


def decode_jpeg(path: str | os.PathLike, reduction: int = 1) -> np.ndarray:
    """Read and decode a JPEG file to (H, W, 3) uint8 RGB, optionally at 1/``reduction`` size."""
    data = read_jpeg_bytes(path)
    bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), _REDUCED_FLAGS[reduction])
    if bgr is None:
        raise ImageError(f"image file: {path}: got a corrupt JPEG (could not be decoded), expected a decodable JPEG")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def load_camera_image(
    path: str | os.PathLike, src_wh: tuple[int, int], intrinsics: np.ndarray, image_hw: tuple[int, int] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Decode one camera image and resize it to ``image_hw`` (H, W); return it with its scaled intrinsics."""
    dst_wh = None if image_hw is None else (int(image_hw[1]), int(image_hw[0]))
    r = reduction_for(src_wh, dst_wh)
    rgb = decode_jpeg(path, r)
    if (rgb.shape[1] * r, rgb.shape[0] * r) != tuple(src_wh):
        raise ImageError(
            f"image file: {path}: got {rgb.shape[1]}x{rgb.shape[0]} pixels, expected {src_wh[0]}x{src_wh[1]} "
            "as sample_data.json records"
        )
    if dst_wh is None:
        return rgb, np.asarray(intrinsics, dtype=np.float64)
    return resize_area(rgb, dst_wh), scale_intrinsics(intrinsics, dst_wh[0], dst_wh[1], src_wh=tuple(src_wh))


def resize_area(rgb: np.ndarray, dst_wh: tuple[int, int]) -> np.ndarray:
    """(H, W, C) uint8 -> (dst_h, dst_w, C) uint8 with an area (box) filter; the input itself if already that size.

    A large reduction (nuScenes' 1600x900 to a model's 128x72 is 12.5x) is done as exact 2x2 box means
    while at least 3x of the reduction is left, then one ``cv2.INTER_AREA`` step for the rest. The 2x2
    means run as ``cv2.INTER_LINEAR`` at exactly half size, which samples every output pixel at the centre
    of its 2x2 block: the same rounded means as ``INTER_AREA``'s 2x fast path (tested), about 10 % faster.
    A single ``INTER_AREA`` call at a non-integer factor is ~5x slower on CPU; the result differs from it
    only at the edges of each output pixel's box (about 1 grey level on average).
    Enlarging (either side) uses ``INTER_LINEAR``, as an area filter has nothing to average.
    """
    dst_w, dst_h = int(dst_wh[0]), int(dst_wh[1])
    if rgb.shape[1] == dst_w and rgb.shape[0] == dst_h:
        return rgb
    if dst_w > rgb.shape[1] or dst_h > rgb.shape[0]:
        return cv2.resize(rgb, (dst_w, dst_h), interpolation=cv2.INTER_LINEAR)
    x = rgb
    while x.shape[1] % 2 == 0 and x.shape[0] % 2 == 0 and x.shape[1] >= 6 * dst_w and x.shape[0] >= 6 * dst_h:
        x = cv2.resize(x, (x.shape[1] // 2, x.shape[0] // 2), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(x, (dst_w, dst_h), interpolation=cv2.INTER_AREA)


def files_fingerprint(paths: Sequence[str | os.PathLike], extra: str = "") -> str:
    """Hash of the paths, sizes and modification times of files (no file content is read)."""
    h = hashlib.sha1(f"{IMAGE_CACHE_FORMAT}|{extra}".encode())
    for p in paths:
        try:
            st = os.stat(p)
            h.update(f"|{p}|{st.st_size}|{st.st_mtime_ns}".encode())
        except FileNotFoundError:
            raise ImageError(f"image file not found: {p}") from None
    return h.hexdigest()


class ImageCache:
    """Decoded, resized camera images per sample as uncompressed .npz files under ``root``.

    Each file holds ``images`` (N_cam, H, W, 3) uint8 and the fingerprint of its inputs (image size, JPEG
    paths, sizes and mtimes); a file whose fingerprint does not match is ignored and rewritten.
    """

    def __init__(self, root: str | os.PathLike, image_hw: tuple[int, int] | None):
        size = "full" if image_hw is None else f"{int(image_hw[0])}x{int(image_hw[1])}"
        self.root = Path(root) / f"images-{size}"
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, token: str) -> Path:
        return self.root / token[:2] / f"{token}.npz"

    def load(self, token: str, fingerprint: str) -> np.ndarray | None:
        path = self._path(token)
        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z["fingerprint"]) != fingerprint:
                    return None
                return z["images"]
        except (FileNotFoundError, OSError, KeyError, ValueError):
            return None

    def store(self, token: str, fingerprint: str, images: np.ndarray) -> None:
        path = self._path(token)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            np.savez(fh, images=images, fingerprint=np.array(fingerprint))
        os.replace(tmp, path)
