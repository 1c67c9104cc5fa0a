"""The rules of the business, one plain function per act.

Every function takes a SQLAlchemy ``Session`` (plus a ``Keyring`` when it touches templates)
and explicit arguments, raises the typed errors of ``facegate.errors``, and is one unit of
work: it commits the change together with its audit entry, or rolls back and records the
refusal. The CLI, the API and the web pages all call these; adapters hold no rule.
"""

from facegate.domain.common import (
    NOTIFY_CHANNEL,
    changes_since,
    get_person,
    get_site,
    is_under_14,
)
from facegate.domain.consent import (
    WithdrawResult,
    decline_face,
    record_consent,
    valid_consent,
    withdraw,
)
from facegate.domain.credentials import (
    API_SCOPES,
    IssuedCredential,
    create_api_key,
    issue_card,
    issue_pin,
    issue_qr_pass,
    issue_visitor_pass,
    lookup_api_key,
    parse_qr_token,
    qr_secret_matches,
    revoke_api_key,
    verify_pin_hash,
)
from facegate.domain.enrollment import (
    EnrollResult,
    FacePipeline,
    GalleryEntry,
    build_site_gallery,
    enroll,
    load_gallery_entries,
)
from facegate.domain.events import record_access_event, record_access_event_in_tx
from facegate.domain.notice import (
    NOTICE_FIELDS,
    RECONSENT_TRIGGERS,
    build_notice_fields,
    current_notice,
    publish_notice,
    publish_site_notice,
    render_notice_text,
    site_notice_fields,
)
from facegate.domain.people import (
    InitResult,
    add_access_point,
    add_person,
    count_persons_with_templates,
    init_site,
    link_guardian,
    list_persons,
    person_summary,
)
from facegate.domain.queries import (
    get_access_point,
    list_access_events,
    list_access_points,
    list_api_keys,
)
from facegate.domain.retention import (
    PurgeResult,
    RotateResult,
    mark_seen,
    purge_expired,
    retention_deadline,
    rotate_keys,
)
from facegate.domain.rights import (
    EraseResult,
    correct,
    erase,
    export_my_data,
    list_rights_requests,
    reject_rights_request,
    submit_rights_request,
)

__all__ = [
    "get_access_point",
    "list_access_events",
    "list_access_points",
    "list_api_keys",
    "EraseResult",
    "PurgeResult",
    "RotateResult",
    "correct",
    "erase",
    "export_my_data",
    "list_rights_requests",
    "mark_seen",
    "purge_expired",
    "record_access_event",
    "record_access_event_in_tx",
    "reject_rights_request",
    "retention_deadline",
    "rotate_keys",
    "submit_rights_request",
    "API_SCOPES",
    "NOTICE_FIELDS",
    "NOTIFY_CHANNEL",
    "RECONSENT_TRIGGERS",
    "EnrollResult",
    "FacePipeline",
    "GalleryEntry",
    "InitResult",
    "IssuedCredential",
    "WithdrawResult",
    "add_access_point",
    "changes_since",
    "decline_face",
    "add_person",
    "build_notice_fields",
    "build_site_gallery",
    "count_persons_with_templates",
    "create_api_key",
    "current_notice",
    "enroll",
    "get_person",
    "get_site",
    "init_site",
    "is_under_14",
    "issue_card",
    "issue_pin",
    "issue_qr_pass",
    "issue_visitor_pass",
    "link_guardian",
    "list_persons",
    "load_gallery_entries",
    "lookup_api_key",
    "parse_qr_token",
    "person_summary",
    "publish_notice",
    "publish_site_notice",
    "site_notice_fields",
    "qr_secret_matches",
    "record_consent",
    "render_notice_text",
    "revoke_api_key",
    "valid_consent",
    "verify_pin_hash",
    "withdraw",
]
