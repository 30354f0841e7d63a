"""ryax_metadata.yaml, parsed (the kit's safe YAML reader: the text comes from users)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ryax_kit.safe_yaml import YamlError, load_yaml_python

from ..domain.errors import BuildRefused

FILE = "ryax_metadata.yaml"


def parse_metadata(text: str) -> Mapping[str, Any]:
    try:
        document = load_yaml_python(text, file=FILE) if text.strip() else {}
    except YamlError as exc:
        raise BuildRefused(str(exc)) from None
    if not isinstance(document, Mapping):
        raise BuildRefused(f"{FILE}: expected a mapping at the top level")
    return document
