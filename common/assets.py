"""Files shipped inside the package."""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets"
DEFAULT_CLIP = ASSETS / "person_signing_webcam.mp4"
"""A short real clip (CC BY 4.0, Intel sample-videos; see assets/CREDITS.md) for the demo and tests."""
