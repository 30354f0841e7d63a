"""Untrusted `ryax_metadata.yaml` text -> the domain's line-numbered `Node` tree.

The defensive read is the kit's (`ryax_kit.safe_yaml`: no anchors, aliases, merge keys or
tags beyond the core types, no duplicate keys, bounded size and nesting); this module only
sets the limits of a metadata file and converts the kit's tree to the domain's.
"""

from __future__ import annotations

from typing import Final

from ryax_kit.safe_yaml import YamlError, YamlLimits, YamlNode, load_yaml

from ..domain.action_metadata import (
    ActionMetadata,
    InvalidActionMetadata,
    MetadataError,
    Node,
    parse_action_metadata,
)

MiB: Final = 1024 * 1024
#: A metadata file is at most 1 MiB; one value may be nearly all of it (an inline logo...).
METADATA_LIMITS: Final = YamlLimits(max_bytes=MiB, max_depth=64, max_scalar_bytes=MiB)


def to_node(node: YamlNode) -> Node:
    if node.kind == "map":
        entries = {key: (node.key_lines[key], to_node(v)) for key, v in node.entries.items()}
        return Node(entries, node.line, node.column)
    if node.kind == "seq":
        return Node([to_node(item) for item in node.items], node.line, node.column)
    return Node(node.value, node.line, node.column)


def load_nodes(data: bytes | str, file: str) -> Node:
    """One YAML document as a `Node` tree; raises the kit's YamlError on any problem."""
    return to_node(load_yaml(data, file=file, limits=METADATA_LIMITS))


def load_action_metadata(
    data: bytes | str, file: str, *, allow_internal: bool = False
) -> ActionMetadata:
    """Read a `ryax_metadata.yaml`; YAML and format problems alike raise InvalidActionMetadata."""
    try:
        root = load_nodes(data, file)
    except YamlError as error:
        raise InvalidActionMetadata(
            [MetadataError(file, p.line, p.path, p.message) for p in error.problems]
        ) from None
    return parse_action_metadata(root, file, allow_internal=allow_internal)
