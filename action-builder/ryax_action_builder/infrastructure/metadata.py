"""ryax_metadata.yaml, parsed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from ..domain.errors import BuildRefused


def parse_metadata(text: str) -> Mapping[str, Any]:
    try:
        document = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        raise BuildRefused(f"ryax_metadata.yaml: invalid YAML: {exc}") from None
    if not isinstance(document, Mapping):
        raise BuildRefused("ryax_metadata.yaml: expected a mapping at the top level")
    return document
