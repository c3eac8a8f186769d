"""The check language against a real Django site (CSRF middleware, LoginView, @login_required,
APPEND_SLASH, django-health-check) served by gunicorn: redirects, forms, HTML, patterns, and
failures that show their cause. No green by accident: every case asserts the exit code and the
line a user reads."""

from __future__ import annotations

import json

import pytest
from web_app import PASSWORD, USER

EXIT_CRITICAL = 1
CSRF_FROM_PAGE = 'body~name="csrfmiddlewaretoken" value="([^"]+)"'


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("--smoke-config", "smoke.json", "--smoke-report", "report.json", *args)


def report(pytester: pytest.Pytester) -> dict:
    return json.loads((pytester.path / "report.json").read_text())


def check(name: str, endpoint: str, **extra) -> dict:
    return {"name": name, "endpoint": endpoint, "timeout_seconds": 5, **extra}


# -- redirects ------------------------------------------------------------------------------------------


def test_a_redirect_to_the_login_page_is_not_a_silent_pass(pytester, write_config, django_site):
    write_config({"base_url": django_site.url, "health_checks": [check("me", "/api/me")]})
    result = run(pytester)
    text = result.stdout.str()
    assert result.ret == 0  # the login page answered 200: a warning, and said so
    assert "/api/me passed via 302 → /accounts/login/?next=/api/me" in text
    [me] = report(pytester)["checks"]
    assert me["facts"]["redirects"] == "/api/me → 302 → /accounts/login/?next=/api/me → 200"


def test_with_follow_redirects_off_a_302_to_login_is_checked_as_itself(pytester, write_config, django_site):
    write_config(
        {
            "base_url": django_site.url,
            "follow_redirects": False,
            "health_checks": [
                check(
                    "login-required",
                    "/api/me",
                    expected_status=302,
                    expect={"headers": {"Location": {"matches": r"^/accounts/login/\?next="}}},
                ),
                check("append-slash", "/ht", expected_status=301, expect={"headers": {"Location": "/ht/"}}),
                check("followed-here", "/ht", follow_redirects=True, expected_status=200),
            ],
        }
    )
    result = run(pytester)
    assert result.ret == 0, result.stdout.str()
    assert "passed via" not in result.stdout.str()  # /ht → /ht/ is the same page, not a move


def test_a_failure_after_redirects_names_the_chain(pytester, write_config, django_site):
    write_config(
        {"base_url": django_site.url, "health_checks": [check("dashboard", "/dashboard/", expected_status=302)]}
    )
    result = run(pytester)
    assert result.ret == EXIT_CRITICAL
    assert (
        "/dashboard/ returned 200 (expected 302) after redirects "
        "(/dashboard/ → 302 → /accounts/login/?next=/dashboard/ → 200)"
    ) in result.stdout.str()


def test_a_long_redirect_chain_reaches_the_limit_and_says_so(pytester, write_config, django_site):
    write_config({"base_url": django_site.url, "max_redirects": 2, "health_checks": [check("hops", "/hop/3/")]})
    result = run(pytester)
    text = result.stdout.str()
    assert result.ret == EXIT_CRITICAL
    assert "redirect limit of 2 reached: /hop/3/ → 302 → /hop/2/ → 302 → /hop/1/" in text
    assert "redirect loop" not in text


# -- forms, CSRF and the Django recipe ---------------------------------------------------------------------


def form_login(**step_overrides) -> list[dict]:
    return [
        {"name": "login page", "method": "GET", "endpoint": "/accounts/login/", "save": {"csrf": CSRF_FROM_PAGE}},
        {
            "name": "log in",
            "method": "POST",
            "endpoint": "/accounts/login/",
            "follow_redirects": False,
            "form": {"username": USER, "password": PASSWORD, "csrfmiddlewaretoken": "{csrf}"},
            "required_status": 302,
            "expect": {"headers": {"Location": "/api/me"}},
            **step_overrides,
        },
        {"name": "who am I", "method": "GET", "endpoint": "/api/me", "expect": {"json": {"username": USER}}},
    ]


def test_a_form_login_with_the_csrf_token_from_the_page(pytester, write_config, django_site):
    write_config({"base_url": django_site.url, "critical_paths": [{"name": "form-login", "steps": form_login()}]})
    result = run(pytester)
    assert result.ret == 0, result.stdout.str()
    assert "Warnings" not in result.stdout.str()


def test_a_rejected_form_login_names_the_step_and_reproduces_the_request(pytester, write_config, django_site):
    steps = form_login(form={"username": USER, "password": "wrong-Pass-8812", "csrfmiddlewaretoken": "{csrf}"})
    write_config(
        {
            "base_url": django_site.url,
            "headers": {"Accept": "text/html"},
            "critical_paths": [{"name": "form-login", "steps": steps}],
        }
    )
    result = run(pytester)
    text = result.stdout.str()
    assert result.ret == EXIT_CRITICAL
    assert 'step 2/3 "log in" (POST /accounts/login/) returned 200 (expected 302)' in text
    # The page's words, not its markup.
    assert "[Log in | Smoke site] Log in Please enter a correct username and password." in text
    curl = next(line for line in text.splitlines() if line.startswith("reproduce: curl"))
    assert curl.count("Content-Type") == 1 and "application/x-www-form-urlencoded" in curl
    assert "-H 'Accept: text/html'" in curl and "--data-urlencode 'password=***'" in curl
    assert "wrong-Pass-8812" not in text


def test_json_sent_to_a_form_view_is_flagged_not_a_silent_pass(pytester, write_config, django_site):
    write_config(
        {
            "base_url": django_site.url,
            "critical_paths": [
                {
                    "name": "json-to-form",
                    "steps": [
                        {"method": "GET", "endpoint": "/accounts/login/", "save": {"csrf": CSRF_FROM_PAGE}},
                        {
                            "name": "log in",
                            "method": "POST",
                            "endpoint": "/accounts/login/",
                            "headers": {"X-CSRFToken": "{csrf}"},
                            "payload": {"username": USER, "password": PASSWORD},
                        },
                    ],
                }
            ],
        }
    )
    result = run(pytester)
    assert result.ret == 0  # LoginView shows the form again with 200: a warning that says why
    assert (
        'step 2/2 "log in" (POST /accounts/login/): sent JSON (payload), the answer is an HTML page: '
        "a form view expects form data (use form instead of payload)"
    ) in result.stdout.str()


def test_a_csrf_rejection_reads_as_csrf_not_as_credentials(pytester, write_config, django_site):
    write_config(
        {
            "base_url": django_site.url,
            "critical_paths": [
                {
                    "name": "no-token",
                    "steps": [
                        {
                            "method": "POST",
                            "endpoint": "/accounts/login/",
                            "form": {"username": USER, "password": PASSWORD},
                        },
                    ],
                }
            ],
        }
    )
    result = run(pytester)
    text = result.stdout.str()
    assert result.ret == EXIT_CRITICAL
    assert "CSRF verification failed" in text and "<meta" not in text
    assert "Issue: The request was rejected by CSRF protection" in text
    assert "Check the smoke credentials" not in text


DJANGO_RECIPE_STEPS = [
    {"name": "csrf", "endpoint": "/api/csrf/", "save": {"csrf": "body.csrfToken"}},
    {
        "name": "login",
        "method": "POST",
        "endpoint": "/api/login/",
        "headers": {"X-CSRFToken": "{csrf}"},
        "payload": {"username": USER, "password": PASSWORD},
        # login() rotates the CSRF token: save the new one, or every later POST is a 403.
        "save": {"csrf": "cookies.csrftoken"},
    },
    {
        "name": "create",
        "method": "POST",
        "endpoint": "/api/notes/",
        "headers": {"X-CSRFToken": "{csrf}"},
        "payload": {"title": "smoke"},
        "required_status": 201,
        "save": {"nid": "body.id"},
    },
    {"name": "read", "endpoint": "/api/notes/{nid}/", "expect": {"json": {"id": "{nid}", "title": "smoke"}}},
]
DJANGO_RECIPE_CLEANUP = [
    {
        "method": "DELETE",
        "endpoint": "/api/notes/{nid}/",
        "headers": {"X-CSRFToken": "{csrf}"},
        "required_status": [204, 404],
    },
]


def test_the_django_recipe_passes_and_cleans_up(pytester, write_config, django_site):
    write_config(
        {
            "base_url": django_site.url,
            "health_checks": [check("django-health", "/ht/?format=json")],
            "critical_paths": [{"name": "notes-crud", "steps": DJANGO_RECIPE_STEPS, "cleanup": DJANGO_RECIPE_CLEANUP}],
        }
    )
    result = run(pytester)
    assert result.ret == 0, result.stdout.str()
    assert "Warnings" not in result.stdout.str()


def test_the_django_recipe_without_the_save_after_login_fails_on_csrf(pytester, write_config, django_site):
    steps = json.loads(json.dumps(DJANGO_RECIPE_STEPS))
    del steps[1]["save"]
    write_config({"base_url": django_site.url, "critical_paths": [{"name": "notes-crud", "steps": steps}]})
    result = run(pytester)
    text = result.stdout.str()
    assert result.ret == EXIT_CRITICAL
    assert 'step 3/4 "create" (POST /api/notes/) returned 403 (expected 201)' in text
    assert "Save the token again after login" in text
    assert "saved so far: csrf=***" in text  # an anti-forgery token is shown masked, like a session


def test_expect_compares_with_saved_values_and_unknown_names_are_config_errors(pytester, write_config, django_site):
    steps = json.loads(json.dumps(DJANGO_RECIPE_STEPS))
    steps[3]["expect"] = {"json": {"id": "{missing}"}}
    write_config({"base_url": django_site.url, "critical_paths": [{"name": "notes-crud", "steps": steps}]})
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "critical_paths[0].steps[3].expect.json.id: unknown template variable {missing}" in result.stderr.str()


def test_a_bad_request_gets_its_own_remediation(pytester, write_config, django_site):
    write_config(
        {
            "base_url": django_site.url,
            "critical_paths": [
                {
                    "name": "api-login",
                    "steps": [
                        {"name": "csrf", "endpoint": "/api/csrf/", "save": {"csrf": "body.csrfToken"}},
                        {
                            "name": "login",
                            "method": "POST",
                            "endpoint": "/api/login/",
                            "headers": {"X-CSRFToken": "{csrf}"},
                            "form": {"username": USER, "password": PASSWORD},
                        },
                    ],
                }
            ],
        }
    )
    result = run(pytester)
    text = result.stdout.str()
    assert result.ret == EXIT_CRITICAL
    assert "returned 400 (expected any 2xx)" in text and '{"error": "expected a JSON body"}' in text
    assert "Issue: The endpoint rejected the request as malformed (400)" in text


# -- expectations -------------------------------------------------------------------------------------------


def test_header_patterns_and_body_patterns(pytester, write_config, django_site):
    ok = {
        "headers": {"Content-Type": {"matches": "^application/json"}},
        "body_matches": r'"csrfToken": "\w+"',
        "body_not_contains": "error",
    }
    bad = {
        "headers": {"Content-Type": {"matches": "^text/html"}},
        "body_matches": r"^<html",
        "body_not_contains": "csrfToken",
    }
    write_config(
        {
            "base_url": django_site.url,
            "health_checks": [
                check("patterns-ok", "/api/csrf/", expect=ok),
                check("patterns-bad", "/api/csrf/", expect=bad, required=False),
            ],
        }
    )
    result = run(pytester)
    text = result.stdout.str()
    assert result.ret == 0
    assert (
        "/api/csrf/: body contains 'csrfToken'; body does not match '^<html'; header Content-Type is "
        "'application/json', which does not match '^text/html'"
    ) in text


def test_a_pattern_that_does_not_compile_is_a_config_error(pytester, write_config, django_site):
    write_config(
        {"base_url": django_site.url, "health_checks": [check("bad", "/ht/", expect={"body_matches": "(unclosed"})]}
    )
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "health_checks[0].expect.body_matches: '(unclosed' is not a valid regular expression" in result.stderr.str()


# -- diagnostics that show the cause ---------------------------------------------------------------------------


def test_a_health_500_names_the_failing_component(pytester, write_config, django_site):
    django_site.fault("broker")
    write_config(
        {
            "base_url": django_site.url,
            "health_checks": [
                check("django-health", "/ht/?format=json", expect={"json": {"Database(alias='default')": "OK"}})
            ],
        }
    )
    result = run(pytester)
    text = result.stdout.str()
    assert result.ret == EXIT_CRITICAL
    assert (
        "/ht/?format=json returned 500 (expected 200); failing: Broker(): Unavailable: broker unreachable at "
        "amqp://broker:5672"
    ) in text
    assert "Issue: The health endpoint names failing components" in text
    assert "Database(alias='default')" not in text.split("failing:", 1)[1].splitlines()[0]  # only the failing one


def test_timeouts_name_the_url_and_what_arrived(pytester, write_config, django_site):
    write_config(
        {
            "base_url": django_site.url,
            "health_checks": [
                check("slow", "/slow/?seconds=3", timeout_seconds=1),
                check("trickle", "/trickle/", timeout_seconds=2),
            ],
        }
    )
    result = run(pytester)
    text = result.stdout.str()
    assert result.ret == EXIT_CRITICAL
    assert f"GET {django_site.url}/slow/?seconds=3: timed out after 1 s (no response)" in text
    assert f"GET {django_site.url}/trickle/: timed out after 2 s (200 received, body still arriving)" in text


def test_a_reset_connection_is_called_a_reset(pytester, write_config, django_site):
    write_config({"base_url": django_site.url, "health_checks": [check("reset", "/reset/")]})
    result = run(pytester)
    text = result.stdout.str()
    assert result.ret == EXIT_CRITICAL
    assert f"connection reset by 127.0.0.1:{django_site.port}" in text and "timed out" not in text


def test_public_variables_keep_the_address_readable(pytester, write_config, django_site, monkeypatch):
    monkeypatch.setenv("WEB_PORT", str(django_site.port))
    doc = {
        "base_url": "http://127.0.0.1:${WEB_PORT}",
        "headers": {"X-Web-Port": "${WEB_PORT}"},
        "health_checks": [check("missing", "/nope/", required=False)],
    }
    write_config(doc)
    masked = run(pytester).stdout.str()
    assert "127.0.0.1:***" in masked  # by default every value from the environment is a secret
    write_config({**doc, "public_variables": ["WEB_PORT"]})
    shown = run(pytester).stdout.str()
    assert f"smoke: base URL http://127.0.0.1:{django_site.port}" in shown and "***" not in shown
    write_config({**doc, "public_variables": ["DB_PASSWORD"]})
    refused = run(pytester)
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    assert "public_variables[0]: DB_PASSWORD looks like a credential" in refused.stderr.str()


def test_the_documented_django_recipe_runs_as_written(pytester, django_site, monkeypatch):
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "docs" / "writing-checks.md").read_text()
    section = page.split("## Recipe: a Django app", 1)[1]
    recipe = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    (pytester.path / "smoke.yaml").write_text(recipe)
    monkeypatch.setenv("SMOKE_PASSWORD", PASSWORD)
    result = pytester.runpytest_subprocess("--smoke-config", "smoke.yaml", "--smoke-base-url", django_site.url)
    assert result.ret == 0, result.stdout.str()
    assert "✓ Smoke tests passed" in result.stdout.str() and "Warnings" not in result.stdout.str()


def test_a_raw_body_with_its_content_type_and_a_save_pattern_that_does_not_match(pytester, write_config, django_site):
    write_config(
        {
            "base_url": django_site.url,
            "critical_paths": [
                {
                    "name": "raw-body",
                    "steps": [
                        {"name": "csrf", "endpoint": "/api/csrf/", "save": {"csrf": "body.csrfToken"}},
                        {
                            "name": "login",
                            "method": "POST",
                            "endpoint": "/api/login/",
                            "headers": {"X-CSRFToken": "{csrf}"},
                            "body": json.dumps({"username": USER, "password": PASSWORD}),
                            "content_type": "application/json",
                            "expect": {"json": {"username": USER}},
                        },
                    ],
                },
                {
                    "name": "no-token-in-page",
                    "required": False,
                    "steps": [
                        {
                            "name": "page",
                            "endpoint": "/api/csrf/",
                            "save": {"csrf": 'body~name="csrfmiddlewaretoken" value="([^"]+)"'},
                        },
                    ],
                },
            ],
        }
    )
    result = run(pytester)
    text = result.stdout.str()
    assert result.ret == 0, text
    assert (
        'step 1/1 "page" (GET /api/csrf/) cannot save \'csrf\': body~name="csrfmiddlewaretoken" value="([^"]+)" '
        "does not match the response body"
    ) in text
