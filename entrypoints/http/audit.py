"""Audit trail, read-model feeds and projection status: administrators only."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, Parameter, QueryParameter

from application.analytics import ReadAnalytics
from application.audit import AuditPage, AuditRecord, ReadAuditTrail
from application.errors import InvalidRequestError
from application.organisations import Principal
from application.projections import ProjectionFollower
from entrypoints.http.problems import COMMON, problems
from entrypoints.http.schemas import (
    AnalyticsChangeView,
    AuditPageView,
    AuditRecordView,
    ProjectionStatus,
)

NDJSON = "application/x-ndjson"
Api = NamedDependency[Any]
Cursor = Annotated[
    str | None,
    Parameter(
        max_length=15,
        pattern=r"^[0-9]*$",
        description="`next_cursor` of the previous answer; omit for the first",
    ),
]
Filter = Annotated[str | None, Parameter(min_length=1, max_length=256)]


def _rfc3339(value: str | None, name: str) -> datetime | None:
    """Only RFC 3339 with an offset: Litestar alone would also take a number of seconds."""
    if value is None:
        return None
    try:
        at: datetime = msgspec.convert(value, Annotated[datetime, msgspec.Meta(tz=True)])
    except msgspec.ValidationError:
        raise InvalidRequestError(f"{name!r} must be an RFC 3339 time with an offset") from None
    return at


def _view(record: AuditRecord) -> AuditRecordView:
    return msgspec.convert(record.as_dict(), AuditRecordView)


def _page(page: AuditPage) -> AuditPageView:
    return AuditPageView(records=[_view(r) for r in page.records], next_cursor=page.next_cursor)


class AuditController(Controller):
    path = "/v1"
    tags = ["audit"]
    security = [{"apiKey": []}]

    @get(
        "/audit",
        sync_to_thread=True,
        responses=problems(*COMMON, 403),
        summary="Administrators: the organisation's audit trail, oldest first, in pages",
    )
    def audit(
        self,
        principal: NamedDependency[Principal],
        read_audit_trail: Api,
        user_id: FromQuery[Filter] = None,
        action: FromQuery[Annotated[str | None, Parameter(min_length=1, max_length=64)]] = None,
        outcome: FromQuery[Literal["success", "failure", "info"] | None] = None,
        since: Annotated[
            str | None,
            QueryParameter(
                name="from", format="date-time", description="RFC 3339; from this time, inclusive"
            ),
        ] = None,
        until: Annotated[
            str | None,
            QueryParameter(name="to", format="date-time", description="RFC 3339; before this time"),
        ] = None,
        cursor: FromQuery[Cursor] = None,
        limit: FromQuery[Annotated[int, Parameter(ge=1, le=1000)]] = 100,
    ) -> AuditPageView:
        use_case: ReadAuditTrail = read_audit_trail
        return _page(
            use_case.page(
                principal=principal,
                user_id=user_id,
                action=action,
                outcome=outcome,
                since=_rfc3339(since, "from"),
                until=_rfc3339(until, "to"),
                cursor=cursor,
                limit=limit,
            )
        )

    @get(
        "/feeds/{name:str}",
        sync_to_thread=True,
        media_type=NDJSON,
        responses=problems(*COMMON, 403, 404),
        summary="Administrators: a read model's changes after a cursor, as JSON lines",
        description="One JSON object per line, oldest first. Feeds: `audit` (audit records; "
        "the cursor is a position) and `analytics` (row changes with the row's new value; the "
        "cursor is the change `seq`). The `X-Next-Cursor` header is the cursor for the next "
        "call. Unknown names answer 404.",
    )
    def feed(
        self,
        name: FromPath[Annotated[str, Parameter(min_length=1, max_length=64)]],
        principal: NamedDependency[Principal],
        read_audit_trail: Api,
        read_analytics: Api,
        cursor: FromQuery[Cursor] = None,
        limit: FromQuery[Annotated[int, Parameter(ge=1, le=10000)]] = 1000,
    ) -> Response[bytes]:
        if name == "analytics":  # cursor: the change `seq`; lines: AnalyticsChangeView
            analytics: ReadAnalytics = read_analytics
            changes = analytics.feed(principal=principal, cursor=cursor, limit=limit)
            body = b"".join(
                msgspec.json.encode(msgspec.convert(c.as_dict(), AnalyticsChangeView)) + b"\n"
                for c in changes.changes
            )
            return Response(body, media_type=NDJSON, headers={"X-Next-Cursor": changes.next_cursor})
        use_case: ReadAuditTrail = read_audit_trail
        page = use_case.feed(principal=principal, name=name, cursor=cursor, limit=limit)
        body = b"".join(msgspec.json.encode(_view(r)) + b"\n" for r in page.records)
        return Response(body, media_type=NDJSON, headers={"X-Next-Cursor": page.next_cursor or "0"})

    @get(
        "/projections",
        sync_to_thread=True,
        responses=problems(*COMMON, 403),
        summary="Administrators: each projection's position and lag (events behind)",
    )
    def projections(
        self, principal: NamedDependency[Principal], projection_status: Api
    ) -> list[ProjectionStatus]:
        principal.require_admin()
        follower: ProjectionFollower
        inline, followers = projection_status
        statuses = []
        for follower in followers:
            position, head = follower.position(), follower.head()
            statuses.append(
                ProjectionStatus(
                    name=follower.name,
                    mode="inline" if inline else "external",
                    position=position,
                    head=head,
                    lag=max(0, head - position),
                )
            )
        return statuses
