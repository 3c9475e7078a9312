"""`drive-vla data inspect` counts and picture; `make-embedded` argument handling."""

from __future__ import annotations

import argparse

import cv2
import pytest

from drive_vla.cli.data import parse_image_size
from drive_vla.cli.main import main


def test_inspect_prints_counts_and_writes_a_picture(synthetic_dataset, tmp_path, capsys):
    root, version, tokens = synthetic_dataset
    out = tmp_path / "sample.png"
    assert (
        main(
            [
                "data",
                "inspect",
                "--dataroot",
                str(root),
                "--version",
                version,
                "--sample",
                tokens[1][2],
                "--out",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "scenes               2" in text and "samples              16" in text
    assert "annotations          32" in text and "can_bus              present (16 samples)" in text
    assert "labels               present" in text and "split train" in text
    assert tokens[1][2] in text
    picture = cv2.imread(str(out))
    assert picture.shape == (2 * 270, 3 * 480 + 2 * 270, 3)  # 2x3 cameras of 480x270 and a square BEV panel


def test_inspect_reports_bad_input(synthetic_dataset, tmp_path, capsys):
    root, version, _ = synthetic_dataset
    assert main(["data", "inspect", "--dataroot", str(tmp_path / "none"), "--version", version]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert (
        main(
            [
                "data",
                "inspect",
                "--dataroot",
                str(root),
                "--version",
                version,
                "--sample",
                "nope",
                "--out",
                str(tmp_path / "x.png"),
            ]
        )
        == 2
    )
    assert "nope" in capsys.readouterr().err


def test_image_size_argument():
    assert parse_image_size("256x144") == (256, 144)
    for bad in ("256", "0x10", "axb"):
        with pytest.raises(argparse.ArgumentTypeError, match="WIDTHxHEIGHT"):
            parse_image_size(bad)
