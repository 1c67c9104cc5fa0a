"""The gate server's HTTP adapter: parse input, call one domain function, render output."""

from facegate.api.app import create_app

__all__ = ["create_app"]
