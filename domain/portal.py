"""PortalSession: a user's visit to the self-service portal, from one-time link to sign-out."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

#: How long the one-time link an application creates stays usable.
LINK_TTL = timedelta(minutes=5)
#: The browser session the link turns into: 15 minutes idle, 1 hour at most.
IDLE_TIMEOUT = timedelta(minutes=15)
ABSOLUTE_TIMEOUT = timedelta(hours=1)
#: How long verifying an existing factor allows adding and removing authenticators.
VERIFICATION_TTL = timedelta(minutes=5)
#: Activity is recorded at most this often (enough for the idle timeout, few events).
ACTIVITY_STEP = timedelta(minutes=1)
MAX_USER_ID = 256
MAX_RETURN_URL = 2048


class PortalError(Exception):
    """Base class of the errors a portal session raises."""


class PortalLinkError(PortalError):
    """The link is unknown, already used or expired (the answer never says which)."""


class PortalSessionClosedError(PortalError):
    """The browser session was signed out, replaced, or timed out."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the portal session has ended ({reason})")
        self.reason = reason


class PortalSession(Aggregate):
    """One visit to the self-service portal.

    Rules: the link works once and for LINK_TTL; only its SHA-256 is kept, and the aggregate's
    id derives from that hash, so the link itself finds its session. Redeeming it opens a
    browser session, known by the hash of a second random token, that ends after IDLE_TIMEOUT
    without activity, ABSOLUTE_TIMEOUT after redemption, or when the user signs out. A factor
    verified during the session allows adding and removing authenticators for
    VERIFICATION_TTL.
    """

    id: UUID

    class Issued(Aggregate.Created):
        org_id: UUID
        user_id: str
        link_hash: str
        expires_at: datetime
        return_url: str | None
        by: str
        at: datetime

    class Redeemed(Aggregate.Event):
        session_hash: str
        at: datetime

    class ActivityRecorded(Aggregate.Event):
        at: datetime

    class FactorVerified(Aggregate.Event):
        method: str
        enrolment_id: UUID
        authentication_id: UUID
        at: datetime

    class SetupStarted(Aggregate.Event):
        """The user began adding an authenticator here; only such a setup can finish here."""

        enrolment_id: UUID
        method: str
        at: datetime

    class Ended(Aggregate.Event):
        reason: str  # "signed_out" | "replaced" | "idle" | "expired"
        at: datetime

    @staticmethod
    def create_id(link_hash: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"tessera:portal:{link_hash}")

    @event(Issued)
    def __init__(
        self,
        *,
        org_id: UUID,
        user_id: str,
        link_hash: str,
        expires_at: datetime,
        return_url: str | None,
        by: str,
        at: datetime,
    ) -> None:
        self.org_id = org_id
        self.user_id = user_id
        self.link_hash: str | None = link_hash
        self.link_expires_at = expires_at
        self.return_url = return_url
        self.issued_at = at
        self.status = "issued"  # -> "active" -> "ended"
        self.session_hash: str | None = None
        self.redeemed_at: datetime | None = None
        self.last_seen: datetime | None = None
        self.verified_at: datetime | None = None
        self.verified_method: str | None = None
        self.end_reason: str | None = None
        self.setups: list[UUID] = []

    @classmethod
    def issue(
        cls,
        *,
        link_hash: str,
        org_id: UUID,
        user_id: str,
        return_url: str | None,
        by: str,
        at: datetime,
    ) -> PortalSession:
        if not 1 <= len(user_id) <= MAX_USER_ID or not user_id.isprintable():
            raise PortalError(f"a user id has 1 to {MAX_USER_ID} printable characters")
        if return_url is not None and not _is_web_url(return_url):
            raise PortalError(
                f"a return_url is an absolute http(s) URL of at most {MAX_RETURN_URL} characters"
            )
        return cls(  # type: ignore[call-arg]  # eventsourcing accepts id= for annotated ids
            id=cls.create_id(link_hash),
            org_id=org_id,
            user_id=user_id,
            link_hash=link_hash,
            expires_at=at + LINK_TTL,
            return_url=return_url,
            by=by,
            at=at,
        )

    # --- queries -------------------------------------------------------------------------

    @property
    def expires_at(self) -> datetime | None:
        """When the browser session ends at the latest (None before redemption)."""
        return None if self.redeemed_at is None else self.redeemed_at + ABSOLUTE_TIMEOUT

    def verification_fresh(self, *, at: datetime) -> bool:
        return self.verified_at is not None and at - self.verified_at < VERIFICATION_TTL

    @property
    def verified_until(self) -> datetime | None:
        return None if self.verified_at is None else self.verified_at + VERIFICATION_TTL

    # --- commands ------------------------------------------------------------------------

    def redeem(self, link_hash: str, *, session_hash: str, at: datetime) -> None:
        """Use up the link: the browser session known by `session_hash` begins."""
        if self.status != "issued" or self.link_hash != link_hash or at >= self.link_expires_at:
            raise PortalLinkError("the portal link is not valid")
        self._redeem(session_hash=session_hash, at=at)

    def resume(self, session_hash: str, *, at: datetime) -> None:
        """Check a request's session and note the activity; raises once it has ended.

        An idle or too old session records its end before raising, so the caller saves it.
        """
        if self.status != "active" or self.session_hash != session_hash:
            raise PortalSessionClosedError(self.end_reason or "unknown")
        assert self.redeemed_at is not None and self.last_seen is not None
        if at - self.redeemed_at >= ABSOLUTE_TIMEOUT:
            self._end(reason="expired", at=at)
        elif at - self.last_seen >= IDLE_TIMEOUT:
            self._end(reason="idle", at=at)
        if self.status != "active":
            raise PortalSessionClosedError(self.end_reason or "unknown")
        if at - self.last_seen >= ACTIVITY_STEP:
            self._record_activity(at=at)

    def record_verification(
        self, *, method: str, enrolment_id: UUID, authentication_id: UUID, at: datetime
    ) -> None:
        """The user proved possession of an existing factor through a login ceremony."""
        if self.status != "active":
            raise PortalSessionClosedError(self.end_reason or "unknown")
        self._verify_factor(
            method=method, enrolment_id=enrolment_id, authentication_id=authentication_id, at=at
        )

    def record_setup(self, *, enrolment_id: UUID, method: str, at: datetime) -> None:
        if self.status != "active":
            raise PortalSessionClosedError(self.end_reason or "unknown")
        self._start_setup(enrolment_id=enrolment_id, method=method, at=at)

    def end(self, reason: str, *, at: datetime) -> None:
        if self.status == "ended":
            return
        self._end(reason=reason, at=at)

    # --- state changes (replayed from events: no checks here) ----------------------------

    @event(Redeemed)
    def _redeem(self, session_hash: str, at: datetime) -> None:
        self.status = "active"
        self.link_hash = None
        self.session_hash = session_hash
        self.redeemed_at = self.last_seen = at

    @event(ActivityRecorded)
    def _record_activity(self, at: datetime) -> None:
        self.last_seen = at

    @event(FactorVerified)
    def _verify_factor(
        self, method: str, enrolment_id: UUID, authentication_id: UUID, at: datetime
    ) -> None:
        self.verified_at = self.last_seen = at
        self.verified_method = method

    @event(SetupStarted)
    def _start_setup(self, enrolment_id: UUID, method: str, at: datetime) -> None:
        self.setups = [*self.setups, enrolment_id]
        self.last_seen = at

    @event(Ended)
    def _end(self, reason: str, at: datetime) -> None:
        self.status = "ended"
        self.end_reason = reason
        self.session_hash = None
        self.link_hash = None


def _is_web_url(url: str) -> bool:
    scheme, sep, rest = url.partition("://")
    return (
        len(url) <= MAX_RETURN_URL
        and sep == "://"
        and scheme.lower() in ("http", "https")
        and rest[:1] not in ("", "/")
        and url.isprintable()
        and " " not in url
    )
