"""YAML inventories of a deployment, validated against the shipped JSON Schema.

``inventory.schema.json`` beside this file is generated from the ``Deployment`` model
(``python -m facegate.compliance.inventory`` rewrites it; a test fails when it is stale), so the
file a consultant validates against and the model the checks read cannot drift apart.
"""

from __future__ import annotations

import json
import stat
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from pydantic import ValidationError

from facegate.compliance.model import Deployment
from facegate.errors import InvalidInput

SCHEMA_FILE = "inventory.schema.json"
DEFAULT_MAX_BYTES = 1_048_576  # Settings.inventory_max_bytes
MAX_DEPTH = 32  # an inventory nests about 6 levels
MAX_ERRORS = 20
MAX_ERROR_CHARS = 1000  # room for the list of allowed values; every quoted value is cut
SHORT_VALUE_CHARS = 60

# libyaml's parser when PyYAML was built with it (much faster), else the pure-Python one; both
# with the safe constructor. Dates and times stay strings, as JSON Schema expects (the model
# parses them and refuses impossible ones).
_BASE = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BASE):  # type: ignore[misc,valid-type]
    """Safe loader without the timestamp resolver."""

    def construct_yaml_int(self, node: yaml.Node) -> int:
        try:
            return super().construct_yaml_int(node)
        except ValueError as exc:  # e.g. more digits than Python converts (int_max_str_digits)
            raise yaml.constructor.ConstructorError(
                None, None, f"not a usable integer ({_short(exc.args[0], 80)})", node.start_mark
            ) from None


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)


_Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def generate_schema() -> dict[str, Any]:
    schema = Deployment.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://facegate.invalid/schemas/inventory-1.json"
    schema["title"] = "facegate deployment inventory"
    schema["description"] = (
        "A face-recognition deployment (operator, sites, access points, notice, PIA, retention, "
        "outbound destinations, counts, security) checked by `facegate comply --inventory`."
    )
    return schema


@lru_cache(maxsize=1)
def inventory_schema() -> dict[str, Any]:
    """The JSON Schema shipped in the package."""
    text = resources.files("facegate.compliance").joinpath(SCHEMA_FILE).read_text("utf-8")
    return json.loads(text)


def _path(parts: Any) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def _short(value: Any, limit: int = SHORT_VALUE_CHARS) -> str:
    """``repr`` of a value from the file, cut so that no error message can grow with it."""
    text = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _cap(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    text = " ".join(text.split())  # one line, whatever the file put in it
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _resolve(e: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """For an optional field (a value or null), the error of the value branch."""
    while e.validator in ("anyOf", "oneOf") and e.context:
        subs = [c for c in e.context if not (c.validator == "type" and c.validator_value == "null")]
        if not subs:
            break
        e = jsonschema.exceptions.best_match(subs)
    return e


def _schema_message(e: jsonschema.ValidationError) -> str:
    # jsonschema quotes the whole offending value; quote at most SHORT_VALUE_CHARS of it.
    if e.validator == "enum":
        allowed = ", ".join(str(v) for v in e.validator_value)
        return f"{_short(e.instance)} is not one of the allowed values: {allowed}"
    if e.validator == "type":
        return f"{_short(e.instance)} is not of type {e.validator_value!r}"
    if e.validator == "format":
        return f"{_short(e.instance)} is not a valid {e.validator_value}"
    if e.validator == "additionalProperties":
        extra = sorted(set(e.instance) - set(e.schema.get("properties", {})))
        return _cap(f"unknown field(s): {', '.join(map(str, extra))}", 200)
    if e.validator == "pattern":
        return f"{_short(e.instance)} does not match the pattern {e.validator_value!r}"
    return e.message


def _one_line(source: str, lines: list[str]) -> str:
    more = f" (and {len(lines) - 1} more error(s))" if len(lines) > 1 else ""
    return _cap(f"{source}: {lines[0]}{more}", MAX_ERROR_CHARS + 200)


def validate_inventory(data: Any, source: str = "inventory") -> Deployment:
    """Validate parsed YAML/JSON data; ``InvalidInput`` names the path of every error.

    The message is one line (the first error and how many more); ``details["errors"]`` holds
    up to MAX_ERRORS lines, each at most MAX_ERROR_CHARS long."""
    validator = jsonschema.Draft202012Validator(
        inventory_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    errors = sorted(
        (_resolve(e) for e in validator.iter_errors(data)),
        key=lambda e: list(map(str, e.absolute_path)),
    )
    if errors:
        lines = [
            _cap(f"{_path(e.absolute_path)}: {_schema_message(e)}") for e in errors[:MAX_ERRORS]
        ]
        raise InvalidInput(_one_line(source, lines), errors=lines, count=len(errors))
    try:
        return Deployment.model_validate(data)
    except ValidationError as exc:
        # What JSON Schema cannot say (an impossible date such as 2026-02-30, cross-field rules).
        lines = [
            _cap(f"{_path(err['loc'])}: {err['msg']} (got {_short(err.get('input'))})")
            for err in exc.errors()[:MAX_ERRORS]
        ]
        raise InvalidInput(
            _one_line(source, lines), errors=lines, count=exc.error_count()
        ) from None


class _Refused(yaml.MarkedYAMLError):
    pass


def _prescan(text: str, source: str) -> None:
    """Refuse aliases, anchors and nesting deeper than MAX_DEPTH before anything is built.

    A YAML alias can make a few hundred bytes expand into gigabytes ("billion laughs"), and
    nesting is composed recursively; an inventory needs neither, so both are refused while
    the events stream by, before a node exists."""
    depth = 0
    for ev in yaml.parse(text, Loader=_Loader):
        if isinstance(ev, yaml.AliasEvent):
            raise _Refused(
                None,
                None,
                f"YAML aliases (*{_short(ev.anchor, 40)}) are not accepted in an "
                "inventory; write the value out",
                ev.start_mark,
            )
        anchor = getattr(ev, "anchor", None)
        if anchor is not None:
            raise _Refused(
                None,
                None,
                f"YAML anchors (&{_short(anchor, 40)}) are not accepted in an "
                "inventory; write the value out",
                ev.start_mark,
            )
        if isinstance(ev, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                raise _Refused(
                    None, None, f"nesting is deeper than {MAX_DEPTH} levels", ev.start_mark
                )
        elif isinstance(ev, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            depth -= 1


def _yaml_error(source: str, exc: yaml.YAMLError) -> InvalidInput:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(unknown place)"
        what = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
    else:  # e.g. a character YAML does not allow (reader error)
        where, what = "(file)", str(exc)
    return InvalidInput(_cap(f"{source}: {where}: not valid YAML: {what}"), where=where)


def read_limited(path: Path, max_bytes: int, what: str = "inventory") -> str:
    """The text of a regular file of at most ``max_bytes`` bytes, UTF-8; else ``InvalidInput``.

    Only regular files are read (a FIFO or a device such as /dev/zero could block or never
    end), and never more than ``max_bytes + 1`` bytes of them."""
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise InvalidInput(f"Cannot read {what} {path}: not a regular file.")
        if st.st_size > max_bytes:
            raise InvalidInput(_too_large(path, what, st.st_size, max_bytes))
        with open(path, "rb") as fh:
            raw = fh.read(max_bytes + 1)
    except OSError as exc:
        raise InvalidInput(f"Cannot read {what} {path}: {exc.strerror}") from None
    if len(raw) > max_bytes:  # grew while being read
        raise InvalidInput(_too_large(path, what, len(raw), max_bytes))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise InvalidInput(
            f"{path}: line {line} (byte {exc.start}): not UTF-8 text ({exc.reason}); save the "
            f"{what} as UTF-8.",
            where=f"byte {exc.start}",
        ) from None
    return text.removeprefix("\ufeff")


def _too_large(path: Path, what: str, size: int, max_bytes: int) -> str:
    return (
        f"{path}: (whole file): the {what} is {size} bytes, more than the limit of {max_bytes} "
        "bytes (setting FACEGATE_INVENTORY_MAX_BYTES)."
    )


def parse_yaml(text: str, source: str) -> Any:
    """YAML (or JSON) text to plain data, refusing aliases, anchors and deep nesting."""
    try:
        _prescan(text, source)
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - safe loader, see below
    except yaml.YAMLError as exc:
        raise _yaml_error(source, exc) from None


def load_inventory(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> Deployment:
    """Read and validate a YAML (or JSON) inventory file.

    Every bad file (too large, not UTF-8, not YAML, aliases, too deep, wrong types,
    impossible dates) raises ``InvalidInput`` with one line naming where in the document."""
    text = read_limited(path, max_bytes)
    data = parse_yaml(text, str(path))
    if data is None:
        raise InvalidInput(f"{path}: (top level): the inventory is empty.")
    return validate_inventory(data, source=str(path))


if __name__ == "__main__":
    target = Path(__file__).with_name(SCHEMA_FILE)
    target.write_text(
        json.dumps(generate_schema(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    print(f"wrote {target}")
