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
    # The registered check that raised it (``CHECKS`` key, set by ``run_checks``): a stable
    # key for consumers of the JSON report.
    check: str = ""
    # Set on "cannot be assessed" findings: the inventory field that would decide the rule.
    needs: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    def message(self, lang: str) -> str:
        return self.message_zh if lang == "zh-CN" else self.message_en

    def fix_in(self, lang: str) -> str:
        return self.fix_zh if lang == "zh-CN" else self.fix


def make_finding(rule_id: str, key: str, obj: str, **params: object) -> Finding:
    """Build a finding from the catalog's bilingual message ``key`` of ``rule_id``.

    A parameter given as a ``(zh, en)`` pair reads in each message's own language."""
    r = rule(rule_id)
    m = r.messages[key]

    def fmt(i: int) -> dict[str, object]:
        out: dict[str, object] = {"object": obj}
        for k, v in params.items():
            out[k] = v[i] if isinstance(v, tuple) and len(v) == 2 else v
        return out

    zh, en = fmt(0), fmt(1)
    return Finding(
        rule_id=rule_id,
        severity=m.severity or r.severity,
        object=obj,
        message_zh=m.zh.format(**zh),
        message_en=m.en.format(**en),
        fix=m.fix_en.format(**en),
        fix_zh=m.fix_zh.format(**zh),
    )


def make_unknown(rule_id: str, obj: str, field: str, what_en: str, what_zh: str) -> Finding:
    """A rule that cannot be assessed because the description does not give ``field``.

    Unknown is not compliant: this is a warning naming the field to state, never a pass."""
    r = rule(rule_id)
    return Finding(
        rule_id=rule_id,
        severity="warning",
        object=obj,
        message_zh=f"无法评估“{r.title['zh-CN']}”：请说明 {field}（{what_zh}）。",
        message_en=f"{r.title['en']}: cannot be assessed: state {field} ({what_en}).",
        fix=f"State {field} in the inventory ({what_en}), then check again.",
        fix_zh=f"在清单中填写 {field}（{what_zh}）后重新检查。",
        needs=field,
    )


def blockers(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == "blocker"]


def sort_findings(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (SEVERITY_ORDER[f.severity], f.rule_id, f.object))
