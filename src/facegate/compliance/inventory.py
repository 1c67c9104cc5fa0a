"""YAML inventories of a deployment, validated by the model the shipped JSON Schema comes from.

``inventory.schema.json`` beside this file is generated from the ``Deployment`` model
(``python -m facegate.compliance.inventory`` rewrites it; a test fails when it is stale), so the
file a consultant validates against and the model the checks read cannot drift apart.

A file is untrusted input (issue 17): it is read only if it is a regular file of at most
``Settings.inventory_max_bytes`` (1 MiB by default), decoded as strict UTF-8, parsed from
libyaml's event stream with aliases, anchors, non-standard tags, duplicate keys and nesting
deeper than MAX_DEPTH refused before anything is built, then validated by pydantic in strict
JSON mode. Every refusal is ``InvalidInput`` with one line naming where in the document (a
line and column, a byte, or a field path) and values quoted at most SHORT_VALUE_CHARS long, so
the work and the error text are bounded by the size limit (``bench/inventory_limits.py``).
"""

from __future__ import annotations

import json
import stat
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

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


_TYPE_NAMES = {
    "int_type": "integer",
    "int_parsing": "integer",
    "string_type": "string",
    "bool_type": "boolean",
    "bool_parsing": "boolean",
    "float_type": "number",
    "list_type": "array",
    "dict_type": "object",
    "model_type": "object",
    "model_attributes_type": "object",
}


def _where(err: Any) -> list[str]:
    """The path an error is reported at (a missing or unknown field: its parent), to sort by."""
    loc = err["loc"][:-1] if err["type"] in ("missing", "extra_forbidden") else err["loc"]
    return [str(p) for p in loc]


def _error_line(err: dict[str, Any]) -> str:
    """One pydantic error as "path: message", quoting at most SHORT_VALUE_CHARS of the value."""
    # Union members appear in the location as type names ("function-after[...]"); drop them.
    loc = [p for p in err["loc"] if isinstance(p, int) or ("[" not in p and "(" not in p)]
    kind, value, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    if kind == "extra_forbidden":
        return _cap(f"{_path(loc[:-1])}: unknown field(s): {str(loc[-1])[:80]}")
    if kind == "missing":
        return f"{_path(loc[:-1])}: {_short(loc[-1], 80)} is a required property"
    where = _path(loc)
    if kind == "literal_error":
        allowed = ctx.get("expected", "").replace("'", "").replace(" or ", ", ")
        return _cap(f"{where}: {_short(value)} is not one of the allowed values: {allowed}")
    if kind == "string_pattern_mismatch":
        return _cap(f"{where}: {_short(value)} does not match the pattern {ctx.get('pattern')!r}")
    if kind in _TYPE_NAMES:
        return f"{where}: {_short(value)} is not of type {_TYPE_NAMES[kind]!r}"
    if kind in ("date_parsing", "date_from_datetime_parsing", "date_from_datetime_inexact"):
        return _cap(f"{where}: {_short(value)} is not a valid date ({ctx.get('error', kind)})")
    if kind == "datetime_parsing":
        return _cap(f"{where}: {_short(value)} is not a valid date-time ({ctx.get('error')})")
    return _cap(f"{where}: {err['msg']} (got {_short(value)})")


def _one_line(source: str, lines: list[str]) -> str:
    more = f" (and {len(lines) - 1} more error(s))" if len(lines) > 1 else ""
    return _cap(f"{source}: {lines[0]}{more}", MAX_ERROR_CHARS + 200)


def validate_inventory(data: Any, source: str = "inventory") -> Deployment:
    """Validate parsed YAML/JSON data; ``InvalidInput`` names the path of every error.

    Validation is the model's, in strict JSON mode: what the shipped JSON Schema (generated
    from the same model) accepts, less what a schema cannot refuse (an impossible date such
    as 2026-02-30), in tens of milliseconds for the largest file the limit allows. The
    message is one line (the first error by path and how many more); ``details["errors"]``
    holds up to MAX_ERRORS lines, each at most MAX_ERROR_CHARS long."""
    try:
        body = json.dumps(data, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:  # e.g. .inf or .nan, which JSON cannot carry
        raise InvalidInput(f"{source}: (top level): not representable as JSON: {exc}") from None
    try:
        return Deployment.model_validate_json(body, strict=True)
    except ValidationError as exc:
        errs = sorted(exc.errors(include_url=False), key=_where)
        lines = [_error_line(e) for e in errs[:MAX_ERRORS]]
        raise InvalidInput(_one_line(source, lines), errors=lines, count=len(errs)) from None


_STR = "tag:yaml.org,2002:str"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_SCALAR_TAGS = frozenset(
    f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "timestamp")
)
_COLLECTION_TAGS = frozenset({None, "!", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"})


class _MapFrame(list):  # type: ignore[type-arg]
    """[dict, pending key or _NO_KEY] for a mapping being built."""


_NO_KEY = object()


def _refuse(problem: str, event: yaml.Event) -> yaml.MarkedYAMLError:
    return yaml.MarkedYAMLError(None, None, problem, event.start_mark)


def _compose(text: str) -> Any:
    """YAML (or JSON) text to plain data, built straight from the parser's events.

    Refused as the events stream by, before anything is built from them: aliases and anchors
    (a few hundred bytes of aliases can expand into gigabytes, "billion laughs"), nesting
    deeper than MAX_DEPTH, tags other than the standard ones, duplicate keys, and a second
    document. Scalars resolve as with PyYAML's SafeLoader (YAML 1.1), except that dates and
    times stay strings (the model parses them). No recursion, so no depth can overflow it."""
    helper = _Loader("")  # its resolver and scalar constructors
    stack: list[Any] = []  # open lists, and _MapFrame for open mappings
    root: list[Any] = []
    documents = 0
    for ev in yaml.parse(text, Loader=_Loader):
        cls = type(ev)
        if cls is yaml.AliasEvent:
            raise _refuse(
                f"YAML aliases (*{_short(ev.anchor, 40)}) are not accepted in an inventory; "
                "write the value out",
                ev,
            )
        if cls is yaml.DocumentStartEvent:
            documents += 1
            if documents > 1:
                raise _refuse("more than one YAML document; an inventory is one", ev)
            continue
        if cls in (yaml.StreamStartEvent, yaml.StreamEndEvent, yaml.DocumentEndEvent):
            continue
        if cls not in (yaml.SequenceEndEvent, yaml.MappingEndEvent) and ev.anchor is not None:
            raise _refuse(
                f"YAML anchors (&{_short(ev.anchor, 40)}) are not accepted in an inventory; "
                "write the value out",
                ev,
            )
        if cls is yaml.ScalarEvent:
            if ev.tag is None:
                tag = helper.resolve(yaml.ScalarNode, ev.value, ev.implicit)
            else:
                tag = _STR if ev.tag == "!" else ev.tag
            if tag not in _SCALAR_TAGS:
                raise _refuse(f"the tag {_short(tag, 60)} is not accepted in an inventory", ev)
            if tag in (_STR, _TIMESTAMP):
                value: Any = ev.value
            else:
                node = yaml.ScalarNode(tag, ev.value, ev.start_mark, ev.end_mark)
                value = helper.yaml_constructors[tag](helper, node)
        elif cls is yaml.SequenceStartEvent or cls is yaml.MappingStartEvent:
            if ev.tag not in _COLLECTION_TAGS:
                raise _refuse(f"the tag {_short(ev.tag, 60)} is not accepted in an inventory", ev)
            if len(stack) >= MAX_DEPTH:
                raise _refuse(f"nesting is deeper than {MAX_DEPTH} levels", ev)
            stack.append([] if cls is yaml.SequenceStartEvent else _MapFrame([{}, _NO_KEY]))
            continue
        else:  # the end of a sequence or mapping
            top = stack.pop()
            value = top[0] if type(top) is _MapFrame else top
        _add(stack, root, value, ev)
    return root[0] if root else None


def _add(stack: list[Any], root: list[Any], value: Any, ev: yaml.Event) -> None:
    if not stack:
        root.append(value)
        return
    top = stack[-1]
    if type(top) is not _MapFrame:
        top.append(value)
        return
    mapping, key = top
    if key is _NO_KEY:
        if isinstance(value, (dict, list)):
            raise _refuse("a mapping key must be a plain value", ev)
        if value in mapping:
            raise _refuse(f"duplicate key {_short(value, 60)}", ev)
        top[1] = value
    else:
        mapping[key] = value
        top[1] = _NO_KEY


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
            raise InvalidInput(
                f"Cannot read {what} {path}: not a regular file.",
                zh=f"无法读取 {path}：这不是一个普通文件",
            )
        if st.st_size > max_bytes:
            raise InvalidInput(_too_large(path, what, st.st_size, max_bytes))
        with open(path, "rb") as fh:
            raw = fh.read(max_bytes + 1)
    except OSError as exc:
        raise InvalidInput(
            f"Cannot read {what} {path}: {exc.strerror}", zh=f"无法读取 {path}：{exc.strerror}"
        ) from None
    if len(raw) > max_bytes:  # grew while being read
        raise InvalidInput(_too_large(path, what, len(raw), max_bytes))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise InvalidInput(
            f"{path}: line {line} (byte {exc.start}): not UTF-8 text ({exc.reason}); save the "
            f"{what} as UTF-8.",
            zh=f"{path} 第 {line} 行不是 UTF-8 文字：请以 UTF-8 编码保存",
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
        return _compose(text)
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
