"""A developer's own smoke test: a plain test function with the same markers as the config."""

import os

import pytest
import requests


@pytest.mark.smoke_required
def test_resources_round_trip():
    base = os.environ["SMOKE_BASE_URL"]
    with requests.Session() as http:
        login = http.post(f"{base}/api/auth/login", json={"email": "test@example.com", "password": "test"}, timeout=5)
        assert login.status_code == 200
        created = http.post(f"{base}/api/resources", json={"title": "custom smoke"}, timeout=5)
        assert created.status_code == 201
        rid = created.json()["id"]
        assert http.get(f"{base}/api/resources/{rid}", timeout=5).json()["title"] == "custom smoke"
        assert http.delete(f"{base}/api/resources/{rid}", timeout=5).status_code == 204


@pytest.mark.smoke_optional
def test_service_reports_a_version():
    reply = requests.get(os.environ["SMOKE_BASE_URL"] + "/health/live", timeout=5)
    assert reply.headers.get("X-Service-Version")
