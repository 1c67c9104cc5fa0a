"""The people store: models, sessions, migrations and envelope encryption."""

# Register the web console's tables with the shared metadata (migration 0003).
from facegate.store import web_models as _web_models  # noqa: E402,F401
