"""Analytics read models over HTTP: administrators only, one organisation's numbers (ADR 11)."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Annotated, Any

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from application.analytics import (
    ENROLMENT_ADDED,
    ENROLMENT_REMOVED,
    ENROLMENT_STARTED,
    RECOVERY_COMPLETED,
    RECOVERY_OPENED,
    RISK,
    SMS_DELIVERED,
    SMS_FAILED,
    STEP_UP,
    DailyCount,
    ReadAnalytics,
)
from application.errors import InvalidRequestError
from application.organisations import Principal
from domain.assurance import PHISHING_RESISTANT_METHODS
from entrypoints.http.problems import COMMON, problems
from entrypoints.http.schemas import (
    AuthenticationDay,
    AuthenticationSeries,
    AuthenticationTotal,
    CoverageView,
    EnrolmentDay,
    EnrolmentSeries,
    LevelDay,
    OperationDay,
    RecoveryDay,
    RecoverySeries,
    RiskSeries,
    SmsDeliveryDay,
    SmsDeliverySeries,
    StepUpSeries,
)

Api = NamedDependency[Any]
From = Annotated[
    str | None,
    QueryParameter(name="from", format="date", description="First UTC day (YYYY-MM-DD)"),
]
To = Annotated[
    str | None,
    QueryParameter(name="to", format="date", description="Last UTC day, inclusive"),
]
SMS_NOTE = (
    "Per provider attempt: delivered means the provider took the message, unless its signed "
    "status callback later reported a failure; failed counts errors, timeouts and refusals "
    "before failover, and callbacks that reported a failure."
)
RECOVERY_NOTE = (
    "Account recovery is not recorded yet: this series fills in once recovery cases are "
    "events (the recovery issue). Nothing here is estimated."
)


def _day(value: str | None, name: str) -> date | None:
    if value is None:
        return None
    try:
        day: date = msgspec.convert(value, date)
    except msgspec.ValidationError:
        raise InvalidRequestError(f"{name!r} must be a day as YYYY-MM-DD") from None
    return day


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _pivot(rows: list[DailyCount]) -> dict[tuple[date, str], dict[str, int]]:
    table: dict[tuple[date, str], dict[str, int]] = defaultdict(dict)
    for row in rows:
        table[(row.day, row.label)][row.metric] = row.value
    return dict(sorted(table.items()))


def _daily(
    read_analytics: ReadAnalytics,
    principal: Principal,
    metrics: tuple[str, ...],
    since: str | None,
    until: str | None,
) -> list[DailyCount]:
    return read_analytics.daily(
        principal=principal, metrics=metrics, since=_day(since, "from"), until=_day(until, "to")
    )


class AnalyticsController(Controller):
    path = "/v1/analytics"
    tags = ["analytics"]
    security = [{"apiKey": []}]

    @get(
        "/enrolments",
        sync_to_thread=True,
        responses=problems(*COMMON, 403),
        summary="Administrators: enrolments started, added and removed per day and method",
    )
    def enrolments(
        self,
        principal: NamedDependency[Principal],
        read_analytics: Api,
        since: From = None,
        until: To = None,
    ) -> EnrolmentSeries:
        metrics = (ENROLMENT_STARTED, ENROLMENT_ADDED, ENROLMENT_REMOVED)
        rows = _daily(read_analytics, principal, metrics, since, until)
        return EnrolmentSeries(
            series=[
                EnrolmentDay(
                    day=day,
                    method=method,
                    started=counts.get(ENROLMENT_STARTED, 0),
                    added=counts.get(ENROLMENT_ADDED, 0),
                    removed=counts.get(ENROLMENT_REMOVED, 0),
                )
                for (day, method), counts in _pivot(rows).items()
            ]
        )

    @get(
        "/coverage",
        sync_to_thread=True,
        responses=problems(*COMMON, 403),
        summary="Administrators: share of users with an authenticator, or a phishing-resistant one",
    )
    def coverage(self, principal: NamedDependency[Principal], read_analytics: Api) -> CoverageView:
        use_case: ReadAnalytics = read_analytics
        found = use_case.coverage(principal=principal)
        return CoverageView(
            users=found.users,
            with_authenticator=found.with_authenticator,
            with_phishing_resistant=found.with_phishing_resistant,
            coverage=_rate(found.with_authenticator, found.users),
            phishing_resistant_coverage=_rate(found.with_phishing_resistant, found.users),
            phishing_resistant_methods=sorted(PHISHING_RESISTANT_METHODS),
        )

    @get(
        "/authentications",
        sync_to_thread=True,
        responses=problems(*COMMON, 403),
        summary="Administrators: attempts, successes and success rate per day and method",
    )
    def authentications(
        self,
        principal: NamedDependency[Principal],
        read_analytics: Api,
        since: From = None,
        until: To = None,
    ) -> AuthenticationSeries:
        use_case: ReadAnalytics = read_analytics
        days = use_case.authentications(
            principal=principal, since=_day(since, "from"), until=_day(until, "to")
        )
        totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        for d in days:
            total = totals[d.method]
            total[0], total[1], total[2] = (
                total[0] + d.attempts,
                total[1] + d.successes,
                total[2] + d.failures,
            )
        return AuthenticationSeries(
            series=[
                AuthenticationDay(
                    day=d.day,
                    method=d.method,
                    attempts=d.attempts,
                    successes=d.successes,
                    failures=d.failures,
                    success_rate=d.success_rate,
                )
                for d in days
            ],
            totals=[
                AuthenticationTotal(
                    method=method,
                    attempts=a,
                    successes=s,
                    failures=f,
                    success_rate=_rate(s, a),
                )
                for method, (a, s, f) in sorted(totals.items())
            ],
        )

    @get(
        "/risk",
        sync_to_thread=True,
        responses=problems(*COMMON, 403),
        summary="Administrators: logins started per day and risk level",
    )
    def risk(
        self,
        principal: NamedDependency[Principal],
        read_analytics: Api,
        since: From = None,
        until: To = None,
    ) -> RiskSeries:
        rows = _daily(read_analytics, principal, (RISK,), since, until)
        return RiskSeries(series=[LevelDay(day=r.day, level=r.label, count=r.value) for r in rows])

    @get(
        "/step-ups",
        sync_to_thread=True,
        responses=problems(*COMMON, 403),
        summary="Administrators: logins started for an operation, per day and operation",
    )
    def step_ups(
        self,
        principal: NamedDependency[Principal],
        read_analytics: Api,
        since: From = None,
        until: To = None,
    ) -> StepUpSeries:
        rows = _daily(read_analytics, principal, (STEP_UP,), since, until)
        return StepUpSeries(
            series=[OperationDay(day=r.day, operation=r.label, count=r.value) for r in rows]
        )

    @get(
        "/sms-delivery",
        sync_to_thread=True,
        responses=problems(*COMMON, 403),
        summary="Administrators: SMS delivery per provider and destination country",
    )
    def sms_delivery(
        self,
        principal: NamedDependency[Principal],
        read_analytics: Api,
        since: From = None,
        until: To = None,
    ) -> SmsDeliverySeries:
        rows = _daily(read_analytics, principal, (SMS_DELIVERED, SMS_FAILED), since, until)
        series = []
        for (day, label), counts in _pivot(rows).items():
            provider, _, country = label.partition("/")
            delivered, failed = counts.get(SMS_DELIVERED, 0), counts.get(SMS_FAILED, 0)
            series.append(
                SmsDeliveryDay(
                    day=day,
                    provider=provider,
                    country=country,
                    delivered=delivered,
                    failed=failed,
                    delivery_rate=_rate(delivered, delivered + failed),
                )
            )
        return SmsDeliverySeries(series=series, available=True, note=SMS_NOTE)

    @get(
        "/recovery",
        sync_to_thread=True,
        responses=problems(*COMMON, 403),
        summary="Administrators: recovery cases opened and completed (empty until recorded)",
    )
    def recovery(
        self,
        principal: NamedDependency[Principal],
        read_analytics: Api,
        since: From = None,
        until: To = None,
    ) -> RecoverySeries:
        metrics = (RECOVERY_OPENED, RECOVERY_COMPLETED)
        rows = _daily(read_analytics, principal, metrics, since, until)
        by_day: dict[date, dict[str, int]] = defaultdict(dict)
        for row in rows:
            by_day[row.day][row.metric] = by_day[row.day].get(row.metric, 0) + row.value
        series = [
            RecoveryDay(
                day=day, opened=c.get(RECOVERY_OPENED, 0), completed=c.get(RECOVERY_COMPLETED, 0)
            )
            for day, c in sorted(by_day.items())
        ]
        return RecoverySeries(series=series, available=False, note=RECOVERY_NOTE)
