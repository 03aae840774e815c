"""Fixtures for the service tests (the servers themselves come from ``serve_helpers.service``)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
PHOTO = REPO / "examples" / "astronaut.jpg"
MAIN_LIMIT = 2_000_000  # body limit of ``main_url``


@pytest.fixture(scope="session")
def photo() -> bytes:
    """examples/astronaut.jpg (512 × 512, one face)."""
    return PHOTO.read_bytes()


@pytest.fixture(scope="session")
def small_jpeg() -> bytes:
    """A 480 × 300 grey JPEG with a red block at x 300..420, y 60..240."""
    a = np.full((300, 480, 3), 100, np.uint8)
    a[60:240, 300:420] = (210, 40, 40)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG")
    return buf.getvalue()


@pytest.fixture(scope="session")
def main_url() -> Iterator[str]:
    """The service with two worker processes, default cues and a 2 MB body limit (shared by the test modules)."""
    from serve_helpers import service  # skips without the serve extra

    with service(workers=2, queue=8, max_body=MAIN_LIMIT) as u:
        yield u
