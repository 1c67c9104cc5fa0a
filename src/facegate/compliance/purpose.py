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
    # TJ-16 (Tianjin only): no face data or access history into credit, blacklist or rating;
    # everywhere it is beyond the purpose (CAC-FR-04) and assesses economic status (STD-41819-01).
    "credit_export": ("TJ-16", "CAC-FR-04", "STD-41819-01"),
    "arrears_blocking": ("TJ-16", "CAC-FR-04", "STD-41819-01"),
    # PIPL-26: images captured in public places are for public security only.
    "marketing": ("PIPL-26", "STD-41819-01"),
    "marketing_export": ("PIPL-26", "STD-41819-01"),
    "footfall_analytics": ("PIPL-26", "STD-41819-01"),
    "staff_monitoring": ("PIPL-26", "STD-41819-01"),
    # CAC-FR-02: no copying of production faces into training or datasets.
    "dataset_export": ("CAC-FR-02",),
    "model_training": ("CAC-FR-02",),
    # CAC-FR-04: a purpose other than entry, however ordinary, is not the one declared.
    "attendance": ("CAC-FR-04",),
    "payment": ("CAC-FR-04",),
}

# Lawful with separate consent and an alternative (checked elsewhere), but not facegate's own use.
LAWFUL_USES: frozenset[str] = frozenset({"access_control", "identity_verification"})

# The vocabulary of an inventory's `purpose` and `uses` (a closed list: an unknown word is an
# error naming these). Each word with what it means, in English and Chinese.
USE_VOCABULARY: dict[str, tuple[str, str]] = {
    "access_control": (
        "opening a door, gate, turnstile or elevator for an enrolled person",
        "门禁通行：为已登记人员开门、闸机、电梯",
    ),
    "identity_verification": (
        "a 1:1 check that the person matches a presented ID (e.g. hotel check-in)",
        "身份核验：与出示证件进行 1:1 比对（如酒店入住）",
    ),
    "attribute_analysis": ("inferring any attribute from a face", "人脸属性分析"),
    "age_estimation": ("estimating age", "年龄估计"),
    "gender_estimation": ("estimating gender", "性别估计"),
    "emotion_recognition": ("recognising emotions or expressions", "情绪识别"),
    "ethnicity_inference": ("inferring ethnicity", "民族推断"),
    "attention_monitoring": (
        "scoring attention or behaviour (e.g. pupils in class)",
        "专注度或行为评分（如课堂）",
    ),
    "customer_profiling": ("building profiles of customers", "顾客画像"),
    "history_search_by_face": (
        "searching recorded history by a face",
        "以脸搜索历史记录",
    ),
    "watch_list": ("matching against a watch-list or blacklist", "布控名单、黑名单比对"),
    "tracking": ("following people across cameras or over time", "跨摄像头或持续追踪"),
    "visitor_identification": (
        "identifying visitors or passers-by who did not enrol",
        "识别未登记的访客或路人",
    ),
    "credit_export": (
        "giving face data or access history to credit, rating or blacklist providers",
        "向征信、评级或黑名单提供人脸或通行记录",
    ),
    "arrears_blocking": ("refusing entry by face for unpaid fees", "因欠费以刷脸限制通行"),
    "marketing": ("marketing or advertising to the people seen", "营销或广告"),
    "marketing_export": ("sending faces or profiles to a marketing platform", "向营销平台导出"),
    "footfall_analytics": ("counting or analysing visitors", "客流分析"),
    "staff_monitoring": ("monitoring employees", "员工监控"),
    "dataset_export": ("exporting faces as a dataset", "导出人脸数据集"),
    "model_training": ("training or evaluating models on faces", "用人脸训练或评测模型"),
    "attendance": ("recording working time of staff", "考勤"),
    "payment": ("paying by face", "刷脸支付"),
}


def rules_for_use(use: str) -> tuple[str, ...]:
    """The rule ids a use breaks; empty for a lawful use. Unknown uses break CAC-FR-04."""
    if use in LAWFUL_USES:
        return ()
    return PROHIBITED_USES.get(use, ("CAC-FR-04",))


def require_allowed_use(use: str) -> None:
    """Raise ``ProhibitedUse`` naming the rule unless ``use`` is access control."""
    if use in ALLOWED_USES:
        return
    rules = rules_for_use(use) or ("CAC-FR-04",)
    raise ProhibitedUse(
        f"'{use}' is not an allowed use of face data: facegate processes faces for access "
        f"control only ({', '.join(rules)}).",
        zh=f"人脸数据只能用于出入控制，不能用于“{use}”（{'、'.join(rules)}）",
        use=use,
        rules=list(rules),
    )
