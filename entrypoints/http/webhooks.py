"""Webhook subscriptions and their deliveries: administrators only."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, Parameter

from application.organisations import Principal
from application.webhooks import (
    CreateWebhook,
    DeleteWebhook,
    Delivery,
    ReadWebhooks,
    Subscription,
)
from entrypoints.http.problems import COMMON, problems
from entrypoints.http.schemas import (
    WebhookCreated,
    WebhookDeliveryView,
    WebhookRequest,
    WebhookView,
)

Api = NamedDependency[Any]


def _view(s: Subscription) -> WebhookView:
    return WebhookView(
        webhook_id=s.webhook_id,
        url=s.url,
        events=list(s.events),
        description=s.description,
        created_at=s.created_at,
    )


def _delivery(d: Delivery) -> WebhookDeliveryView:
    return WebhookDeliveryView(
        delivery_id=d.delivery_id,
        event_type=d.event_type,
        status=d.status,  # type: ignore[arg-type]  # the store holds only the three statuses
        attempts=d.attempts,
        created_at=d.created_at,
        next_attempt_at=d.next_attempt_at if d.status == "pending" else None,
        last_attempt_at=d.last_attempt_at,
        last_status=d.last_status,
        last_error=d.last_error,
        delivered_at=d.delivered_at,
    )


class WebhookController(Controller):
    path = "/v1/webhooks"
    tags = ["webhooks"]
    security = [{"apiKey": []}]

    @post(
        "/",
        status_code=201,
        sync_to_thread=True,
        responses=problems(*COMMON, 403),
        summary="Administrators: subscribe a URL to events (the signing secret is shown once)",
    )
    def create(
        self,
        data: JSONBody[WebhookRequest],
        principal: NamedDependency[Principal],
        create_webhook: Api,
    ) -> WebhookCreated:
        use_case: CreateWebhook = create_webhook
        created = use_case(
            principal=principal,
            url=data.url,
            events=list(data.events),
            description=data.description,
        )
        return WebhookCreated(
            webhook_id=created.webhook_id,
            url=created.url,
            events=created.events,
            description=created.description,
            secret=created.secret,
        )

    @get(
        "/",
        sync_to_thread=True,
        responses=problems(*COMMON, 403),
        summary="Administrators: the organisation's webhook subscriptions (never a secret)",
    )
    def list_webhooks(
        self, principal: NamedDependency[Principal], read_webhooks: Api
    ) -> list[WebhookView]:
        use_case: ReadWebhooks = read_webhooks
        return [_view(s) for s in use_case.subscriptions(principal=principal)]

    @delete(
        "/{webhook_id:uuid}",
        status_code=204,
        sync_to_thread=True,
        responses=problems(*COMMON, 403, 404),
        summary="Administrators: delete a subscription; its pending deliveries are dropped",
    )
    def remove(
        self,
        webhook_id: FromPath[UUID],
        principal: NamedDependency[Principal],
        delete_webhook: Api,
    ) -> None:
        use_case: DeleteWebhook = delete_webhook
        use_case(principal=principal, webhook_id=webhook_id)

    @get(
        "/{webhook_id:uuid}/deliveries",
        sync_to_thread=True,
        responses=problems(*COMMON, 403, 404),
        summary="Administrators: a subscription's recent deliveries, newest first",
    )
    def deliveries(
        self,
        webhook_id: FromPath[UUID],
        principal: NamedDependency[Principal],
        read_webhooks: Api,
        limit: FromQuery[Annotated[int, Parameter(ge=1, le=1000)]] = 100,
    ) -> list[WebhookDeliveryView]:
        use_case: ReadWebhooks = read_webhooks
        found = use_case.deliveries(principal=principal, webhook_id=webhook_id, limit=limit)
        return [_delivery(d) for d in found]
