"""Builds the Litestar app from a container: routes, dependencies, problems, OpenAPI."""

from __future__ import annotations

from typing import Any

from dependency_injector import providers
from litestar import Litestar, MediaType, Response, get
from litestar.di import NamedDependency, Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, YamlRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from entrypoints.container import Container
from entrypoints.http.api import (
    AuthenticationController,
    EnrolmentController,
    OrganisationController,
    principal_from,
)
from entrypoints.http.problems import handle_exception, problem_response, problems
from entrypoints.http.schemas import JsonWebKeySet, Status

VERSION = "0.1.0"


def _from(provider: providers.Provider[Any]) -> Provide:
    def dependency() -> Any:
        return provider()

    return Provide(dependency, sync_to_thread=False)


@get(
    "/health",
    sync_to_thread=False,
    tags=["operations"],
    summary="Liveness",
    responses=problems(500),
)
def health() -> Status:
    return Status(status="ok")


@get(
    "/ready",
    sync_to_thread=True,
    tags=["operations"],
    summary="Readiness: the store answers",
    responses=problems(500, 503),
)
def ready(identity_app: NamedDependency[Any]) -> Response[Any]:
    try:
        identity_app.recorder.max_notification_id()
    except Exception:
        return problem_response(503, "The event store does not answer.")
    return Response(Status(status="ready"))


@get(
    "/.well-known/jwks.json",
    sync_to_thread=False,
    tags=["tokens"],
    summary="Public keys that verify access tokens",
    responses=problems(500),
)
def jwks(tokens: NamedDependency[Any]) -> Response[JsonWebKeySet]:
    return Response(
        tokens.jwks(), headers={"Cache-Control": "public, max-age=60"}, media_type=MediaType.JSON
    )


def create_app(container: Container) -> Litestar:
    dependencies = {
        name: _from(getattr(container, name))
        for name in (
            "identity_app",
            "tokens",
            "authenticate_api_key",
            "start_enrolment",
            "confirm_enrolment",
            "list_enrolments",
            "revoke_enrolment",
            "unlock_enrolment",
            "resynchronise_hotp",
            "start_authentication",
            "verify_authentication",
            "get_authentication",
            "get_policy",
            "change_policy",
            "issue_api_key",
            "erase_user",
        )
    }
    dependencies["principal"] = Provide(principal_from, sync_to_thread=False)
    settings = container.settings()
    return Litestar(
        route_handlers=[
            EnrolmentController,
            AuthenticationController,
            OrganisationController,
            health,
            ready,
            jwks,
        ],
        dependencies=dependencies,
        exception_handlers={Exception: handle_exception},
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Tessera",
            version=VERSION,
            description="Multi-factor authentication as a service. Every error is RFC 9457 "
            "application/problem+json.",
            path="/schema",
            render_plugins=[
                JsonRenderPlugin(path=["/", "/openapi.json"]),
                YamlRenderPlugin(path="/openapi.yaml"),
            ],
            components=Components(
                security_schemes={
                    "apiKey": SecurityScheme(
                        type="http", scheme="bearer", description="An organisation's API key"
                    ),
                }
            ),
        ),
        debug=False,
    )
