"""A first rule-based risk assessor; the risk issue adds device, location and reputation."""

from __future__ import annotations

import ipaddress
from datetime import datetime
from uuid import UUID

from application.ports import RequestContext, RiskAssessment


class RuleBasedRiskAssessor:
    """Scores what the request itself shows; every context is low risk unless a rule fires.

    Rules today: an IP address that does not parse, and a missing user agent, each add
    reasons and score, but neither alone leaves "low". They are the seam the fuller risk
    engine replaces; the assessment and the policy's decision on it are recorded already.
    """

    def assess(
        self, *, org_id: UUID, user_id: str, context: RequestContext, at: datetime
    ) -> RiskAssessment:
        score, reasons = 0, []
        try:
            ipaddress.ip_address(context.ip)
        except ValueError:
            score += 10
            reasons.append("ip_unparseable")
        if not context.user_agent.strip():
            score += 10
            reasons.append("user_agent_missing")
        level = "high" if score >= 70 else "medium" if score >= 40 else "low"
        return RiskAssessment(score=score, level=level, reasons=reasons)
