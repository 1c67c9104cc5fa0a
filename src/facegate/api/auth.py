"""API keys: per device or operator, stored hashed, scoped and bound to a site (CAC-FR-14).

There are no default credentials: the first key is made with ``facegate keys create`` on the
machine itself. Missing or wrong key: 401. Valid key, wrong scope, site or access point: 403.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from facegate.domain.credentials import lookup_api_key, sha256_hex
from facegate.errors import Forbidden, Unauthorized

_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="facegate API key")
_bearer = HTTPBearer(auto_error=False, description="facegate API key as a bearer token")


@dataclass(frozen=True)
class Principal:
    key_id: str
    site_id: str
    scopes: frozenset[str]
    access_point_ids: frozenset[str] | None

    @property
    def actor(self) -> str:
        return f"api_key:{self.key_id}"

    def check_site(self, site_id: str) -> None:
        if site_id != self.site_id:
            raise Forbidden("this key belongs to another site")

    def check_access_point(self, site_id: str, access_point_id: str) -> None:
        self.check_site(site_id)
        if self.access_point_ids is not None and access_point_id not in self.access_point_ids:
            raise Forbidden("this key is not bound to this access point")


def _secret(header: str | None, bearer: HTTPAuthorizationCredentials | None) -> str:
    secret = header or (bearer.credentials if bearer else None)
    if not secret:
        raise Unauthorized("send an API key in X-API-Key (make one with `facegate keys create`)")
    if len(secret) > 200:
        raise Unauthorized("the API key is not valid")
    return secret


def _lookup(
    session_factory: Callable[[], Any], secret: str, touch_interval_s: float = 60.0
) -> Principal:
    """The key's principal from the database (401 when unknown, expired or revoked)."""
    with session_factory() as s:
        row = lookup_api_key(s, secret, touch_interval_s=touch_interval_s)
        if row is None:
            raise Unauthorized("the API key is not valid, expired or was revoked")
        return Principal(
            key_id=row.id,
            site_id=row.site_id,
            scopes=frozenset(row.scopes or ()),
            access_point_ids=(
                frozenset(row.access_point_ids) if row.access_point_ids is not None else None
            ),
        )


def _authenticate(
    request: Request,
    header: str | None = Depends(_header),
    bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),
) -> Principal:
    secret = _secret(header, bearer)
    rt = request.app.state.runtime
    rt.refuse_if_offline()  # 503 database_unavailable, at once, while the database is away
    return _lookup(rt.store.session, secret, rt.settings.api_key_touch_interval_s)


async def _authenticate_gate(
    request: Request,
    header: str | None = Depends(_header),
    bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),
) -> Principal:
    """For the decide route: the database while it answers in time, else the gate's own
    copy of its keys (hashed, kept current by the change feed; issue 18)."""
    from facegate.api.runtime import DatabaseAway, request_deadline

    secret = _secret(header, bearer)
    rt = request.app.state.runtime
    deadline = request_deadline(request)
    # The database while it answers (or while there is no copy to fall back on yet).
    if rt.offline.decide_online() or not rt.snapshot.ready:
        budget = min(rt.settings.db_decision_timeout_ms / 1000, deadline.remaining() / 2)
        try:
            return await rt.db_call(
                _lookup,
                rt.store.decision_session,
                secret,
                rt.settings.api_key_touch_interval_s,
                timeout=budget,
            )
        except DatabaseAway:
            pass
    row = rt.offline.key(sha256_hex(secret))
    if row is None:
        raise Unauthorized("the API key is not valid or was revoked")
    return Principal(
        key_id=row.id,
        site_id=row.site_id,
        scopes=frozenset(row.scopes),
        access_point_ids=frozenset(row.access_point_ids)
        if row.access_point_ids is not None
        else None,
    )


def _check_scopes(principal: Principal, scopes: tuple[str, ...]) -> Principal:
    if not principal.scopes.intersection(scopes):
        raise Forbidden(f"this key lacks the scope for this route (needs {' or '.join(scopes)})")
    return principal


def require(*scopes: str) -> Callable[..., Principal]:
    """A dependency admitting keys holding any one of ``scopes``."""

    def dep(principal: Principal = Depends(_authenticate)) -> Principal:
        return _check_scopes(principal, scopes)

    return dep


def require_gate(*scopes: str) -> Callable[..., Principal]:
    """As ``require``, but answered from memory when the database is away (decide route)."""

    def dep(principal: Principal = Depends(_authenticate_gate)) -> Principal:
        return _check_scopes(principal, scopes)

    return dep
