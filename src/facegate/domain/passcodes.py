"""Short codes of QR passes, to type where a QR pass is accepted (issue 16 item 10).

A QR pass's token (``<credential id>.<secret>``) is 190 bits: fine for a camera, not for a
thumb. Each pass therefore also gets a short code: ten characters of Crockford's base32
(digits and upper-case letters without I, L, O and U, so nothing reads as something else),
shown in two groups of five (``7KQ2M-XC94D``). Typed, case, spaces and dashes do not matter,
and O/I/L are read as 0/1/1. A kiosk or a keypad sends it in the decide API's ``qr`` field;
it then opens exactly where, when and as often as the pass's token does, and stops with it
(expiry, uses, revocation are those of the same credential row).

Entropy and guessing: 10 characters x 5 bits = 50 bits. A wrong code is counted against the
access point it was typed at, with the PIN lockout's limits (``pin_max_failures`` wrong codes,
then ``pin_lockout_s`` during which no code is checked at that door; ``decide._check_code``).
With the defaults (5 per 15 minutes) a door takes at most 480 guesses a day; with 1,000 live
passes at a site each guess hits one with probability 1,000 / 2^50 (about 9e-13), i.e. about
1.6e-7 per door per year of non-stop guessing. Scanning the QR picture, cards, PINs and face
are not affected by the code throttle.

Storage: only ``SiteFields.code_index(code)``, an HMAC-SHA256 under a key derived (HKDF) from
the site's field key, which is itself stored only wrapped by the site key, as the blind index
of units is. A fast unkeyed hash of 50 bits could be reversed from a stolen database file in
hours; without the site key it cannot be searched at all. The field key survives a site-key
rotation (it is re-wrapped, not changed), so codes keep working after one.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
from typing import Any

from sqlalchemy.orm import Session

from facegate.store.crypto import SiteFields

log = logging.getLogger("facegate.passcodes")

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base32
CODE_LENGTH = 10  # 50 bits: see the module docstring
GROUP = 5
_READ_AS = str.maketrans({"O": "0", "I": "1", "L": "1"})
# Where a session finds the site keyring (set by the gate server for its store's sessions).
KEYRING_INFO_KEY = "facegate_keyring"


def new_code() -> str:
    """A fresh random code, normalised (no dash)."""
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def format_code(code: str) -> str:
    """``7KQ2MXC94D`` -> ``7KQ2M-XC94D``, for reading aloud and typing."""
    return "-".join(code[i : i + GROUP] for i in range(0, len(code), GROUP))


def normalize_code(text: str) -> str | None:
    """The code typed in ``text`` (any case, spaces and dashes ignored), or None when it is
    not a short code at all (a QR token, a card number typed into the wrong field)."""
    if len(text) > 40 or "." in text:
        return None
    code = "".join(ch for ch in text if ch not in " -\t").upper().translate(_READ_AS)
    if len(code) != CODE_LENGTH or any(ch not in ALPHABET for ch in code):
        return None
    return code


def keyring_of(session: Session) -> Any | None:
    """The site keyring for this session: the one its store was given, else loaded from the
    settings the store was opened with; None when neither is at hand (no short code then)."""
    kr = session.info.get(KEYRING_INFO_KEY)
    if kr is not None:
        return kr
    from facegate.audit.anchor import SETTINGS_INFO_KEY

    settings = session.info.get(SETTINGS_INFO_KEY)
    if settings is None:
        return None
    from facegate.errors import FacegateError
    from facegate.store.crypto import load_keyring

    try:
        return load_keyring(settings)
    except (FacegateError, OSError, ValueError):
        return None


# Site fields opened by this process, for the keyed hash of codes: by (site, wrapped key) for
# decisions with the database, and the last one per site for decisions without it (issue 18:
# the offline copy holds the ``code_hash`` of every pass; the key to compute it is here).
_FIELDS: dict[tuple[str, str], SiteFields] = {}
_LAST: dict[str, SiteFields] = {}
_LOCK = threading.Lock()


def site_fields(session: Session, site_id: str, *, create: bool = False) -> SiteFields | None:
    """The site's fields (its code-index key), from the database; None without a keyring or,
    unless ``create``, when the site has no field key yet."""
    from facegate.store.models import SiteFieldKey

    row = session.get(SiteFieldKey, site_id)
    if row is not None:
        ident = (site_id, hashlib.sha256(bytes(row.wrapped)).hexdigest())
        with _LOCK:
            got = _FIELDS.get(ident)
        if got is not None:
            return got
    keyring = keyring_of(session)
    if keyring is None or (row is None and not create):
        return None
    from facegate.domain.identities import FieldKeys
    from facegate.errors import KeyUnavailable

    try:
        got = FieldKeys(session, keyring).site(site_id, create=create)
    except KeyUnavailable:
        # The field key was re-wrapped under a site key this process has not read yet (a
        # rotation by another process): read the key file again; failing that, the field key
        # itself is unchanged by a rotation, so the one opened before still computes codes.
        reload = getattr(keyring, "reload", None)
        try:
            if reload is None or getattr(keyring, "key_file", None) is None:
                raise
            reload()
            got = FieldKeys(session, keyring).site(site_id, create=create)
        except KeyUnavailable:
            with _LOCK:
                got = _LAST.get(site_id)
            if got is None:
                raise
    if got is None:
        return None
    row = session.get(SiteFieldKey, site_id)
    if row is not None:
        with _LOCK:
            _FIELDS[(site_id, hashlib.sha256(bytes(row.wrapped)).hexdigest())] = got
            _LAST[site_id] = got
    return got


def warm(session: Session, keyring: Any) -> int:
    """Open every site's code key now (the gate does it with each full load of its offline
    copy), so a code typed while the database is away can still be checked. Returns how many."""
    from facegate.domain.identities import FieldKeys
    from facegate.store.models import SiteFieldKey

    n = 0
    for row in session.query(SiteFieldKey).all():
        ident = (row.site_id, hashlib.sha256(bytes(row.wrapped)).hexdigest())
        with _LOCK:
            known = _FIELDS.get(ident)
        fields = known or FieldKeys(session, keyring).site(row.site_id)
        if fields is None:
            continue
        with _LOCK:
            _FIELDS[ident] = fields
            _LAST[row.site_id] = fields
        n += 1
    return n


def code_index(session: Session | None, site_id: str, code: str) -> str | None:
    """The stored form of a normalised code at a site; None when it cannot be computed here
    (no keyring, or offline for a site this process never opened)."""
    if session is None:
        with _LOCK:
            fields = _LAST.get(site_id)
    else:
        from facegate.errors import KeyUnavailable

        try:
            fields = site_fields(session, site_id)
        except KeyUnavailable:  # refused as unknown; the log says why
            log.warning("pass code key unavailable", extra={"fields": {"site_id": site_id}})
            return None
    return fields.code_index(code) if fields is not None else None
