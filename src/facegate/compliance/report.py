"""Reports of findings: JSON, a rich terminal table and a standalone HTML page."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from facegate.compliance.catalog import rule
from facegate.compliance.documents import TEMPLATES
from facegate.compliance.findings import Finding
from facegate.compliance.model import Deployment


def summary(findings: list[Finding]) -> dict[str, int]:
    out = {"blocker": 0, "warning": 0, "info": 0}
    for f in findings:
        out[f.severity] += 1
    return out


def to_json(d: Deployment, findings: list[Finding], as_of: date, source: str) -> dict[str, Any]:
    """The machine-readable report (``facegate comply --json``)."""
    items = []
    for f in findings:
        r = rule(f.rule_id)
        items.append(
            {
                **f.to_dict(),
                "title_zh": r.title["zh-CN"],
                "title_en": r.title["en"],
                "source": r.source,
                "article": r.article,
                "evidence": r.evidence,
            }
        )
    return {
        "deployment": d.name,
        "source": source,
        "as_of": as_of.isoformat(),
        "passed": not any(f.severity == "blocker" for f in findings),
        "summary": summary(findings),
        "findings": items,
    }


_STYLE = {"blocker": "bold red", "warning": "yellow", "info": "cyan"}


def print_table(
    console: Console, d: Deployment, findings: list[Finding], lang: str, source: str
) -> None:
    """The human report in the terminal."""
    zh = lang == "zh-CN"
    s = summary(findings)
    title = f"{'合规检查' if zh else 'Compliance check'}: {d.name or source}"
    if not findings:
        console.print(f"[bold green]✔ {title}: {'未发现问题' if zh else 'no findings'}[/]")
        return
    table = Table(title=title, show_lines=True, expand=True)
    table.add_column("级别" if zh else "Severity", no_wrap=True)
    table.add_column("规则" if zh else "Rule", no_wrap=True)
    table.add_column("对象" if zh else "Object", overflow="fold")
    table.add_column("问题" if zh else "Problem", ratio=3, overflow="fold")
    table.add_column("整改" if zh else "Fix", ratio=2, overflow="fold")
    for f in findings:
        table.add_row(
            f"[{_STYLE[f.severity]}]{f.severity}[/]",
            f.rule_id,
            f.object,
            f.message(lang),
            f.fix_in(lang),
        )
    console.print(table)
    verdict = "[bold red]FAIL[/]" if s["blocker"] else "[bold green]PASS[/]"
    console.print(f"{verdict}  blocker {s['blocker']} · warning {s['warning']} · info {s['info']}")


def render_html(d: Deployment, findings: list[Finding], lang: str, as_of: date, source: str) -> str:
    """The report as a standalone HTML page (``facegate comply --html``)."""

    def L(zh: str, en: str) -> str:  # noqa: N802 - same helper as the documents
        return zh if lang == "zh-CN" else en

    return TEMPLATES.get_template("report.html").render(
        d=d,
        lang=lang,
        L=L,
        findings=findings,
        summary=summary(findings),
        rule=rule,
        as_of=as_of,
        source=source,
        generated_at=datetime.now(UTC).replace(microsecond=0),
    )
