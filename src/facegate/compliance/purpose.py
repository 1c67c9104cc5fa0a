"""Purpose lock: access control is the only use of face data (ARCHITECTURE principle 5).

Every other use is refused with ``ProhibitedUse`` naming the rule it breaks. Unknown uses are
refused too: the allow-list is closed, so a new feature must be added here on purpose.
"""

from __future__ import annotations

from facegate.errors import ProhibitedUse

ALLOWED_USES: frozenset[str] = frozenset({"access_control"})

# use -> rule ids it breaks, the first one named in the refusal.
PROHIBITED_USES: dict[str, tuple[str, ...]] = {
    # CAC-DRAFT23-1, STD-41819-01: no attribute inference of any kind.
    "attribute_analysis": ("CAC-DRAFT23-1", "STD-41819-01"),
    "age_estimation": ("CAC-DRAFT23-1", "STD-41819-01"),
    "gender_estimation": ("CAC-DRAFT23-1", "STD-41819-01"),
    "emotion_recognition": ("CAC-DRAFT23-1", "STD-41819-01"),
    "ethnicity_inference": ("CAC-DRAFT23-1", "STD-41819-01"),
    "attention_monitoring": ("CAC-DRAFT23-1", "STD-41819-01"),
    "customer_profiling": ("CAC-DRAFT23-1", "STD-41819-01", "PIPL-26"),
    # CAC-FR-04: purpose limitation; no search of history by face.
    "history_search_by_face": ("CAC-FR-04", "STD-41819-01"),
    # CAC-DRAFT23-2: no watch-lists, tracking or passive identification.
    "watch_list": ("CAC-DRAFT23-2",),
    "tracking": ("CAC-DRAFT23-2", "PIPL-26"),
    "visitor_identification": ("PIPL-26", "CAC-DRAFT23-2"),
    # TJ-16: no face data or access history into credit, blacklist or rating.
    "credit_export": ("TJ-16",),
    "arrears_blocking": ("TJ-16",),
    # PIPL-26: images captured in public places are for public security only.
    "marketing_export": ("PIPL-26", "STD-41819-01"),
    "footfall_analytics": ("PIPL-26", "STD-41819-01"),
    "staff_monitoring": ("PIPL-26", "STD-41819-01"),
    # CAC-FR-02: no copying of production faces into training or datasets.
    "dataset_export": ("CAC-FR-02",),
    "model_training": ("CAC-FR-02",),
}


def rules_for_use(use: str) -> tuple[str, ...]:
    """The rule ids a use breaks; empty for an allowed use. Unknown uses break CAC-FR-04."""
    if use in ALLOWED_USES:
        return ()
    return PROHIBITED_USES.get(use, ("CAC-FR-04",))


def require_allowed_use(use: str) -> None:
    """Raise ``ProhibitedUse`` naming the rule unless ``use`` is access control."""
    rules = rules_for_use(use)
    if not rules:
        return
    raise ProhibitedUse(
        f"'{use}' is not an allowed use of face data: facegate processes faces for access "
        f"control only ({', '.join(rules)}).",
        use=use,
        rules=list(rules),
    )
