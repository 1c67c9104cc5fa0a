"""The ``facegate`` command line: thin adapters over the domain."""

from __future__ import annotations

from typing import Any

# How option values are named in --help: click's words, and nothing at all for a flag.
_TYPE_WORDS = {
    "str": "TEXT",
    "int": "INTEGER",
    "float": "NUMBER",
    "path": "PATH",
    "file": "FILE",
    "directory": "DIR",
    "bool": "",
}


def _plain_help_types() -> None:
    """Typer labels every option with a Python type (``--json <bool>``, ``--db <str>``): a
    property manager reading ``--help`` should see ``--json`` and ``--db TEXT`` (issue 16.14).
    Only the help text changes; parsing is untouched. If Typer's internals move, help simply
    keeps Typer's own labels."""
    try:
        from typer.core import _TyperParameter
    except ImportError:  # pragma: no cover - another Typer
        return
    original = getattr(_TyperParameter, "display_type", None)
    if original is None or getattr(original, "_facegate", False):
        return

    def display_type(self: Any, ctx: Any) -> str:
        if getattr(self, "is_flag", False):
            return ""
        label = str(original(self, ctx)).strip("<>")
        many = label.startswith("list[") and label.endswith("]")
        if many:
            label = label[5:-1]
        word = _TYPE_WORDS.get(label.lower(), label.upper())
        return f"{word}..." if many and word else word

    display_type._facegate = True  # type: ignore[attr-defined]
    _TyperParameter.display_type = display_type  # type: ignore[method-assign]


_plain_help_types()
