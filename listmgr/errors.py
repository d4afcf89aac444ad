"""Domain exceptions, each with a stable code for the API and a human message."""

from __future__ import annotations


class ListmgrError(Exception):
    """Base of every error listmgr reports to a person or a client."""

    code = "error"
    status = 400

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        code: str | None = None,
        detail: object = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.detail = detail
        if code:
            self.code = code

    def to_dict(self) -> dict[str, object]:
        body: dict[str, object] = {"code": self.code, "message": self.message}
        if self.field:
            body["field"] = self.field
        if self.detail is not None:
            body["detail"] = self.detail
        return body


class ConfigError(ListmgrError):
    code = "config"
    status = 500


class ValidationError(ListmgrError):
    code = "invalid"
    status = 422


class NotFound(ListmgrError):
    code = "not_found"
    status = 404


class Conflict(ListmgrError):
    code = "conflict"
    status = 409


class Forbidden(ListmgrError):
    code = "forbidden"
    status = 403


class Unauthorized(ListmgrError):
    code = "unauthorized"
    status = 401


class TokenInvalid(ListmgrError):
    code = "token_invalid"
    status = 400


class TokenUsed(TokenInvalid):
    """A single-use link (confirmation, export, erasure) that has done its work already."""

    code = "token_used"


class TokenReplaced(TokenInvalid):
    """A link from before the subscriber (or an admin) ended all older links."""

    code = "token_replaced"


class TokenExpired(ListmgrError):
    code = "token_expired"
    status = 400


class Suppressed(ListmgrError):
    code = "suppressed"
    status = 409


class TemplateError(ValidationError):
    code = "template_error"


class SegmentError(ValidationError):
    code = "segment_error"


class TooLarge(ListmgrError):
    code = "too_large"
    status = 413


class RateLimited(ListmgrError):
    code = "rate_limited"
    status = 429


class Blocked(ValidationError):
    """The campaign checklist has blockers: the mail would be broken or harm the sender."""

    code = "checklist_blocked"


class BadDomain(ListmgrError):
    """A typed domain name that cannot be looked up."""

    code = "bad_domain"
    status = 400
