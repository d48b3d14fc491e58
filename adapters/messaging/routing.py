"""`CodeSender`: routing rules choose the providers, failover and circuit breakers keep codes
moving when one of them is down."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from adapters.messaging.base import Provider, ProviderError
from adapters.messaging.templates import TemplateCatalogue, check_webotp_domain
from application.ports import DeliveryAttempt, DeliveryReport, OutboundCode

log = logging.getLogger("tessera.messaging")

CHANNELS = frozenset({"sms", "voice", "email"})


@dataclass(frozen=True, slots=True)
class RoutingRule:
    """Providers to try, in order, for messages that match every condition given. A missing
    condition matches anything; carriers compare case-insensitively (a carrier is a hint: it
    is the number's original allocation, wrong after porting)."""

    providers: tuple[str, ...]
    regions: frozenset[str] | None = None
    carriers: frozenset[str] | None = None
    channels: frozenset[str] | None = None

    def matches(self, message: OutboundCode) -> bool:
        if self.channels is not None and message.channel not in self.channels:
            return False
        if self.regions is not None and (message.region or "").upper() not in self.regions:
            return False
        carrier = (message.carrier or "").casefold()
        return self.carriers is None or carrier in self.carriers

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> RoutingRule:
        """`{"regions": ["DE"], "carriers": ["Vodafone"], "channels": ["sms"],
        "providers": ["vonage", "twilio"]}`; only `providers` is required."""
        unknown = set(data) - {"providers", "regions", "carriers", "channels"}
        if unknown:
            raise ValueError(f"unknown routing rule keys: {sorted(unknown)}")
        providers = _strings(data.get("providers"), "providers")
        if not providers:
            raise ValueError("a routing rule needs at least one provider")

        def condition(key: str, fold: Callable[[str], str]) -> frozenset[str] | None:
            if data.get(key) is None:
                return None
            return frozenset(fold(v) for v in _strings(data[key], key))

        channels = condition("channels", str.lower)
        if channels is not None and not channels <= CHANNELS:
            raise ValueError(f"channels must be among {sorted(CHANNELS)}")
        return cls(
            providers=tuple(providers),
            regions=condition("regions", str.upper),
            carriers=condition("carriers", str.casefold),
            channels=channels,
        )


def _strings(value: Any, key: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{key} must be a list of non-empty strings")
    return list(value)


def rules_from_json(text: str) -> list[RoutingRule]:
    """Routing rules from a JSON list (a file or `TESSERA_MESSAGING_ROUTES`)."""
    data = json.loads(text)
    if not isinstance(data, list):
        raise ValueError("routing rules are a JSON list of objects")
    return [RoutingRule.from_mapping(item) for item in data]


class CircuitBreaker:
    """Closed until `failure_threshold` consecutive provider faults; then open (the provider
    is skipped) for `cooldown_seconds`; then half-open: one message probes it, and the probe's
    outcome closes or re-opens the breaker. Thread-safe."""

    def __init__(
        self,
        *,
        failure_threshold: int = 3,
        cooldown_seconds: float = 30.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or cooldown_seconds < 0:
            raise ValueError("the threshold must be >= 1 and the cool-down >= 0")
        self._threshold = failure_threshold
        self._cooldown = cooldown_seconds
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> str:
        with self._lock:
            if self._opened_at is None:
                return "closed"
            if self._probing or self._monotonic() - self._opened_at >= self._cooldown:
                return "half_open"
            return "open"

    def allow(self) -> bool:
        """Whether a message may be handed to the provider now (claims the half-open probe)."""
        with self._lock:
            if self._opened_at is None:
                return True
            if self._probing or self._monotonic() - self._opened_at < self._cooldown:
                return False
            self._probing = True
            return True

    def success(self) -> None:
        with self._lock:
            self._failures, self._opened_at, self._probing = 0, None, False

    def failure(self) -> bool:
        """Record a provider fault; True when this opened (or re-opened) the breaker."""
        with self._lock:
            self._failures += 1
            if self._probing or (self._opened_at is None and self._failures >= self._threshold):
                self._opened_at, self._probing = self._monotonic(), False
                return True
            return False


class RoutedCodeSender:
    """`CodeSender` over named providers.

    The provider order for a message is the first matching rule's list, else `default_order`
    (else the providers in the order given); providers that cannot carry the channel are left
    out, so one order serves SMS, voice and email alike. Each provider is tried in turn until
    one accepts; an error, a timeout, a 5xx, a malformed answer or an open circuit breaker moves
    on to the next. Every try, skipped ones included, is in the report; provider failures never
    raise. The report and the log hold provider names and short reasons, never the code."""

    def __init__(
        self,
        providers: Sequence[Provider],
        *,
        templates: TemplateCatalogue,
        rules: Iterable[RoutingRule] = (),
        default_order: Sequence[str] | None = None,
        failure_threshold: int = 3,
        cooldown_seconds: float = 30.0,
        webotp_domain: str | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._providers = {p.name: p for p in providers}
        if len(self._providers) != len(providers):
            raise ValueError("provider names must be unique")
        self._rules = tuple(rules)
        self._default = tuple(default_order) if default_order else tuple(self._providers)
        for order in [self._default, *(r.providers for r in self._rules)]:
            missing = [name for name in order if name not in self._providers]
            if missing:
                raise ValueError(f"routing names unknown providers: {missing}")
        self._templates = templates
        self._webotp = check_webotp_domain(webotp_domain) if webotp_domain else None
        self._monotonic = monotonic
        self.breakers = {
            name: CircuitBreaker(
                failure_threshold=failure_threshold,
                cooldown_seconds=cooldown_seconds,
                monotonic=monotonic,
            )
            for name in self._providers
        }

    def order(self, message: OutboundCode) -> list[str]:
        """The provider names a message would be tried with, first to last."""
        names = next((r.providers for r in self._rules if r.matches(message)), self._default)
        return [n for n in names if message.channel in self._providers[n].channels]

    def send(self, message: OutboundCode) -> DeliveryReport:
        content = self._templates.render(message, webotp_domain=self._webotp)
        attempts: list[DeliveryAttempt] = []
        for name in self.order(message):
            breaker = self.breakers[name]
            if not breaker.allow():
                attempts.append(DeliveryAttempt(name, accepted=False, error="circuit open"))
                continue
            started = self._monotonic()
            error: str
            try:
                accepted = self._providers[name].send(message, content)
            except ProviderError as refused:
                error, fault = refused.reason, refused.provider_fault
            except Exception as bug:  # a provider's bug must not lose the code
                error, fault = f"unexpected {type(bug).__name__}", True
            else:
                breaker.success()
                attempts.append(
                    DeliveryAttempt(
                        name,
                        accepted=True,
                        provider_message_id=accepted.provider_message_id,
                        elapsed_ms=self._elapsed(started),
                    )
                )
                break
            if fault and breaker.failure():
                log.warning("provider %s: circuit breaker opened", name)
            elif not fault:
                breaker.success()  # it answered: the provider works, the message did not
            attempts.append(
                DeliveryAttempt(
                    name, accepted=False, error=error, elapsed_ms=self._elapsed(started)
                )
            )
            log.warning(
                "message %s (%s) not taken by %s: %s",
                message.message_id,
                message.channel,
                name,
                error,
            )
        if not attempts:
            attempts.append(
                DeliveryAttempt(
                    "none", accepted=False, error=f"no provider carries {message.channel}"
                )
            )
        return DeliveryReport(tuple(attempts))

    def _elapsed(self, started: float) -> int:
        return max(0, round((self._monotonic() - started) * 1000))

    def close(self) -> None:
        for provider in self._providers.values():
            close = getattr(provider, "close", None)
            if callable(close):
                close()
