"""The rule catalog: ``catalog.yaml`` beside this file, loaded and validated once."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

Severity = Literal["blocker", "warning", "info"]
LANGS: tuple[str, ...] = ("zh-CN", "en")


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    zh: str = Field(alias="zh-CN")
    en: str
    fix_zh: str = Field(alias="fix_zh-CN")
    fix_en: str
    severity: Severity | None = None


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    source: str
    article: str
    obligation: str
    severity: Severity
    checks: list[str]
    evidence: str
    title: dict[str, str]
    messages: dict[str, Message]

    def title_in(self, lang: str) -> str:
        return self.title[lang]


@lru_cache(maxsize=1)
def load_catalog() -> dict[str, Rule]:
    """All rules by id, in catalog order."""
    text = resources.files("facegate.compliance").joinpath("catalog.yaml").read_text("utf-8")
    raw = yaml.safe_load(text)
    rules = [Rule.model_validate(r) for r in raw["rules"]]
    by_id = {r.id: r for r in rules}
    if len(by_id) != len(rules):
        raise ValueError("catalog.yaml has duplicate rule ids")
    for r in rules:
        missing = [lang for lang in LANGS if not r.title.get(lang)]
        if missing:
            raise ValueError(f"catalog rule {r.id} has no title in {missing}")
    return by_id


def rule(rule_id: str) -> Rule:
    return load_catalog()[rule_id]
