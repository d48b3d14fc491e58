"""Builds the Litestar app from a container: routes, dependencies, problems, OpenAPI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dependency_injector import providers
from litestar import Litestar, MediaType, Request, Response, get
from litestar.datastructures import MutableScopeHeaders
from litestar.di import NamedDependency, Provide
from litestar.exceptions import ServiceUnavailableException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.routes import HTTPRoute
from litestar.template.config import TemplateConfig
from litestar.types import Message, Scope
from prometheus_client import CONTENT_TYPE_LATEST

from application.organisations import Principal
from application.projections import BackgroundFollower
from application.webhooks import BackgroundDispatcher
from entrypoints.container import Container
from entrypoints.http.admin import AdminController
from entrypoints.http.analytics import AnalyticsController
from entrypoints.http.api import (
    AuthenticationController,
    DeliveryCallbackController,
    EnrolmentController,
    OrganisationController,
    principal_from,
)
from entrypoints.http.audit import AuditController
from entrypoints.http.bodies import JsonBodyRequest, check_body
from entrypoints.http.demo import DemoController, demo_static_router
from entrypoints.http.openapi import JsonSchemaPlugin, YamlSchemaPlugin
from entrypoints.http.portal import (
    PORTAL_DEPENDENCIES,
    PortalApiController,
    PortalController,
    PortalLinkController,
    portal_static_router,
)
from entrypoints.http.problems import handle_exception, problem_response, problems
from entrypoints.http.schemas import JsonWebKeySet, Status
from entrypoints.http.webhooks import WebhookController

VERSION = "0.1.0"
TEMPLATES = Path(__file__).parent / "templates"


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
def ready(identity_app: NamedDependency[Any]) -> Status:
    try:
        identity_app.recorder.max_notification_id()
    except Exception:
        raise ServiceUnavailableException("The event store does not answer.") from None
    return Status(status="ready")


@get(
    "/metrics",
    sync_to_thread=False,
    include_in_schema=False,  # Prometheus text, not JSON; unauthenticated like /health (ADR 11)
    media_type=CONTENT_TYPE_LATEST,
)
def metrics_text(metrics: NamedDependency[Any]) -> Response[bytes]:
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


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


async def principal_then_body(
    request: Request[Any, Any, Any], authenticate_api_key: NamedDependency[Any]
) -> Principal:
    """Authenticate first, then check the body, so a caller without a key gets 401, never 422."""
    principal = principal_from(request, authenticate_api_key)
    await check_body(request)
    return principal


async def complete_allow_header(message: Message, scope: Scope) -> None:
    """Answer OPTIONS with every method of the path.

    Litestar 2.25 builds a controller's route one handler at a time and keeps the OPTIONS handler
    of the first, so `Allow` lists only the methods registered before it (GET /v1/policy is
    missing from `Allow: OPTIONS, PATCH`); the route itself knows them all.
    """
    if message["type"] != "http.response.start" or scope.get("method") != "OPTIONS":
        return
    template = scope.get("path_template")
    app = scope.get("litestar_app")
    if template is None or app is None:
        return
    for route in app.routes:
        if isinstance(route, HTTPRoute) and route.path_format == template:
            MutableScopeHeaders.from_message(message)["Allow"] = ", ".join(sorted(route.methods))
            return


def html_not_found_as_problem(response: Response[Any]) -> Response[Any]:
    """Litestar answers unknown paths under /schema/ with an HTML page: make that a problem too."""
    if response.status_code == 404 and response.media_type == MediaType.HTML:
        return problem_response(404, "Not found.")
    return response


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
            "read_audit_trail",
            "read_analytics",
            "metrics",
            "create_webhook",
            "delete_webhook",
            "read_webhooks",
            "projection_status",
            "clock",
            "admin_sessions",
            "start_administrator_enrolment",
            "enrol_administrator",
            "sign_in_administrator",
            "start_webauthn_enrolment",
            "confirm_webauthn_enrolment",
            "webauthn_login_options",
            "verify_webauthn",
            "start_code_enrolment",
            "resend_enrolment_code",
            "send_login_code",
            "record_delivery_status",
            *PORTAL_DEPENDENCIES,
            "settings",
        )
    }
    dependencies["principal"] = Provide(principal_then_body)
    metrics = container.metrics()
    metrics.watch_projections(container.projection_followers)
    settings = container.settings()
    # the FIDO metadata BLOB is parsed before the first request, not during it (ADR 15)
    lifecycle: dict[str, Any] = {"on_startup": [container.authenticator_metadata().prime]}
    if settings.projections_inline(container.database().kind):
        # embedded mode: each server process follows the store itself (ADR 9)
        background = BackgroundFollower(*container.projection_followers())
        dispatcher = BackgroundDispatcher(container.webhook_dispatcher())
        lifecycle = {
            "on_startup": [*lifecycle["on_startup"], background.start, dispatcher.start],
            "on_shutdown": [dispatcher.stop, background.stop],
        }
    demo: list[Any] = []
    if settings.demo_org:  # `serve --demo` only (entrypoints/http/demo.py)
        demo = [DemoController, demo_static_router()]
    return Litestar(
        route_handlers=[
            *demo,
            EnrolmentController,
            AuthenticationController,
            OrganisationController,
            DeliveryCallbackController,
            AuditController,
            AnalyticsController,
            WebhookController,
            AdminController,
            PortalLinkController,
            PortalController,
            PortalApiController,
            portal_static_router(),
            health,
            ready,
            jwks,
            metrics_text,
        ],
        middleware=[metrics.asgi_middleware],
        dependencies=dependencies,
        exception_handlers={Exception: handle_exception},
        before_send=[complete_allow_header],
        request_class=JsonBodyRequest,
        after_request=html_not_found_as_problem,
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Tessera",
            version=VERSION,
            description="Multi-factor authentication as a service. Every error is RFC 9457 "
            "application/problem+json.",
            path="/schema",
            render_plugins=[
                JsonSchemaPlugin(path=["/", "/openapi.json"]),
                YamlSchemaPlugin(path="/openapi.yaml"),
            ],
            components=Components(
                security_schemes={
                    "apiKey": SecurityScheme(
                        type="http", scheme="bearer", description="An organisation's API key"
                    ),
                }
            ),
        ),
        template_config=TemplateConfig(directory=TEMPLATES, engine=JinjaTemplateEngine),
        debug=False,
        **lifecycle,
    )
