"""Prometheus metrics for operators: HTTP traffic, verification outcomes, projection lag.

Each process keeps its own registry (ADR 11): with several uvicorn workers a scrape of
`/metrics` is answered by whichever worker accepts it, so HTTP and verification counters are
that worker's only. Projection lag and the store head are read from the database at scrape
time, so they are the same from every worker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from application.authentications import Outcome, Verifier
from application.errors import InvalidCodeError, ThrottledError
from application.projections import ProjectionFollower

log = logging.getLogger("tessera.metrics")

#: Request latency buckets in seconds: a verification takes milliseconds, a slow one a second.
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ProjectionCollector(Collector):
    """Reads projection positions and the event store head at scrape time."""

    def __init__(self, followers: Callable[[], Sequence[ProjectionFollower]]) -> None:
        self._followers = followers

    def collect(self) -> Iterable[Metric]:
        lag = GaugeMetricFamily(
            "tessera_projection_lag_events",
            "Events recorded but not yet applied to a read model",
            labels=["projection"],
        )
        position = GaugeMetricFamily(
            "tessera_projection_position",
            "The last event position a read model applied",
            labels=["projection"],
        )
        head = GaugeMetricFamily(
            "tessera_event_store_head", "The event store's last notification id"
        )
        try:
            followers = list(self._followers())
            store_head = followers[0].head() if followers else 0
            for follower in followers:
                applied = follower.position()
                position.add_metric([follower.name], applied)
                lag.add_metric([follower.name], max(0, store_head - applied))
            head.add_metric([], store_head)
        except Exception:  # a scrape must answer even when the store does not
            log.exception("could not read projection positions for /metrics")
            return
        yield from (lag, position, head)


class Metrics:
    """One process's registry and the instruments the HTTP layer and the verifier update."""

    def __init__(self, followers: Callable[[], Sequence[ProjectionFollower]] | None = None) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "tessera_http_requests",
            "HTTP requests by method, route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tessera_http_request_duration_seconds",
            "Time from request to the end of the response, by method and route template",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.verifications = Counter(
            "tessera_verifications",
            "Codes judged, by outcome: satisfied, pending, invalid_code, throttled",
            ["outcome"],
            registry=self.registry,
        )
        for outcome in ("satisfied", "pending", "invalid_code", "throttled"):
            self.verifications.labels(outcome)  # present at zero before the first one
        self._watching = False
        if followers is not None:
            self.watch_projections(followers)

    def watch_projections(self, followers: Callable[[], Sequence[ProjectionFollower]]) -> None:
        """Report these projections' lag at each scrape (once per registry)."""
        if not self._watching:
            self.registry.register(ProjectionCollector(followers))
            self._watching = True

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def asgi_middleware(self, app: Any) -> Any:
        """Times every routed HTTP request; labels it by route template (`/v1/feeds/{name}`),
        never by raw path, so ids never create series. Paths that match no route are answered
        by the router before any middleware and are not counted."""

        async def middleware(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            started = time.perf_counter()
            status = 500
            done = False

            def observe() -> None:
                nonlocal done
                if not done:
                    done = True
                    route = scope.get("path_template") or "unmatched"
                    method = scope.get("method", "GET")
                    self.observe_request(method, route, status, time.perf_counter() - started)

            async def send_and_note(message: Any) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                elif message["type"] == "http.response.body" and not message.get("more_body"):
                    observe()  # before the last byte leaves, so a client's next scrape sees it
                await send(message)

            try:
                await app(scope, receive, send_and_note)
            finally:
                observe()

        return middleware


@dataclass(frozen=True, slots=True)
class MeteredVerifier(Verifier):
    """The verifier, counting each judged code by outcome."""

    metrics: Metrics | None = None

    def verify(self, session: Any, **kwargs: Any) -> Outcome:
        try:
            outcome = Verifier.verify(self, session, **kwargs)
        except InvalidCodeError:
            self._count("invalid_code")
            raise
        except ThrottledError:
            self._count("throttled")
            raise
        self._count("satisfied" if outcome.session.status == "satisfied" else "pending")
        return outcome

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.verifications.labels(outcome).inc()
