"""Every error is RFC 9457 problem+json, and a refused request changes nothing."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest

PROBLEM_JSON = "application/problem+json"
ENROL = "/v1/users/alice/enrolments"


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body = response.json()
    assert {"type", "title", "status", "detail"} <= body.keys()
    assert body["status"] == status
    assert all(isinstance(body[k], str) and body[k] for k in ("type", "title", "detail"))
    return dict(body)


def enrolments_of_alice(client: Any, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = client.get(ENROL, headers=headers)
    assert response.status_code == 200
    return list(response.json())


@pytest.fixture
def other_org(container: Any) -> Any:
    return container.create_organisation()(name="Other")


@pytest.fixture
def enrolment_id(client: Any, headers: dict[str, str]) -> str:
    created = client.post(ENROL, json={"method": "totp"}, headers=headers)
    assert created.status_code == 201
    return str(created.json()["enrolment_id"])


def test_malformed_json_is_a_400_problem_and_enrols_nothing(client, headers) -> None:
    response = client.post(
        ENROL, content=b'{"method": "totp"', headers={**headers, "Content-Type": "application/json"}
    )
    body = assert_problem(response, 400)
    assert "JSON" in body["detail"]
    assert enrolments_of_alice(client, headers) == []


def test_deeply_nested_json_is_a_400_problem_not_a_server_error(client, headers) -> None:
    nested = b'{"method": "totp", "label": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"
    response = client.post(
        ENROL, content=nested, headers={**headers, "Content-Type": "application/json"}
    )
    assert_problem(response, 400)
    assert enrolments_of_alice(client, headers) == []


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ({"method": "totp", "digits": "6"}, "digits"),
        ({"method": "totp", "period": 30.5}, "period"),
        ({"method": "fax"}, "method"),
        ({"label": "phone"}, "data"),
    ],
    ids=["string-for-int", "float-for-int", "unknown-method", "missing-method"],
)
def test_a_wrong_type_is_a_422_problem_that_lists_the_errors(
    client, headers, body: dict[str, Any], key: str
) -> None:
    problem = assert_problem(client.post(ENROL, json=body, headers=headers), 422)
    assert [error["key"] for error in problem["errors"]] == [key]
    assert problem["errors"][0]["source"] == "body"
    assert enrolments_of_alice(client, headers) == []


def test_an_unknown_field_is_a_422_problem_that_names_it(client, headers) -> None:
    response = client.post(ENROL, json={"method": "totp", "colour": "red"}, headers=headers)
    problem = assert_problem(response, 422)
    assert "colour" in problem["errors"][0]["message"]
    assert enrolments_of_alice(client, headers) == []


@pytest.mark.parametrize(
    "change",
    [{"primary_factor_verified": 0}, {"login_aal": "3"}, {"risk_response": {"extreme": "deny"}}],
    ids=["int-for-bool", "string-for-int", "unknown-risk-level"],
)
def test_a_value_the_schema_refuses_is_not_coerced_and_the_policy_is_unchanged(
    client, admin_headers, change: dict[str, Any]
) -> None:
    before = client.get("/v1/policy", headers=admin_headers).json()
    assert_problem(client.patch("/v1/policy", json=change, headers=admin_headers), 422)
    assert client.get("/v1/policy", headers=admin_headers).json() == before


def test_a_body_over_64_kib_is_a_413_problem_and_enrols_nothing(client, headers) -> None:
    oversize = b'{"method": "totp", "label": "' + b"a" * 65_536 + b'"}'
    response = client.post(
        ENROL, content=oversize, headers={**headers, "Content-Type": "application/json"}
    )
    assert_problem(response, 413)
    assert enrolments_of_alice(client, headers) == []


@pytest.mark.parametrize("path", ["/v1/nothing", "/nothing", "/schema/nothing"])
def test_an_unknown_route_is_a_404_problem(client, headers, path: str) -> None:
    assert_problem(client.get(path, headers=headers), 404)


def test_a_malformed_enrolment_id_is_a_404_problem(client, headers) -> None:
    assert_problem(client.get("/v1/enrolments/not-a-uuid", headers=headers), 404)


def test_an_unknown_enrolment_id_is_a_404_problem(client, headers) -> None:
    unknown = "/v1/enrolments/00000000-0000-4000-8000-000000000000"
    assert_problem(client.get(unknown, headers=headers), 404)


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer    ", "Basic dXNlcjpwYXNz", "Bearer tsk_not-a-key"],
    ids=["absent", "empty", "no-key", "blank-key", "basic", "unknown-key"],
)
def test_a_missing_or_invalid_api_key_is_a_401_problem_with_www_authenticate(
    client, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = client.get("/v1/policy", headers=headers)
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


def test_an_invalid_body_without_an_api_key_is_a_401_not_a_422(client, headers) -> None:
    response = client.post(ENROL, json={"method": "totp", "colour": "red"})
    assert_problem(response, 401)
    assert enrolments_of_alice(client, headers) == []


def test_an_application_key_may_not_unlock_and_the_enrolment_is_unchanged(
    client, headers, enrolment_id: str
) -> None:
    before = client.get(f"/v1/enrolments/{enrolment_id}", headers=headers).json()
    response = client.post(f"/v1/enrolments/{enrolment_id}/unlock", headers=headers)
    assert_problem(response, 403)
    assert client.get(f"/v1/enrolments/{enrolment_id}", headers=headers).json() == before


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", "", None),
        ("POST", "/confirm", {"code": "123456"}),
        ("DELETE", "", None),
        ("POST", "/unlock", None),
    ],
    ids=["get", "confirm", "delete", "unlock"],
)
def test_an_enrolment_of_another_organisation_is_a_404_and_stays_unchanged(
    client,
    headers,
    container,
    org,
    other_org,
    enrolment_id: str,
    method: str,
    suffix: str,
    body: Any,
) -> None:
    path = f"/v1/enrolments/{enrolment_id}"
    before = client.get(path, headers=headers).json()
    app = container.identity_app()
    version = app.get_enrolment(UUID(enrolment_id), org_id=org.org_id).version
    other = {"Authorization": f"Bearer {other_org.admin_api_key}"}

    response = client.request(method, path + suffix, json=body, headers=other)

    assert_problem(response, 404)
    assert client.get(path, headers=headers).json() == before
    assert app.get_enrolment(UUID(enrolment_id), org_id=org.org_id).version == version
    assert [e["enrolment_id"] for e in enrolments_of_alice(client, headers)] == [enrolment_id]


def test_options_lists_every_method_of_a_path(client, headers) -> None:
    response = client.options("/v1/policy", headers=headers)
    assert response.status_code == 204
    assert response.headers["allow"] == "GET, OPTIONS, PATCH"


def test_the_schema_documents_a_problem_for_every_error_status(client) -> None:
    schema = client.get("/schema/openapi.json").json()
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            errors = {s: r for s, r in operation["responses"].items() if s >= "400"}
            assert "500" in errors, f"{method} {path}"
            for status, response in errors.items():
                assert list(response["content"]) == [PROBLEM_JSON], f"{method} {path} {status}"
            if "{" in path:
                assert "404" in errors, f"{method} {path}"
            if "429" in errors:
                assert errors["429"]["headers"]["Retry-After"]["required"] is True
    bodies = [s for name, s in schema["components"]["schemas"].items() if name.endswith("Request")]
    assert bodies and all(s["additionalProperties"] is False for s in bodies)
