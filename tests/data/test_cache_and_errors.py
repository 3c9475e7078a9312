"""Reader cache (no JPEG and no devkit table read on later epochs, invalidated on change) and bad-input errors."""

from __future__ import annotations

import os
import shutil

import pytest
from nuscenes_factory import write_synthetic_dataset

import drive_vla.data.images as images_mod
import drive_vla.data.reader as reader_mod
from drive_vla.data.images import ImageError
from drive_vla.data.index import DatasetError
from drive_vla.data.reader import NuScenesReader

VERSION = "v1.0-synthetic"


@pytest.fixture()
def dataset(tmp_path):
    root = tmp_path / "nuscenes"
    write_synthetic_dataset(root, scenes=1, n_keyframes=4)
    return root


def _forbid(monkeypatch, module, name):
    def fail(*args, **kwargs):
        raise AssertionError(f"{name} called although the cache should have answered")

    monkeypatch.setattr(module, name, fail)


def test_second_epoch_reads_no_jpeg_and_change_invalidates(dataset, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    reader = NuScenesReader(dataset, VERSION, image_hw=(18, 32), cache_dir=cache)
    first = [reader[i].observation.images["CAM_BACK"].copy() for i in range(len(reader))]
    _forbid(monkeypatch, reader_mod, "load_camera_image")
    _forbid(monkeypatch, images_mod, "decode_jpeg")
    _forbid(monkeypatch, reader_mod, "build_index")
    again = NuScenesReader(dataset, VERSION, image_hw=(18, 32), cache_dir=cache)  # index from the cache too
    for i in range(len(again)):
        assert (again[i].observation.images["CAM_BACK"] == first[i]).all()
    # touching one JPEG invalidates exactly that sample
    path = again.camera_paths(2)[0]
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    again[1]
    with pytest.raises(AssertionError, match="load_camera_image"):
        again[2]
    # another image size is another cache
    with pytest.raises(AssertionError, match="load_camera_image"):
        NuScenesReader(dataset, VERSION, image_hw=(9, 16), cache_dir=cache)[0]


def test_changed_tables_rebuild_the_index(dataset, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    NuScenesReader(dataset, VERSION, cache_dir=cache)
    table = dataset / VERSION / "sample.json"
    table.write_text(table.read_text() + "\n")
    _forbid(monkeypatch, reader_mod, "build_index")
    with pytest.raises(AssertionError, match="build_index"):
        NuScenesReader(dataset, VERSION, cache_dir=cache)


def test_missing_dataroot_version_and_table_name_the_path(dataset, tmp_path):
    with pytest.raises(DatasetError, match="nowhere"):
        NuScenesReader(tmp_path / "nowhere", VERSION)
    with pytest.raises(DatasetError, match=r"v1\.0-mini.*\['v1\.0-synthetic'\]"):
        NuScenesReader(dataset, "v1.0-mini")
    (dataset / VERSION / "ego_pose.json").unlink()
    with pytest.raises(DatasetError, match="ego_pose.json"):
        NuScenesReader(dataset, VERSION)


def test_malformed_table_names_the_file(dataset):
    (dataset / VERSION / "instance.json").write_text("{not json")
    with pytest.raises(DatasetError, match="instance.json"):
        NuScenesReader(dataset, VERSION)


def test_missing_and_corrupt_images_name_the_path(dataset):
    reader = NuScenesReader(dataset, VERSION)
    missing = reader.camera_paths(0)[3]
    missing.unlink()
    with pytest.raises(ImageError, match=str(missing)):
        reader[0]
    corrupt = reader.camera_paths(1)[0]
    corrupt.write_bytes(corrupt.read_bytes()[: len(corrupt.read_bytes()) // 2])
    with pytest.raises(ImageError, match=rf"{corrupt}.*truncated"):
        reader[1]
    garbage = reader.camera_paths(2)[0]
    garbage.write_bytes(b"\xff\xd8" + b"\x00" * 100 + b"\xff\xd9")
    with pytest.raises(ImageError, match=str(garbage)):
        reader[2]
    assert reader[3].observation.image_hw == (36, 64)


def test_dataset_without_can_folder_still_loads(dataset):
    shutil.rmtree(dataset / "can_bus")
    reader = NuScenesReader(dataset, VERSION)
    assert not reader.has_can and reader[0].observation.ego.source == "poses"
