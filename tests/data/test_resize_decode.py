"""The uint8 area resize, reduced-size JPEG decoding and the reader's cache of resized frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from nuscenes_factory import write_synthetic_dataset

import drive_vla.data.images as images_mod
from drive_vla.data.images import decode_jpeg, encode_jpeg, load_camera_image, reduction_for, resize_area
from drive_vla.data.reader import NuScenesReader
from drive_vla.types import CAMERA_NAMES


def _scene_image(wh: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A camera-like uint8 image: smooth shapes plus pixel noise."""
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.integers(0, 256, (9, 16, 3), dtype=np.uint8), wh, interpolation=cv2.INTER_CUBIC)
    return np.clip(base.astype(np.int16) + rng.integers(-20, 21, base.shape), 0, 255).astype(np.uint8)


def test_resize_area_matches_inter_area():
    img = _scene_image((1600, 900))
    ref = cv2.resize(img, (128, 72), interpolation=cv2.INTER_AREA).astype(np.int16)
    out = resize_area(img, (128, 72))
    assert out.shape == (72, 128, 3) and out.dtype == np.uint8
    diff = np.abs(out.astype(np.int16) - ref)
    assert diff.mean() < 1.0 and diff.max() <= 8  # 2x2 box means first, then one INTER_AREA step
    # small reductions are a single INTER_AREA call, bit for bit
    small = _scene_image((320, 180), seed=1)
    np.testing.assert_array_equal(
        resize_area(small, (128, 72)), cv2.resize(small, (128, 72), interpolation=cv2.INTER_AREA)
    )


@pytest.mark.parametrize("wh", [(1600, 900), (802, 450), (64, 36)])
def test_half_size_linear_step_is_the_exact_2x2_box_mean(wh):
    """The 2x steps of resize_area use INTER_LINEAR at exactly half size: the rounded mean of each 2x2 block,
    as INTER_AREA's fast path gives it."""
    img = _scene_image(wh, seed=2)
    half = (wh[0] // 2, wh[1] // 2)
    blocks = img.reshape(wh[1] // 2, 2, wh[0] // 2, 2, 3).astype(np.int32).sum(axis=(1, 3))
    expected = ((blocks + 2) // 4).astype(np.uint8)
    np.testing.assert_array_equal(cv2.resize(img, half, interpolation=cv2.INTER_LINEAR), expected)
    np.testing.assert_array_equal(cv2.resize(img, half, interpolation=cv2.INTER_AREA), expected)


def test_resize_area_keeps_the_target_size_and_enlarges_linearly():
    img = _scene_image((128, 72))
    assert resize_area(img, (128, 72)) is img  # nothing to do, no copy
    up = resize_area(img, (256, 144))
    np.testing.assert_array_equal(up, cv2.resize(img, (256, 144), interpolation=cv2.INTER_LINEAR))


@pytest.mark.parametrize(
    ("src_wh", "dst_wh", "expected"),
    [
        ((1600, 900), (128, 72), 4),  # 1/8 would be 200x112.5: not exact, so 1/4 (400x225)
        ((1280, 720), (128, 72), 8),  # 160x90 still covers 128x72
        ((1600, 900), (800, 450), 2),
        ((1600, 900), (801, 450), 1),  # 1/2 would be narrower than the target
        ((1600, 900), (1600, 900), 1),
        ((1600, 900), None, 1),
    ],
)
def test_reduction_for(src_wh, dst_wh, expected):
    assert reduction_for(src_wh, dst_wh) == expected


def test_reduced_decode_then_area_resize(tmp_path, monkeypatch):
    img = _scene_image((1600, 900))
    path = tmp_path / "cam.jpg"
    path.write_bytes(encode_jpeg(img, quality=95))
    flags = []
    real_imdecode = cv2.imdecode

    def spy(buf, flag):
        flags.append(flag)
        return real_imdecode(buf, flag)

    monkeypatch.setattr(images_mod.cv2, "imdecode", spy)
    k = np.array([[1266.0, 0, 816.0], [0, 1266.0, 491.0], [0, 0, 1]])
    out, k_out = load_camera_image(path, (1600, 900), k, (72, 128))
    assert flags == [cv2.IMREAD_REDUCED_COLOR_4]
    assert out.shape == (72, 128, 3)
    np.testing.assert_allclose(k_out[0, 0], 1266.0 * 128 / 1600)
    full = cv2.resize(decode_jpeg(path), (128, 72), interpolation=cv2.INTER_AREA).astype(np.int16)
    assert np.abs(out.astype(np.int16) - full).mean() < 2.0  # DCT-domain 1/4 decode, then 3.125x area


def test_cached_frame_equals_a_fresh_decode(tmp_path, monkeypatch):
    root = tmp_path / "nuscenes"
    write_synthetic_dataset(root, scenes=1, n_keyframes=2, image_wh=(256, 144))
    fresh = NuScenesReader(root, "v1.0-synthetic", image_hw=(36, 64)).images(1)
    cached_reader = NuScenesReader(root, "v1.0-synthetic", image_hw=(36, 64), cache_dir=tmp_path / "cache")
    cached_reader.images(1)  # decodes and stores
    monkeypatch.setattr(images_mod, "decode_jpeg", lambda *a, **k: pytest.fail("decoded although cached"))
    again = NuScenesReader(root, "v1.0-synthetic", image_hw=(36, 64), cache_dir=tmp_path / "cache").images(1)
    for cam in CAMERA_NAMES:
        assert again[cam].shape == (36, 64, 3)
        np.testing.assert_array_equal(again[cam], fresh[cam])
