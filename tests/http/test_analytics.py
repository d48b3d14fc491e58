"""Analytics, the analytics feed and /metrics over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.http.conftest import context

ENDPOINTS = (
    "enrolments",
    "coverage",
    "authentications",
    "risk",
    "step-ups",
    "sms-delivery",
    "recovery",
)


def _start(client, headers, user, **extra):  # type: ignore[no-untyped-def]
    return client.post(
        "/v1/authentications",
        headers=headers,
        json={"user_id": user, "context": context(), **extra},
    )


def _get(client, admin_headers, name: str, **params: Any) -> Any:  # type: ignore[no-untyped-def]
    response = client.get(f"/v1/analytics/{name}", headers=admin_headers, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def _history(client, headers, enrol, clock) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    alice, bob = enrol("alice"), enrol("bob")
    enrol("carol", confirm=False)
    assert _start(client, headers, "alice", method="totp", code=alice.code()).status_code == 201
    assert _start(client, headers, "alice", method="totp", code="000000").status_code == 401
    assert _start(client, headers, "bob", method="totp", code=bob.code()).status_code == 201
    assert _start(client, headers, "bob", operation="payment").status_code == 201
    return {"alice": alice, "bob": bob, "day": clock.now().date().isoformat()}


def test_coverage_daily_counts_and_success_rate_follow_the_api_calls(
    client, headers, admin_headers, enrol, clock
) -> None:
    seen = _history(client, headers, enrol, clock)
    day = seen["day"]
    coverage = _get(client, admin_headers, "coverage")
    assert coverage == {
        "users": 3,
        "with_authenticator": 2,
        "with_phishing_resistant": 0,
        "coverage": 0.6667,
        "phishing_resistant_coverage": 0.0,
        "phishing_resistant_methods": ["webauthn"],
    }
    enrolments = _get(client, admin_headers, "enrolments")["series"]
    assert enrolments == [{"day": day, "method": "totp", "started": 3, "added": 2, "removed": 0}]
    auth = _get(client, admin_headers, "authentications")
    assert auth["series"] == [
        {
            "day": day,
            "method": "totp",
            "attempts": 3,
            "successes": 2,
            "failures": 1,
            "success_rate": 0.6667,
        }
    ]
    assert auth["totals"] == [
        {"method": "totp", "attempts": 3, "successes": 2, "failures": 1, "success_rate": 0.6667}
    ]
    risk = _get(client, admin_headers, "risk")["series"]
    assert sum(r["count"] for r in risk) == 4 and {r["day"] for r in risk} == {day}
    assert _get(client, admin_headers, "step-ups")["series"] == [
        {"day": day, "operation": "payment", "count": 1}
    ]

    # revoking an active authenticator removes it and lowers coverage
    assert client.delete(f"/v1/enrolments/{seen['bob'].id}", headers=headers).status_code == 204
    assert _get(client, admin_headers, "coverage")["with_authenticator"] == 1
    assert _get(client, admin_headers, "enrolments")["series"][0]["removed"] == 1


def test_from_and_to_select_days_and_bad_days_are_problems(
    client, headers, admin_headers, enrol, clock
) -> None:
    seen = _history(client, headers, enrol, clock)
    today = clock.now().date()
    tomorrow = (today + timedelta(days=1)).isoformat()
    yesterday = (today - timedelta(days=1)).isoformat()
    assert _get(client, admin_headers, "enrolments", **{"from": tomorrow})["series"] == []
    assert _get(client, admin_headers, "risk", to=yesterday)["series"] == []
    same = _get(
        client, admin_headers, "authentications", **{"from": seen["day"], "to": seen["day"]}
    )
    assert same["series"][0]["attempts"] == 3
    bad = client.get("/v1/analytics/risk", headers=admin_headers, params={"from": "yesterday"})
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
    reversed_range = client.get(
        "/v1/analytics/risk", headers=admin_headers, params={"from": tomorrow, "to": yesterday}
    )
    assert reversed_range.status_code == 422


def test_recovery_is_an_honest_empty_series(client, admin_headers) -> None:
    body = _get(client, admin_headers, "recovery")
    assert body["series"] == [] and body["available"] is False and body["note"]


def test_sms_delivery_counts_each_provider_attempt_per_country(
    client, headers, admin_headers, clock, httpserver, monkeypatch
) -> None:
    monkeypatch.setenv("TESSERA_SMS_PROVIDERS", "webhook,console")
    monkeypatch.setenv("TESSERA_SMS_WEBHOOK_URL", httpserver.url_for("/send"))
    monkeypatch.setenv("TESSERA_SMS_WEBHOOK_SECRET", "whsec_test")
    httpserver.expect_request("/send", method="POST").respond_with_data("down", status=503)
    for user, number in (("alice", "+447400123456"), ("bob", "+4915123456789")):
        response = client.post(
            f"/v1/users/{user}/enrolments",
            json={"method": "sms", "phone_number": number},
            headers=headers,
        )
        assert response.status_code == 201 and response.json()["code_sent"]["provider"] == "console"
    body = _get(client, admin_headers, "sms-delivery")
    day = clock.now().date().isoformat()
    assert body["available"] is True
    assert sorted(
        (r["provider"], r["country"], r["delivered"], r["failed"]) for r in body["series"]
    ) == [
        ("console", "DE", 1, 0),
        ("console", "GB", 1, 0),
        ("webhook", "DE", 0, 1),
        ("webhook", "GB", 0, 1),
    ]
    assert {r["day"] for r in body["series"]} == {day}


def test_application_keys_are_refused_and_organisations_see_only_their_own(
    client, headers, admin_headers, enrol, clock, container
) -> None:
    _history(client, headers, enrol, clock)
    for name in ENDPOINTS:
        refused = client.get(f"/v1/analytics/{name}", headers=headers)
        assert refused.status_code == 403, name
        assert refused.headers["content-type"] == "application/problem+json"
    assert client.get("/v1/feeds/analytics", headers=headers).status_code == 403
    other = container.create_organisation()(name="Globex")
    theirs = {"Authorization": f"Bearer {other.admin_api_key}"}
    assert _get(client, theirs, "coverage")["users"] == 0
    assert _get(client, theirs, "authentications") == {"series": [], "totals": []}
    assert client.get("/v1/feeds/analytics", headers=theirs).text == ""


def test_the_analytics_feed_returns_row_changes_after_a_cursor(
    client, headers, admin_headers, enrol
) -> None:
    enrol("alice")
    first = client.get("/v1/feeds/analytics", headers=admin_headers)
    assert first.status_code == 200 and first.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in first.text.splitlines()]
    assert [line["seq"] for line in lines] == list(range(1, len(lines) + 1))
    assert {"model": "user", "key": {"user_id": "alice"}} in [
        {"model": line["model"], "key": line["key"]} for line in lines
    ]
    cursor = first.headers["x-next-cursor"]
    assert cursor == str(lines[-1]["seq"])
    enrol("dave")
    after = client.get("/v1/feeds/analytics", headers=admin_headers, params={"cursor": cursor})
    changes = [json.loads(line) for line in after.text.splitlines()]
    assert changes and all(c["seq"] > int(cursor) for c in changes)
    assert changes[-1] == {**changes[-1], "model": "user", "key": {"user_id": "dave"}}
    assert changes[-1]["value"] == {"active": 1, "phishing_resistant": 0}
    added = [
        c for c in changes if c["model"] == "daily" and c["key"]["metric"] == "enrolment_added"
    ]
    assert added[-1]["value"] == {"value": 2}  # alice's and dave's, the same day
    assert client.get("/v1/feeds/nope", headers=admin_headers).status_code == 404


def test_projection_status_lists_analytics_with_no_lag_after_a_read(
    client, admin_headers, enrol
) -> None:
    enrol()
    _get(client, admin_headers, "coverage")
    status = {s["name"]: s for s in client.get("/v1/projections", headers=admin_headers).json()}
    assert status["analytics"]["lag"] == 0 and status["analytics"]["position"] > 0


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_metrics_count_requests_verifications_and_projection_lag(
    client, headers, admin_headers, enrol, clock
) -> None:
    _history(client, headers, enrol, clock)
    _get(client, admin_headers, "coverage")
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples = _samples(response.text)
    requests = "tessera_http_requests_total"
    coverage = (("method", "GET"), ("route", "/v1/analytics/coverage"), ("status", "200"))
    assert samples[(requests, coverage)] == 1
    started = (("method", "POST"), ("route", "/v1/authentications"), ("status", "201"))
    assert samples[(requests, started)] == 3
    confirm = (("method", "POST"), ("route", "/v1/enrolments/{enrolment_id}/confirm"))
    assert samples[(requests, (*confirm, ("status", "200")))] == 2
    latency = (("method", "POST"), ("route", "/v1/authentications"))
    assert samples[("tessera_http_request_duration_seconds_count", latency)] == 4
    verifications = "tessera_verifications_total"
    assert samples[(verifications, (("outcome", "satisfied"),))] == 2
    assert samples[(verifications, (("outcome", "invalid_code"),))] == 1
    assert samples[(verifications, (("outcome", "throttled"),))] == 0
    assert samples[("tessera_projection_lag_events", (("projection", "analytics"),))] == 0
    assert samples[("tessera_event_store_head", ())] > 0
    assert "/metrics" not in client.get("/schema/openapi.json").json()["paths"]


def test_a_security_key_counts_towards_phishing_resistant_coverage(
    client, headers, admin_headers
) -> None:
    from tests.http.test_webauthn import ORIGIN, enrol_key
    from tests.softauthn import SoftAuthenticator

    enrol_key(client, headers, SoftAuthenticator("localhost", ORIGIN), user="dave")
    coverage = _get(client, admin_headers, "coverage")
    assert coverage["users"] == 1 and coverage["with_phishing_resistant"] == 1
    assert coverage["phishing_resistant_coverage"] == 1.0
