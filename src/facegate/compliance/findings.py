"""What a check reports: one finding per rule, per object at fault."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from facegate.compliance.catalog import Severity, rule

SEVERITY_ORDER: dict[str, int] = {"blocker": 0, "warning": 1, "info": 2}


@dataclass(frozen=True)
class Finding:
    rule_id: str
    severity: Severity
    object: str
    message_zh: str
    message_en: str
    fix: str
    fix_zh: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    def message(self, lang: str) -> str:
        return self.message_zh if lang == "zh-CN" else self.message_en

    def fix_in(self, lang: str) -> str:
        return self.fix_zh if lang == "zh-CN" else self.fix


def make_finding(rule_id: str, key: str, obj: str, **params: object) -> Finding:
    """Build a finding from the catalog's bilingual message ``key`` of ``rule_id``."""
    r = rule(rule_id)
    m = r.messages[key]
    fmt = {"object": obj, **params}
    return Finding(
        rule_id=rule_id,
        severity=m.severity or r.severity,
        object=obj,
        message_zh=m.zh.format(**fmt),
        message_en=m.en.format(**fmt),
        fix=m.fix_en.format(**fmt),
        fix_zh=m.fix_zh.format(**fmt),
    )


def blockers(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == "blocker"]


def sort_findings(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (SEVERITY_ORDER[f.severity], f.rule_id, f.object))
