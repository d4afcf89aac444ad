"""GET /api/domain-check: SPF, DKIM, DMARC and MX findings for a From domain."""

from __future__ import annotations

from flask import jsonify
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, ConfigDict

from listmgr.services import domain_check
from listmgr.web.api.base import parse_query, route
from listmgr.web.extensions import current_runtime


class DomainQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    domain: str = ""  # checked by the service (a bad name: 400 bad_domain)


class RecordOut(BaseModel):
    name: str
    type: str
    value: str
    zone_line: str


class FindingOut(BaseModel):
    check: str
    status: str
    message: str
    record: RecordOut | None


class DomainReport(BaseModel):
    domain: str
    status: str
    findings: list[FindingOut]


@route(
    "/domain-check",
    permission="settings",
    query=DomainQuery,
    response=DomainReport,
    tag="settings",
)
def domain_check_api() -> ResponseReturnValue:
    """Check the DNS of a From domain (default: the configured sender's): SPF, DKIM, DMARC, MX,
    each finding with the record to publish; status is the worst finding."""
    query = parse_query(DomainQuery)
    return jsonify(domain_check.run(current_runtime(), query.domain or None).as_dict())
