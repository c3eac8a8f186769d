"""A developer's own smoke tests: plain test functions with the same markers as the config, using
the plugin's fixtures (``smoke_http`` is a requests.Session bound to the run's resolved base URL)."""

import pytest


@pytest.fixture
def logged_in(smoke_http):
    # A failure here is a failure of the service, as in the test itself.
    login = smoke_http.post("/api/auth/login", json={"email": "test@example.com", "password": "test"})
    smoke_http.expect(login, status=200, json={"token_type": "bearer"})
    return smoke_http


@pytest.mark.smoke_required
def test_resources_round_trip(logged_in):
    created = logged_in.post("/api/resources", json={"title": "custom smoke"})
    assert created.status_code == 201
    rid = created.json()["id"]
    assert logged_in.get(f"/api/resources/{rid}").json()["title"] == "custom smoke"
    assert logged_in.delete(f"/api/resources/{rid}").status_code == 204


@pytest.mark.smoke_optional
def test_service_reports_a_version(smoke_http):
    reply = smoke_http.get("/health/live")
    assert reply.headers.get("X-Service-Version")
