"""Activation gate: face recognition cannot be switched on while a blocker fails.

ENF-2025 lists what inspectors look for first (no separate consent, no signage, no encryption,
no PIA); with the face-only door (CAC-FR-10) and prohibited locations (CAC-FR-13b) those are all
blockers in the catalog, so they all stop activation here. Switching face off is always allowed.
"""

from __future__ import annotations

from facegate.compliance.checks import CheckContext, run_checks
from facegate.compliance.findings import Finding
from facegate.compliance.model import Deployment
from facegate.errors import ComplianceBlocked, NotFound


def _with_face_on(d: Deployment, site_id: str, access_point_id: str | None) -> Deployment:
    """A copy of ``d`` with face switched on where activation is requested."""
    out = d.model_copy(deep=True)
    site = next((s for s in out.sites if s.id == site_id), None)
    if site is None:
        raise NotFound(
            f"No site '{site_id}' in the deployment.", zh="找不到这个场所", site_id=site_id
        )
    if access_point_id is None:
        targets = [ap for ap in site.access_points if "face" in ap.accepted_methods]
    else:
        targets = [ap for ap in site.access_points if ap.id == access_point_id]
        if not targets:
            raise NotFound(
                f"No access point '{access_point_id}' at site '{site_id}'.",
                zh="本场所没有这个出入口",
                site_id=site_id,
                access_point_id=access_point_id,
            )
    for ap in targets:
        ap.face_enabled = True
        if "face" not in ap.accepted_methods and ap.kind != "camera":
            ap.accepted_methods.append("face")
    return out


def _other_site(obj: str, d: Deployment, site_id: str) -> bool:
    return any(s.id != site_id and (obj == s.id or obj.startswith(s.id + "/")) for s in d.sites)


def activation_blockers(
    d: Deployment,
    site_id: str,
    access_point_id: str | None = None,
    ctx: CheckContext | None = None,
) -> list[Finding]:
    """Blocker findings that would stop face at this site (or access point)."""
    trial = _with_face_on(d, site_id, access_point_id)
    site_prefix = f"{site_id}/"
    out = []
    for f in run_checks(trial, ctx):
        if f.severity != "blocker" or _other_site(f.object, trial, site_id):
            continue
        # Access-point findings only block the access point being switched on.
        wanted = f"{site_id}/{access_point_id}"
        if access_point_id is not None and f.object.startswith(site_prefix) and f.object != wanted:
            continue
        out.append(f)
    return out


def assert_can_activate(
    d: Deployment,
    site_id: str,
    access_point_id: str | None = None,
    ctx: CheckContext | None = None,
) -> None:
    """Raise ``ComplianceBlocked`` listing the failing blocker rules, else return."""
    found = activation_blockers(d, site_id, access_point_id, ctx)
    if not found:
        return
    rule_ids = sorted({f.rule_id for f in found})
    where = site_id if access_point_id is None else f"{site_id}/{access_point_id}"
    # Each blocker with what fixes it (issue 16 item 1: every refusal names the fix).
    lines = "; ".join(f"{f.rule_id} ({f.object}): {f.message_en} Fix: {f.fix}" for f in found[:10])
    lines_zh = "；".join(
        f"{f.rule_id}（{f.object}）：{f.message_zh} 整改：{f.fix_zh}" for f in found[:10]
    )
    raise ComplianceBlocked(
        f"Face recognition cannot be switched on at {where} while blocking rules fail: "
        f"{', '.join(rule_ids)}. {lines}",
        zh=f"以下阻断规则未满足，{where} 不能开启人脸识别：{'、'.join(rule_ids)}。{lines_zh}",
        rules=rule_ids,
        findings=[f.to_dict() for f in found],
    )


def set_face_enabled(
    d: Deployment,
    site_id: str,
    access_point_id: str,
    enabled: bool,
    ctx: CheckContext | None = None,
) -> Deployment:
    """Return ``d`` with face switched on or off at one access point; on is gated."""
    if enabled:
        assert_can_activate(d, site_id, access_point_id, ctx)
        return _with_face_on(d, site_id, access_point_id)
    out = d.model_copy(deep=True)  # switching off is always allowed
    for s in out.sites:
        for ap in s.access_points:
            if s.id == site_id and ap.id == access_point_id:
                ap.face_enabled = False
                return out
    raise NotFound(
        f"No access point '{access_point_id}' at site '{site_id}'.", zh="本场所没有这个出入口"
    )
