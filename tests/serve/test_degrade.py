"""The service fails closed on a missing cue model, and when told to degrade says so in /healthz and every answer."""

from __future__ import annotations

import pytest
from serve_helpers import httpx, service

from opencrop.serve.pool import WorkerStartError


def test_missing_face_model_stops_the_start(no_backends) -> None:
    with pytest.raises(WorkerStartError, match="faces") as e:
        with service(workers=1):
            pass
    assert e.value.kind == "CueUnavailableError"


def test_degraded_service_reports_it_everywhere(no_backends, small_jpeg: bytes) -> None:
    with service(workers=1, degrade=True) as url, httpx.Client(base_url=url, timeout=30) as client:
        health = client.get("/healthz").json()
        assert "faces" in health["degraded"] and "blazeface" in health["degraded"]["faces"]
        body = client.post("/crop?ratio=1:1", content=small_jpeg).json()
        assert "faces" in body["degraded"] and any(n.startswith("degraded: faces") for n in body["notes"])
        r = client.post("/crop.jpg?ratio=1:1", content=small_jpeg)
        assert r.status_code == 200 and "faces" in r.headers["X-Crop-Degraded"].split(",")
