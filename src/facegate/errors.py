"""Typed errors with a stable machine code and a message a person can act on.

Every adapter (CLI, API, web) renders these the same way: the API as JSON
``{"code", "message"}`` with ``http_status``, the CLI as a message on stderr and a
non-zero exit. Add new errors here so codes stay unique and documented in one place.
"""

from __future__ import annotations


class FacegateError(Exception):
    """Base of every error facegate raises on purpose."""

    code: str = "error"
    http_status: int = 400

    # The message in Chinese, for pages and documents read in zh-CN (``web.common.
    # refusal_words``); None where the page has its own words for the code.
    zh: str | None = None

    def __init__(
        self, message: str | None = None, *, zh: str | None = None, **details: object
    ) -> None:
        self.message = message or self.__doc__ or self.code
        if zh is not None:
            self.zh = zh
        self.details = details
        super().__init__(self.message)

    def to_dict(self) -> dict[str, object]:
        body: dict[str, object] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


# --- input and images -------------------------------------------------------------------------


class InvalidInput(FacegateError):
    """The input is not valid."""

    code = "invalid_input"
    http_status = 422


class ImageDecodeError(FacegateError):
    """The data is not a readable image (corrupt, truncated, empty or another file type)."""

    code = "image_decode_error"
    http_status = 400


class ImageTooLarge(FacegateError):
    """The image is larger than the configured byte or pixel limit."""

    code = "image_too_large"
    http_status = 413


class ImageTooSmall(FacegateError):
    """The image is smaller than the minimum size a face can be found in."""

    code = "image_too_small"
    http_status = 400


class NoFaceFound(FacegateError):
    """No usable face was found in the image."""

    code = "no_face"
    http_status = 422


class ModelIntegrityError(FacegateError):
    """A model file is missing or its SHA-256 differs from the pinned digest."""

    code = "model_integrity"
    http_status = 500


class ModelMismatch(FacegateError):
    """Templates made by different models cannot be compared; re-enrollment is needed."""

    code = "model_mismatch"
    http_status = 409


# --- people, consent and rules -----------------------------------------------------------------


class NotFound(FacegateError):
    """The requested object does not exist."""

    code = "not_found"
    http_status = 404


class Conflict(FacegateError):
    """The request conflicts with the current state."""

    code = "conflict"
    http_status = 409


class ConsentRequired(FacegateError):
    """Face processing needs the person's separate, active consent first (CAC-FR-06a)."""

    code = "consent_required"
    http_status = 409


class GuardianConsentRequired(ConsentRequired):
    """A child under 14 needs a guardian's consent before any face processing (CAC-FR-07)."""

    code = "guardian_consent_required"


class DuplicateFace(FacegateError):
    """This face already matches another enrolled person; an operator must review it."""

    code = "duplicate_face"
    http_status = 409


class ProhibitedUse(FacegateError):
    """This use of face data is prohibited (purpose lock); the message names the rule."""

    code = "prohibited_use"
    http_status = 403


class ComplianceBlocked(FacegateError):
    """A blocking compliance rule fails; the message lists the rules to fix first."""

    code = "compliance_blocked"
    http_status = 409


class HolidayDataMissing(FacegateError):
    """The PRC holiday calendar has no data for this year, so working days cannot be counted."""

    code = "holiday_data_missing"
    http_status = 503


# --- authentication and capacity ---------------------------------------------------------------


class Unauthorized(FacegateError):
    """A valid credential is required."""

    code = "unauthorized"
    http_status = 401


class Forbidden(FacegateError):
    """The credential is valid but not allowed to do this."""

    code = "forbidden"
    http_status = 403


class Busy(FacegateError):
    """The server is at capacity; retry shortly."""

    code = "busy"
    http_status = 503


class DatabaseUnavailable(FacegateError):
    """The database is away (stopped, unreachable or not answering in time); only decisions
    at the doors go on, from the gate's memory. Retry when it is back."""

    code = "database_unavailable"
    http_status = 503

    def __init__(self, message: str | None = None, retry_after: int = 5, **details: object):
        super().__init__(
            message
            or "the database is away (not reachable or not answering in time); gates keep "
            "deciding from memory, everything else waits until it is back. Retry later.",
            retry_after=retry_after,
            **details,
        )


class DecisionUnavailable(FacegateError):
    """No decision was made within the deadline; treat it as a refusal (the door stays shut)."""

    code = "decision_unavailable"
    http_status = 503

    def __init__(self, message: str | None = None, retry_after: int = 1, **details: object):
        super().__init__(message, retry_after=retry_after, **details)


class DecisionAbandoned(FacegateError):
    """The caller stopped waiting before the decision was recorded; nothing was recorded."""

    code = "decision_abandoned"
    http_status = 503


class AlreadyServing(FacegateError):
    """Another facegate process already serves this SQLite database."""

    code = "already_serving"
    http_status = 409


# --- HTTP input ---------------------------------------------------------------------------------


class PayloadTooLarge(FacegateError):
    """The request body is larger than the configured upload limit."""

    code = "payload_too_large"
    http_status = 413


class UnsupportedMediaType(FacegateError):
    """The request body has a content type this route does not accept."""

    code = "unsupported_media_type"
    http_status = 415


# --- people store, keys and audit ----------------------------------------------------------------


class EnrollmentNotAllowed(FacegateError):
    """This person cannot have a face template (e.g. a visitor: single use, none kept)."""

    code = "enrollment_not_allowed"
    http_status = 409


class LowQuality(FacegateError):
    """The face is not good enough to enroll; the details say why (e.g. too small, blurred)."""

    code = "low_quality"
    http_status = 422


class KeyUnavailable(FacegateError):
    """The site key is missing, unreadable or unsafe; templates cannot be read or written."""

    code = "key_unavailable"
    http_status = 500


class AuditChainBroken(FacegateError):
    """The audit log's hash chain is broken; the details name the first bad entry."""

    code = "audit_chain_broken"
    http_status = 500


# --- web console ----------------------------------------------------------------------------------


class LoginThrottled(FacegateError):
    """Too many failed sign-ins for this user name or from this address: wait a little and try
    again (CAC-FR-14). The same answer whether or not the account exists."""

    code = "login_throttled"
    http_status = 429

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            f"too many failed sign-ins; wait {retry_after_s} seconds and try again",
            retry_after_s=retry_after_s,
        )
        self.retry_after_s = retry_after_s


class SetupCodeInvalid(FacegateError):
    """The first-run setup code is wrong, used or expired."""

    code = "setup_code_invalid"
    http_status = 403


class CsrfRejected(FacegateError):
    """The form's anti-forgery token is missing or wrong; reload the page and try again."""

    code = "csrf_rejected"
    http_status = 403


class InvitationInvalid(FacegateError):
    """This invitation link has expired or was already used; ask the front desk for a new one."""

    code = "invitation_invalid"
    http_status = 403


# --- notice completeness (issue 13 item 16, issue 16 item 2) ---------------------------------


class NoticeIncomplete(FacegateError):
    """The notice lacks a required field: it is a draft and cannot be published (CAC-FR-05a)."""

    code = "notice_incomplete"
    http_status = 422


class ConsentNotInformed(FacegateError):
    """The notice people would consent to lacks a required field: the consent would not be
    informed, so it is refused (CAC-FR-05a, CAC-FR-06a)."""

    code = "consent_not_informed"
    http_status = 409


# --- object limits (issue 13 item 18) -----------------------------------------------------------


class LimitReached(FacegateError):
    """The site already holds as many of these objects as its configured limit allows."""

    code = "limit_reached"
    http_status = 409


# --- liveness (issue 14) --------------------------------------------------------------------------


class LivenessFailed(FacegateError):
    """The camera did not see a live person (a photo or a screen); never says which signal."""

    code = "liveness_failed"
    http_status = 422


class ChallengeExpired(FacegateError):
    """The liveness challenge was not answered in time, was already used, or belongs to
    another enrollment or access point: ask for a new prompt (issue 14 item 3)."""

    code = "challenge_expired"
    http_status = 422
