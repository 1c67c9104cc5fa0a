"""Access decisions at a door, credentials and the gate-side galleries (domain)."""
