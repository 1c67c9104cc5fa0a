"""facegate's own deployment description, read from its live database."""

from __future__ import annotations

from facegate.compliance.model import Deployment
from facegate.config import Settings
from facegate.errors import InvalidInput


def live_deployment(settings: Settings) -> Deployment:
    """The Deployment of this facegate installation (needs the people store)."""
    raise InvalidInput(
        "Reading this system's own state needs the people store, which is not part of this "
        "build yet; audit a description instead with --inventory FILE."
    )
