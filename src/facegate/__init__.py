"""facegate: face access control that is lawful by construction."""

__version__ = "0.1.0"
