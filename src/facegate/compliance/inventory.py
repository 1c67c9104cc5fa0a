"""YAML inventories of a deployment, validated against the shipped JSON Schema.

``inventory.schema.json`` beside this file is generated from the ``Deployment`` model
(``python -m facegate.compliance.inventory`` rewrites it; a test fails when it is stale), so the
file a consultant validates against and the model the checks read cannot drift apart.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from facegate.compliance.model import Deployment
from facegate.errors import InvalidInput

SCHEMA_FILE = "inventory.schema.json"


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps dates and times as strings, as JSON Schema expects."""


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


def validate_inventory(data: Any, source: str = "inventory") -> Deployment:
    """Validate parsed YAML/JSON data; ``InvalidInput`` lists every error with its path."""
    validator = jsonschema.Draft202012Validator(inventory_schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = [f"{source}: {_path(e.absolute_path)}: {e.message}" for e in errors[:20]]
        raise InvalidInput(
            f"{source} is not a valid inventory ({len(errors)} error(s)):\n" + "\n".join(lines),
            errors=lines,
        )
    return Deployment.model_validate(data)


def load_inventory(path: Path) -> Deployment:
    """Read and validate a YAML (or JSON) inventory file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"Cannot read inventory {path}: {exc.strerror}") from exc
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{path} is not valid YAML: {exc}") from exc
    if data is None:
        raise InvalidInput(f"{path} is empty.")
    return validate_inventory(data, source=str(path))


if __name__ == "__main__":
    target = Path(__file__).with_name(SCHEMA_FILE)
    target.write_text(
        json.dumps(generate_schema(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    print(f"wrote {target}")
