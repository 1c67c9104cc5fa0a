"""The people store: models, sessions, migrations and envelope encryption."""
