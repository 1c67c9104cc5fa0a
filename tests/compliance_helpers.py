"""Shared helpers for the compliance tests: the lawful example as a clean baseline."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from facegate.compliance.checks import CheckContext, run_checks
from facegate.compliance.findings import Finding
from facegate.compliance.inventory import load_inventory
from facegate.compliance.model import Deployment

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
AS_OF = date(2026, 11, 25)


def lawful() -> Deployment:
    return load_inventory(EXAMPLES / "lawful-compound.yaml")


def findings(d: Deployment, **ctx: object) -> list[Finding]:
    return run_checks(d, CheckContext(as_of=ctx.pop("as_of", AS_OF), **ctx))  # type: ignore[arg-type]


def rule_ids(d: Deployment, **ctx: object) -> set[str]:
    return {f.rule_id for f in findings(d, **ctx)}


def ap(d: Deployment, ap_id: str):
    return next(a for _, a in d.access_points() if a.id == ap_id)
