"""Argument parsing shared by the CLI verbs."""

from __future__ import annotations

import argparse


class ImageSizeError(argparse.ArgumentTypeError, ValueError):
    """A WIDTHxHEIGHT argument that is not one (argparse shows it; callers may catch ValueError)."""


def parse_image_wh(text: str, name: str = "--image-size") -> tuple[int, int]:
    """'256x144' -> (256, 144) as (width, height); each side 1..8192 pixels."""
    parts = str(text).lower().split("x")
    try:
        w, h = (int(p) for p in parts)
    except ValueError:
        w = h = -1
    if not (1 <= w <= 8192 and 1 <= h <= 8192):
        raise ImageSizeError(f"{name}: got {text!r}, expected WIDTHxHEIGHT such as 256x144")
    return w, h
