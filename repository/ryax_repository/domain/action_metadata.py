"""The published Ryax action format: `ryax_metadata.yaml` (apiVersion "ryax.tech/v2.0").

Standard library only. The infrastructure turns the YAML text into a tree of `Node` (value, line,
column) so that every rule below can point at the line of the offending field; this module never
sees YAML. `parse_action_metadata` checks the whole tree and reports *every* problem at once,
each naming the field path (`spec.inputs[2].type`) and what was expected.

The rules follow the published Ryax reference (docs/docs/reference/action_python3.md of
RyaxTech/ryax-engine) and the published scanner's JSON schema; where this platform differs on
purpose, docs/reference/FORMAT-NOTES.md says so.
"""

from __future__ import annotations

import ast
import math
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Final, TypeAlias

from . import hpc
from .errors import InvalidInput
from .nix_packages import (
    NotInstalled,
    PythonPackage,
    classify_dependency,
    declared_python_packages,
    python_packages,
)

API_VERSION: Final = "ryax.tech/v2.0"
LEGACY_API_VERSION: Final = "ryax.tech/v1"

Scalar: TypeAlias = str | int | float | bool | None
DefaultValue: TypeAlias = str | int | float | bool


@dataclass(frozen=True)
class Node:
    """One node of a parsed YAML document, with the 1-based line and column it starts on.

    A mapping's value is an insertion-ordered dict `key -> (line of the key, value node)`; a
    sequence's value is a list of nodes; anything else is a plain scalar.
    """

    value: Scalar | dict[str, tuple[int, Node]] | list[Node]
    line: int
    column: int = 1


@dataclass(frozen=True)
class MetadataError:
    """A problem in a metadata file; `message` is self-contained and starts with the field path."""

    file: str
    line: int
    field_path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


@dataclass(frozen=True)
class MetadataWarning:
    """Something valid in published Ryax that this platform ignores or cannot provide."""

    file: str
    line: int
    field_path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: warning: {self.message}"


class InvalidActionMetadata(Exception):
    """A metadata file breaks one or more rules; `errors` holds all of them, by line."""

    def __init__(self, errors: Sequence[MetadataError]) -> None:
        self.errors: tuple[MetadataError, ...] = tuple(sorted(errors, key=lambda e: e.line))
        super().__init__("\n".join(str(error) for error in self.errors))


class ActionKind(StrEnum):
    TRIGGER = "Trigger"
    PROCESSOR = "Processor"
    PUBLISHER = "Publisher"


class IOType(StrEnum):
    STRING = "string"
    LONGSTRING = "longstring"
    PASSWORD = "password"
    INTEGER = "integer"
    FLOAT = "float"
    BOOLEAN = "boolean"
    ENUM = "enum"
    FILE = "file"
    DIRECTORY = "directory"


@dataclass(frozen=True, kw_only=True)
class ActionIO:
    """One typed input or output of an action; outputs never carry a default value."""

    name: str
    human_name: str
    help: str
    type: IOType
    optional: bool = False
    enum_values: tuple[str, ...] = ()
    default_value: DefaultValue | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "human_name": self.human_name,
            "help": self.help,
            "type": self.type.value,
            "optional": self.optional,
            "enum_values": list(self.enum_values),
            "default_value": self.default_value,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> ActionIO:
        """Rebuild from `to_dict()` output (trusted data, not re-validated)."""
        default = data.get("default_value")
        enum_values = data.get("enum_values") or []
        assert isinstance(default, str | int | float | bool) or default is None
        assert isinstance(enum_values, list)
        return cls(
            name=str(data["name"]),
            human_name=str(data["human_name"]),
            help=str(data["help"]),
            type=IOType(str(data["type"])),
            optional=bool(data.get("optional", False)),
            enum_values=tuple(str(value) for value in enum_values),
            default_value=default,
        )


@dataclass(frozen=True, kw_only=True)
class Resources:
    """Default resource request: cores, bytes, seconds, GPUs (None when not asked for)."""

    cpu: float | None = None
    memory: int | None = None
    time: float | None = None
    gpu: int | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "cpu": self.cpu,
            "memory": self.memory,
            "time": self.time,
            "gpu": self.gpu,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Resources:
        cpu, memory, time, gpu = (data.get(key) for key in ("cpu", "memory", "time", "gpu"))
        assert cpu is None or isinstance(cpu, int | float)
        assert memory is None or isinstance(memory, int)
        assert time is None or isinstance(time, int | float)
        assert gpu is None or isinstance(gpu, int)
        return cls(
            cpu=None if cpu is None else float(cpu),
            memory=memory,
            time=None if time is None else float(time),
            gpu=gpu,
        )


@dataclass(frozen=True, kw_only=True)
class ActionMetadata:
    """A valid `ryax_metadata.yaml`, normalised (`kind: Source` is read as Trigger)."""

    kind: ActionKind
    id: str
    version: str
    human_name: str
    type: str
    description: str = ""
    logo: str | None = None
    categories: tuple[str, ...] = ()
    dependencies: tuple[str, ...] = ()
    resources: Resources = field(default_factory=Resources)
    python_version: str | None = None
    nixpkgs_version: str | None = None
    addons: tuple[str, ...] = ()
    dynamic_outputs: bool = False
    inputs: tuple[ActionIO, ...] = ()
    outputs: tuple[ActionIO, ...] = ()
    warnings: tuple[MetadataWarning, ...] = field(default=(), compare=False)
    source_file: str = field(default="", compare=False)
    logo_line: int = field(default=0, compare=False)

    @property
    def entrypoint_file(self) -> str:
        return entrypoint_file(self.kind)

    @property
    def python_packages(self) -> tuple[PythonPackage, ...]:
        """The `dependencies` that are Python packages (`python3Packages.X`...): the build
        installs their PyPI requirements with requirements.txt."""
        return python_packages(self.dependencies)

    @property
    def declared_python_packages(self) -> tuple[PythonPackage, ...]:
        """Every one of those, in order, even two that install the same requirement: what the
        build request carries (the builder tells them from the dependencies it does not
        install)."""
        return declared_python_packages(self.dependencies)

    def logo_errors(self, data: bytes) -> tuple[MetadataError, ...]:
        """Check the logo file's bytes (read by the caller) and report at the `logo` line."""
        return self.inspect_logo(data)[0]

    def inspect_logo(
        self, data: bytes
    ) -> tuple[tuple[MetadataError, ...], tuple[MetadataWarning, ...], str]:
        """Errors and warnings about the logo file's bytes (read by the caller), at the `logo`
        line, and the media type of what it really holds ("" when it is refused or absent)."""
        if self.logo is None:
            return (), (), ""
        check = inspect_logo(data, self.logo)
        errors = tuple(
            MetadataError(self.source_file, self.logo_line, "spec.logo", f"spec.logo: {problem}")
            for problem in check.errors
        )
        warnings = tuple(
            MetadataWarning(self.source_file, self.logo_line, "spec.logo", f"spec.logo: {note}")
            for note in check.warnings
        )
        return errors, warnings, "" if errors else check.media_type

    def to_dict(self) -> dict[str, object]:
        return {
            "api_version": API_VERSION,
            "kind": self.kind.value,
            "id": self.id,
            "version": self.version,
            "human_name": self.human_name,
            "description": self.description,
            "type": self.type,
            "logo": self.logo,
            "categories": list(self.categories),
            "dependencies": list(self.dependencies),
            "resources": self.resources.to_dict(),
            "python_version": self.python_version,
            "nixpkgs_version": self.nixpkgs_version,
            "addons": list(self.addons),
            "dynamic_outputs": self.dynamic_outputs,
            "inputs": [io.to_dict() for io in self.inputs],
            "outputs": [io.to_dict() for io in self.outputs],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> ActionMetadata:
        """Rebuild from `to_dict()` output (trusted data, not re-validated)."""

        def strings(key: str) -> tuple[str, ...]:
            values = data.get(key) or []
            assert isinstance(values, list)
            return tuple(str(value) for value in values)

        def ios(key: str) -> tuple[ActionIO, ...]:
            values = data.get(key) or []
            assert isinstance(values, list)
            return tuple(ActionIO.from_dict(value) for value in values)

        def optional_str(key: str) -> str | None:
            value = data.get(key)
            return None if value is None else str(value)

        resources = data.get("resources") or {}
        assert isinstance(resources, Mapping)
        return cls(
            kind=ActionKind(str(data["kind"])),
            id=str(data["id"]),
            version=str(data["version"]),
            human_name=str(data["human_name"]),
            type=str(data["type"]),
            description=str(data.get("description") or ""),
            logo=optional_str("logo"),
            categories=strings("categories"),
            dependencies=strings("dependencies"),
            resources=Resources.from_dict(resources),
            python_version=optional_str("python_version"),
            nixpkgs_version=optional_str("nixpkgs_version"),
            addons=strings("addons"),
            dynamic_outputs=bool(data.get("dynamic_outputs", False)),
            inputs=ios("inputs"),
            outputs=ios("outputs"),
        )


# ---------------------------------------------------------------------------------------------
# Published vocabulary

KIND_NAMES: Final[Mapping[str, ActionKind]] = {
    "Trigger": ActionKind.TRIGGER,
    "Source": ActionKind.TRIGGER,  # the name used by apiVersion v2.0 before "Trigger"
    "Processor": ActionKind.PROCESSOR,
    "Publisher": ActionKind.PUBLISHER,
}
_LEGACY_KINDS: Final[Mapping[str, str]] = {
    "Gateways": "Trigger",
    "Functions": "Processor",
    "Publishers": "Publisher",
}
SUPPORTED_TYPE: Final = "python3"
INTERNAL_TYPE: Final = "internal"
# Known to published Ryax, refused here: this platform only builds python3 actions.
OTHER_PUBLISHED_TYPES: Final = ("python3-cuda", "nodejs", "csharp-dotnet6")
# Published by the scanner's enum but not documented, and not supported here.
_UNSUPPORTED_IO_TYPES: Final = ("bytes", "table")

_TOP_FIELDS: Final = ("apiVersion", "kind", "spec")
_SPEC_FIELDS: Final = (
    "id",
    "version",
    "human_name",
    "description",
    "type",
    "logo",
    "categories",
    "dependencies",
    "resources",
    "options",
    "addons",
    "dynamic_outputs",
    "inputs",
    "outputs",
)
_SPEC_REQUIRED: Final = ("id", "version", "human_name", "type")
_INPUT_FIELDS: Final = (
    "name",
    "human_name",
    "help",
    "type",
    "optional",
    "enum_values",
    "default_value",
)
_OUTPUT_FIELDS: Final = (
    "name",
    "human_name",
    "help",
    "type",
    "optional",
    "enum_values",
)
_IO_REQUIRED: Final = ("name", "human_name", "help", "type")
_RESOURCE_FIELDS: Final = ("cpu", "memory", "time", "gpu")
_OPTION_FIELDS: Final = ("python", "nixpkgs")

_IO_TYPE_NAMES: Final = frozenset(member.value for member in IOType)
_ID_RE: Final = re.compile(r"[a-z0-9][a-z0-9.-]*")
_VERSION_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*")
_IO_NAME_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PYTHON_VERSION_RE: Final = re.compile(r"3\.[0-9]+")
_MEMORY_RE: Final = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([KMGT]i?)?")
_TIME_RE: Final = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([smhd])")

ID_LENGTH: Final = (3, 24)
VERSION_LENGTH: Final = (3, 128)
HUMAN_NAME_LENGTH: Final = (3, 128)
IO_HUMAN_NAME_MAX: Final = 128
IO_HELP_MAX: Final = 10_000
IO_NAME_MAX: Final = 64
MAX_IOS: Final = 64
MAX_ENUM_VALUES: Final = 64
ENUM_VALUE_MAX: Final = 10_000
MAX_CATEGORIES: Final = 32
CATEGORY_MAX: Final = 32
MAX_DEPENDENCIES: Final = 64
DEPENDENCY_MAX: Final = 1024
MIN_CPU: Final = 0.1
MIN_MEMORY: Final = 32 * 1024**2
MEMORY_UNITS: Final[Mapping[str, int]] = {
    "": 1,
    "K": 1024,
    "M": 1024**2,
    "G": 1024**3,
    "T": 1024**4,
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": 1024**3,
    "Ti": 1024**4,
}
TIME_UNITS: Final[Mapping[str, int]] = {"s": 1, "m": 60, "h": 3600, "d": 86400}
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
LOGO_MAX_SIDE: Final = 250
LOGO_SUFFIXES: Final = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg")
LOGO_NAMES: Final = ".png, .jpg, .jpeg, .gif, .webp or .svg"
_SUFFIX_FORMATS: Final[Mapping[str, str]] = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".gif": "GIF",
    ".webp": "WebP",
    ".svg": "SVG",
}
LOGO_MEDIA_TYPES: Final[Mapping[str, str]] = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "GIF": "image/gif",
    "WebP": "image/webp",
    "SVG": "image/svg+xml",
}


def entrypoint_file(kind: ActionKind) -> str:
    """Triggers run `ryax_run.py`; processors and publishers run `ryax_handler.py`."""
    return "ryax_run.py" if kind is ActionKind.TRIGGER else "ryax_handler.py"


def parse_memory(value: float | str) -> int:
    """`4G`, `512Mi`, `1.5G`, `1073741824` or `"1073741824"` -> bytes (K, M, G, T are 1024-based,
    as in published Ryax; Ki, Mi, Gi, Ti are the same). Raises ValueError naming the problem."""
    if isinstance(value, bool):
        raise TypeError("expected a size, not a boolean")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value != int(value):
            raise ValueError(f"a size in bytes must be a whole number, got {value}")
        return int(value)
    match = _MEMORY_RE.fullmatch(value.strip())
    if match is None:
        units = ", ".join(unit for unit in MEMORY_UNITS if unit)
        raise ValueError(
            f"expected a number of bytes or a number followed by one of {units} "
            f"(e.g. 512M or 4G), got {value!r}"
        )
    number, unit = match.group(1), match.group(2) or ""
    return int(float(number) * MEMORY_UNITS[unit])


def parse_time(value: float | str) -> float:
    """`30` (seconds), `90s`, `15m`, `1.5h`, `2d` -> seconds; ValueError names the problem."""
    if isinstance(value, bool):
        raise TypeError("expected a duration, not a boolean")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"expected a finite number of seconds, got {value}")
        return float(value)
    match = _TIME_RE.fullmatch(value.strip())
    if match is None:
        units = ", ".join(TIME_UNITS)
        raise ValueError(
            f"expected a number of seconds or a number followed by one of {units} "
            f"(e.g. 90s, 15m, 2h), got {value!r}"
        )
    return float(match.group(1)) * TIME_UNITS[match.group(2)]


# ---------------------------------------------------------------------------------------------
# Logo and entrypoint checks on file contents the caller has read


def image_size(data: bytes) -> tuple[str, int, int] | None:
    """(format, width, height) of a PNG, JPEG, GIF or WebP image, or None when it is none of
    them or is cut. SVG, a vector format without pixels, is told apart by `logo_format`."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        if len(data) < 24 or data[12:16] != b"IHDR":
            return None
        width, height = struct.unpack(">II", data[16:24])
        return ("PNG", width, height)
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    if data[:6] in (b"GIF87a", b"GIF89a"):
        if len(data) < 10:
            return None
        width, height = struct.unpack("<HH", data[6:10])
        return ("GIF", width, height)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_size(data)
    return None


def _jpeg_size(data: bytes) -> tuple[str, int, int] | None:
    index = 2
    while index + 4 <= len(data):
        if data[index] != 0xFF:
            return None
        marker = data[index + 1]
        if marker == 0xFF:  # fill byte before a marker
            index += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD9:  # markers without a length
            if marker == 0xD9:
                return None
            index += 2
            continue
        (length,) = struct.unpack(">H", data[index + 2 : index + 4])
        if length < 2:
            return None
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if index + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[index + 5 : index + 9])
            return ("JPEG", width, height)
        index += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[str, int, int] | None:
    """The canvas of a WebP file: its first chunk is VP8 (lossy), VP8L (lossless) or VP8X."""
    if len(data) < 30:
        return None
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return ("WebP", width & 0x3FFF, height & 0x3FFF)
    if chunk == b"VP8L" and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return ("WebP", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return ("WebP", width, height)
    return None


_SVG_PROLOG: Final = re.compile(
    r"\s*(?:<\?xml[^>]*\?>|<!--.*?-->|<!DOCTYPE[^>\[]*(?:\[.*?\])?\s*>)", re.S | re.I
)
_SVG_ROOT: Final = re.compile(r"<(?:[A-Za-z_][\w.-]*:)?svg[\s/>]")
_SVG_ACTIVE: Final = re.compile(
    r"<\s*(?:[\w.-]+:)?(?:script|foreignObject)\b|\bon[a-z]+\s*=|javascript\s*:|<!\s*(?:DOCTYPE|ENTITY)",
    re.I,
)


def _svg_text(data: bytes) -> str | None:
    """The text of an SVG document (UTF-8, its root element `svg`), or None."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    position = 0
    while match := _SVG_PROLOG.match(text, position):
        if match.end() == position:
            break
        position = match.end()
    rest = text[position:].lstrip()
    return text if _SVG_ROOT.match(rest) else None


def logo_format(data: bytes) -> str | None:
    """PNG, JPEG, GIF, WebP or SVG by the content (not the name), or None for anything else."""
    for signature, kind in _SIGNATURES:
        if data.startswith(signature) and (kind != "WebP" or data[8:12] == b"WEBP"):
            return kind
    return "SVG" if _svg_text(data) is not None else None


_SIGNATURES: Final = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"RIFF", "WebP"),
)


@dataclass(frozen=True)
class LogoCheck:
    """What a logo file holds: its real format and media type, and what is wrong with it.
    `errors` refuse the action; `warnings` (a name that does not match the content) do not."""

    format: str | None
    media_type: str
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def inspect_logo(data: bytes, name: str) -> LogoCheck:
    """A PNG, JPEG, GIF, WebP or SVG image of at most 250x250 pixels (SVG has no pixels); the
    content decides the type, a name saying another type is only a warning (published Ryax
    opens the file whatever its name)."""
    suffix = PurePosixPath(name).suffix.lower()
    if suffix not in LOGO_SUFFIXES:
        return LogoCheck(None, "", (f"logo {name!r} must be a {LOGO_NAMES} file",))
    if not data:
        return LogoCheck(None, "", (f"logo {name!r} is an empty file",))
    kind = logo_format(data)
    if kind is None:
        return LogoCheck(
            None,
            "",
            (f"logo {name!r} is not an image: expected PNG, JPEG, GIF, WebP or SVG content",),
        )
    media_type = LOGO_MEDIA_TYPES[kind]
    errors: list[str] = []
    if kind == "SVG":
        text = _svg_text(data) or ""
        if _SVG_ACTIVE.search(text):
            errors.append(
                f"logo {name!r} is an SVG image with active content (a script, an event "
                "handler, a javascript: link, a foreignObject or a DOCTYPE), which a logo may "
                "not have"
            )
    else:
        size = image_size(data)
        if size is None:
            return LogoCheck(kind, media_type, (f"logo {name!r} is not a readable {kind} image",))
        _, width, height = size
        if width == 0 or height == 0:
            errors.append(f"logo {name!r} has no pixels ({width}x{height})")
        elif width > LOGO_MAX_SIDE or height > LOGO_MAX_SIDE:
            errors.append(
                f"logo {name!r} is {width}x{height} pixels; at most "
                f"{LOGO_MAX_SIDE}x{LOGO_MAX_SIDE} is allowed"
            )
    warnings: tuple[str, ...] = ()
    if _SUFFIX_FORMATS[suffix] != kind:
        warnings = (
            f"logo {name!r}: the file is named {suffix} but holds a {kind} image; it is kept "
            f"and served as {media_type}",
        )
    return LogoCheck(kind, media_type, tuple(errors), warnings)


def check_logo(data: bytes, name: str) -> list[str]:
    """The problems that refuse a logo file (see `inspect_logo`)."""
    return list(inspect_logo(data, name).errors)


def check_entrypoint(kind: ActionKind, source: str) -> list[str]:
    """Problems with the code file `entrypoint_file(kind)`: it must define, at module level,
    `async def run(service, input_values)` for a trigger or `def handle(request)` otherwise."""
    file_name = entrypoint_file(kind)
    try:
        module = ast.parse(source, filename=file_name)
    except SyntaxError as error:
        return [f"{file_name}:{error.lineno}: syntax error: {error.msg}"]
    name, wanted_async, arguments = (
        ("run", True, 2) if kind is ActionKind.TRIGGER else ("handle", False, 1)
    )
    signature = (
        "async def run(service, input_values)"
        if kind is ActionKind.TRIGGER
        else "def handle(request)"
    )
    for statement in module.body:
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef) and statement.name == name:
            if isinstance(statement, ast.AsyncFunctionDef) != wanted_async:
                return [f"{file_name}:{statement.lineno}: {name} must be written `{signature}`"]
            positional = [*statement.args.posonlyargs, *statement.args.args]
            if len(positional) < arguments and statement.args.vararg is None:
                plural = "s" if arguments > 1 else ""
                return [
                    f"{file_name}:{statement.lineno}: {name} must take {arguments} "
                    + f"argument{plural}: `{signature}`"
                ]
            return []
    return [f"{file_name}: no module-level `{signature}` found"]


# ---------------------------------------------------------------------------------------------
# The parser


def parse_action_metadata(root: Node, file: str, *, allow_internal: bool = False) -> ActionMetadata:
    """Validate a `ryax_metadata.yaml` tree; raise InvalidActionMetadata with every problem.

    `allow_internal` admits `type: internal`, which published Ryax reserves for the platform's
    built-in actions (the HTTP API trigger); repositories scanned for users never set it.
    """
    return _Parser(file, allow_internal).parse(root)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _describe(node: Node) -> str:
    value = node.value
    if value is None:
        return "nothing (an empty value)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the number {value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        return f"the string {shown!r}"
    if isinstance(value, dict):
        return "a mapping"
    return "a list"


def _reason(error: InvalidInput) -> str:
    """An InvalidInput's message without its field (the parser names the path itself)."""
    return error.detail.removeprefix(f"{error.field}: ")


def _quote_hint(node: Node) -> str:
    """YAML reads `1.0`, `yes`, `3.10` as numbers or booleans: tell the user to quote them."""
    if isinstance(node.value, bool | int | float):
        return " (quote it in the YAML file to make it a string)"
    return ""


@dataclass(frozen=True)
class _Declared:
    """A Python package of spec.dependencies, with where it was declared."""

    line: int
    path: str
    package: PythonPackage


class _Parser:
    def __init__(self, file: str, allow_internal: bool) -> None:
        self.file = file
        self.allow_internal = allow_internal
        self.errors: list[MetadataError] = []
        self.warnings: list[MetadataWarning] = []

    # -- reporting ------------------------------------------------------------------------

    def error(self, line: int, path: str, message: str) -> None:
        self.errors.append(MetadataError(self.file, line, path, f"{path}: {message}"))

    def warn(self, line: int, path: str, message: str) -> None:
        self.warnings.append(MetadataWarning(self.file, line, path, f"{path}: {message}"))

    # -- shapes ---------------------------------------------------------------------------

    def mapping(
        self,
        node: Node,
        path: str,
        allowed: Sequence[str],
        required: Sequence[str] = (),
        what: str = "a mapping",
        own_line: int | None = None,
    ) -> dict[str, tuple[int, Node]] | None:
        """The known fields of a mapping; unknown and missing fields are reported (a missing one
        on the line of the mapping's own key, where the reader looks for it)."""
        if not isinstance(node.value, dict):
            self.error(node.line, path or "document", f"expected {what}, got {_describe(node)}")
            return None
        known: dict[str, tuple[int, Node]] = {}
        for key, (key_line, child) in node.value.items():
            if key in allowed:
                known[key] = (key_line, child)
            else:
                self.error(
                    key_line,
                    _join(path, key),
                    f"unknown field {key!r}; allowed fields here: {', '.join(allowed)}",
                )
        for key in required:
            if key not in known:
                line = node.line if own_line is None else own_line
                self.error(line, _join(path, key), "this required field is missing")
        return known

    def list_of(self, node: Node, path: str, what: str, maximum: int) -> list[Node] | None:
        if not isinstance(node.value, list):
            empty = " (write [] for none)" if node.value is None else ""
            self.error(
                node.line,
                path,
                f"expected a list of {what}{empty}, got {_describe(node)}",
            )
            return None
        if len(node.value) > maximum:
            self.error(
                node.line,
                path,
                f"at most {maximum} {what} are allowed, got {len(node.value)}",
            )
        return node.value

    def string(
        self,
        node: Node,
        path: str,
        *,
        minimum: int = 0,
        maximum: int | None = None,
        example: str = "",
    ) -> str | None:
        value = node.value
        if not isinstance(value, str):
            such_as = f" such as {example}" if example else ""
            self.error(
                node.line,
                path,
                f"expected a string{such_as}, got {_describe(node)}{_quote_hint(node)}",
            )
            return None
        if len(value) < minimum or (maximum is not None and len(value) > maximum):
            if maximum is None:
                bounds = "a non-empty string" if minimum == 1 else f"at least {minimum} characters"
            elif minimum:
                bounds = f"between {minimum} and {maximum} characters"
            else:
                bounds = f"at most {maximum} characters"
            got = f"{len(value)}" if value else "an empty string"
            self.error(node.line, path, f"expected {bounds}, got {got}")
            return None
        return value

    def boolean(self, node: Node, path: str) -> bool | None:
        if not isinstance(node.value, bool):
            self.error(node.line, path, f"expected true or false, got {_describe(node)}")
            return None
        return node.value

    def strings(
        self, node: Node, path: str, what: str, maximum_items: int, maximum_length: int
    ) -> tuple[str, ...]:
        items = self.list_of(node, path, what, maximum_items)
        if items is None:
            return ()
        values: list[str] = []
        for index, item in enumerate(items):
            value = self.string(item, f"{path}[{index}]", minimum=1, maximum=maximum_length)
            if value is not None:
                values.append(value)
        return tuple(values)

    # -- the document ---------------------------------------------------------------------

    def parse(self, root: Node) -> ActionMetadata:
        top = self.mapping(
            root,
            "",
            _TOP_FIELDS,
            _TOP_FIELDS,
            what="a mapping with apiVersion, kind and spec",
        )
        kind: ActionKind | None = None
        spec: dict[str, tuple[int, Node]] | None = None
        if top is not None:
            if "apiVersion" in top:
                self.api_version(top["apiVersion"][1])
            if "kind" in top:
                kind = self.kind(top["kind"][1])
            if "spec" in top:
                spec_line, spec_node = top["spec"]
                spec = self.mapping(
                    spec_node, "spec", _SPEC_FIELDS, _SPEC_REQUIRED, own_line=spec_line
                )
        result = self.spec(spec, kind) if spec is not None else None
        if self.errors or result is None or kind is None:
            raise InvalidActionMetadata(self.errors)
        return result

    def api_version(self, node: Node) -> None:
        if node.value == API_VERSION:
            return
        if node.value == LEGACY_API_VERSION:
            self.error(
                node.line,
                "apiVersion",
                f"version 1 metadata ({LEGACY_API_VERSION}) is not supported; migrate to "
                f'"{API_VERSION}" (kind Gateways -> Trigger, Functions -> Processor, '
                "Publishers -> Publisher; spec.detail -> spec.description; handler.py -> "
                "ryax_handler.py; run.py -> ryax_run.py)",
            )
            return
        self.error(node.line, "apiVersion", f'expected "{API_VERSION}", got {_describe(node)}')

    def kind(self, node: Node) -> ActionKind | None:
        value = node.value
        if isinstance(value, str) and value in KIND_NAMES:
            return KIND_NAMES[value]
        expected = "expected one of Trigger, Processor, Publisher (Source is read as Trigger)"
        if isinstance(value, str) and value in _LEGACY_KINDS:
            self.error(
                node.line,
                "kind",
                f"{value!r} is a version 1 kind; write {_LEGACY_KINDS[value]!r} ({expected})",
            )
        elif isinstance(value, str) and value.capitalize() in KIND_NAMES:
            self.error(
                node.line,
                "kind",
                f"{expected}, got {value!r}; kinds are capitalised: {value.capitalize()!r}",
            )
        else:
            self.error(node.line, "kind", f"{expected}, got {_describe(node)}")
        return None

    def spec(
        self, spec: dict[str, tuple[int, Node]], kind: ActionKind | None
    ) -> ActionMetadata | None:
        def get(key: str) -> Node | None:
            return spec[key][1] if key in spec else None

        action_id = version = human_name = action_type = None
        if (node := get("id")) is not None:
            action_id = self.action_id(node)
        if (node := get("version")) is not None:
            version = self.version(node)
        if (node := get("human_name")) is not None:
            low, high = HUMAN_NAME_LENGTH
            human_name = self.string(node, "spec.human_name", minimum=low, maximum=high)
        if (node := get("type")) is not None:
            action_type = self.action_type(node)
        description = ""
        if (node := get("description")) is not None:
            description = self.string(node, "spec.description") or ""
        logo: str | None = None
        logo_line = 0
        if (node := get("logo")) is not None:
            logo, logo_line = self.logo(node), node.line
        categories: tuple[str, ...] = ()
        if (node := get("categories")) is not None:
            categories = self.strings(
                node, "spec.categories", "categories", MAX_CATEGORIES, CATEGORY_MAX
            )
        dependencies: tuple[str, ...] = ()
        declared: list[_Declared] = []
        if (node := get("dependencies")) is not None:
            dependencies, declared = self.dependencies(node)
        resources = Resources()
        if (node := get("resources")) is not None:
            resources = self.resources(node)
        python_version = nixpkgs_version = None
        if (node := get("options")) is not None:
            python_version, nixpkgs_version = self.options(node)
        self.python_package_versions(declared, python_version)
        addons: tuple[str, ...] = ()
        if (node := get("addons")) is not None:
            addons = self.addons(node)
        dynamic_outputs = False
        if (node := get("dynamic_outputs")) is not None:
            dynamic_outputs = bool(self.boolean(node, "spec.dynamic_outputs"))
            if dynamic_outputs and kind is not None and kind is not ActionKind.TRIGGER:
                self.error(
                    node.line,
                    "spec.dynamic_outputs",
                    f"only a Trigger may have dynamic outputs (this action is a {kind.value})",
                )
        inputs: tuple[ActionIO, ...] = ()
        if (node := get("inputs")) is not None:
            inputs = self.ios(node, "spec.inputs", "input", _INPUT_FIELDS)
        outputs: tuple[ActionIO, ...] = ()
        if (node := get("outputs")) is not None:
            outputs = self.ios(node, "spec.outputs", "output", _OUTPUT_FIELDS)

        if (
            kind is None
            or action_id is None
            or version is None
            or human_name is None
            or action_type is None
        ):
            return None
        return ActionMetadata(
            kind=kind,
            id=action_id,
            version=version,
            human_name=human_name,
            type=action_type,
            description=description,
            logo=logo,
            categories=categories,
            dependencies=dependencies,
            resources=resources,
            python_version=python_version,
            nixpkgs_version=nixpkgs_version,
            addons=addons,
            dynamic_outputs=dynamic_outputs,
            inputs=inputs,
            outputs=outputs,
            warnings=tuple(self.warnings),
            source_file=self.file,
            logo_line=logo_line,
        )

    # -- spec fields ----------------------------------------------------------------------

    def action_id(self, node: Node) -> str | None:
        value = self.string(node, "spec.id", example="word-count")
        if value is None:
            return None
        low, high = ID_LENGTH
        if not (low <= len(value) <= high) or _ID_RE.fullmatch(value) is None:
            self.error(
                node.line,
                "spec.id",
                f"expected {low} to {high} characters among lowercase letters, digits, '-' and "
                f"'.', starting with a letter or digit; got {value!r}",
            )
            return None
        return value

    def version(self, node: Node) -> str | None:
        value = self.string(node, "spec.version", example='"1.0"')
        if value is None:
            return None
        low, high = VERSION_LENGTH
        if not (low <= len(value) <= high) or _VERSION_RE.fullmatch(value) is None:
            self.error(
                node.line,
                "spec.version",
                f"expected {low} to {high} characters among letters, digits, '.' and '-', "
                f'starting with a letter or digit (e.g. "1.0"); got {value!r}',
            )
            return None
        return value

    def action_type(self, node: Node) -> str | None:
        value = self.string(node, "spec.type", example="python3")
        if value is None:
            return None
        if value == SUPPORTED_TYPE or (value == INTERNAL_TYPE and self.allow_internal):
            return value
        if value in OTHER_PUBLISHED_TYPES:
            self.error(
                node.line,
                "spec.type",
                f"only python3 actions are supported by this platform for now; got {value!r}",
            )
        elif value == INTERNAL_TYPE:
            self.error(
                node.line,
                "spec.type",
                "'internal' is reserved for the platform's built-in actions; write python3",
            )
        else:
            self.error(
                node.line,
                "spec.type",
                f"unknown action type {value!r}; expected python3 (published Ryax also knows "
                f"{', '.join(OTHER_PUBLISHED_TYPES)}, which this platform does not support)",
            )
        return None

    def logo(self, node: Node) -> str | None:
        value = self.string(node, "spec.logo", minimum=1, example="logo.png")
        if value is None:
            return None
        path = PurePosixPath(value)
        if path.is_absolute() or ".." in path.parts or "\\" in value:
            self.error(
                node.line,
                "spec.logo",
                f"expected a file name relative to the action folder, inside it; got {value!r}",
            )
            return None
        if path.suffix.lower() not in LOGO_SUFFIXES:
            self.error(
                node.line,
                "spec.logo",
                f"expected a {LOGO_NAMES} file (at most 250x250 pixels); got {value!r}",
            )
            return None
        return value

    def dependencies(self, node: Node) -> tuple[tuple[str, ...], list[_Declared]]:
        """The Nix packages of published Ryax: Python package set attributes are installed from
        PyPI (`nix_packages`); every other one gets a warning on its own line."""
        path = "spec.dependencies"
        items = self.list_of(node, path, "dependencies", MAX_DEPENDENCIES)
        if items is None:
            return (), []
        values: list[str] = []
        packages: list[_Declared] = []
        for index, item in enumerate(items):
            item_path = f"{path}[{index}]"
            value = self.string(item, item_path, minimum=1, maximum=DEPENDENCY_MAX)
            if value is None:
                continue
            values.append(value)
            found = classify_dependency(value)
            if isinstance(found, NotInstalled):
                self.warn(item.line, item_path, found.reason)
            else:
                packages.append(_Declared(item.line, item_path, found))
        return tuple(values), packages

    def python_package_versions(
        self, packages: list[_Declared], python_version: str | None
    ) -> None:
        """`python310Packages.X` in an action for Python 3.11: X is installed for 3.11."""
        if python_version is None:
            return
        for declared in packages:
            package = declared.package
            if package.python_version and package.python_version != python_version:
                self.warn(
                    declared.line,
                    declared.path,
                    f"{package.dependency} is a package for Python {package.python_version}; "
                    f"it is installed from PyPI for this action's Python {python_version} "
                    "(spec.options.python.version)",
                )

    def resources(self, node: Node) -> Resources:
        fields = self.mapping(node, "spec.resources", _RESOURCE_FIELDS)
        if fields is None:
            return Resources()
        cpu = memory = time = gpu = None
        if "cpu" in fields:
            cpu = self.cpu(fields["cpu"][1])
        if "memory" in fields:
            memory = self.memory(fields["memory"][1])
        if "time" in fields:
            time = self.time(fields["time"][1])
        if "gpu" in fields:
            gpu = self.gpu(fields["gpu"][1])
        return Resources(cpu=cpu, memory=memory, time=time, gpu=gpu)

    def cpu(self, node: Node) -> float | None:
        value = node.value
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < MIN_CPU
        ):
            self.error(
                node.line,
                "spec.resources.cpu",
                f"expected a number of CPU cores of at least {MIN_CPU} (e.g. 0.5 or 2), "
                f"got {_describe(node)}",
            )
            return None
        return float(value)

    def memory(self, node: Node) -> int | None:
        path = "spec.resources.memory"
        value = node.value
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            self.error(
                node.line,
                path,
                f"expected a size such as 512M or 4G, got {_describe(node)}",
            )
            return None
        try:
            memory = parse_memory(value)
        except ValueError as error:
            self.error(node.line, path, str(error))
            return None
        if memory < MIN_MEMORY:
            self.error(
                node.line,
                path,
                f"at least 32M ({MIN_MEMORY} bytes) is needed to start the action runtime; "
                f"got {value!r} ({memory} bytes)",
            )
            return None
        return memory

    def time(self, node: Node) -> float | None:
        path = "spec.resources.time"
        value = node.value
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            self.error(
                node.line,
                path,
                f"expected a duration such as 90s, 15m or 2h, got {_describe(node)}",
            )
            return None
        try:
            seconds = parse_time(value)
        except ValueError as error:
            self.error(node.line, path, str(error))
            return None
        if seconds <= 0:
            self.error(node.line, path, f"expected a duration above zero, got {value!r}")
            return None
        return seconds

    def gpu(self, node: Node) -> int | None:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            self.error(
                node.line,
                "spec.resources.gpu",
                f"expected a whole number of GPUs (0 or more), got {_describe(node)}",
            )
            return None
        return value

    def options(self, node: Node) -> tuple[str | None, str | None]:
        fields = self.mapping(node, "spec.options", _OPTION_FIELDS)
        if fields is None:
            return None, None
        python_version = nixpkgs_version = None
        if "python" in fields:
            python = self.mapping(fields["python"][1], "spec.options.python", ("version",))
            if python is not None and "version" in python:
                version_node = python["version"][1]
                path = "spec.options.python.version"
                value = self.string(version_node, path, example='"3.11"')
                if value is not None and _PYTHON_VERSION_RE.fullmatch(value) is None:
                    self.error(
                        version_node.line,
                        path,
                        f'expected a Python 3 version as major.minor such as "3.11", got {value!r}',
                    )
                elif value is not None:
                    python_version = value
        if "nixpkgs" in fields:
            nixpkgs = self.mapping(fields["nixpkgs"][1], "spec.options.nixpkgs", ("version",))
            if nixpkgs is not None and "version" in nixpkgs:
                version_node = nixpkgs["version"][1]
                path = "spec.options.nixpkgs.version"
                nixpkgs_version = self.string(version_node, path, minimum=1, example="nixos-24.05")
                if nixpkgs_version is not None:
                    self.warn(
                        version_node.line,
                        path,
                        "this platform does not use Nix; the nixpkgs version is ignored",
                    )
        return python_version, nixpkgs_version

    def addons(self, node: Node) -> tuple[str, ...]:
        path = "spec.addons"
        if not isinstance(node.value, dict):
            self.error(
                node.line,
                path,
                f"expected a mapping of add-on name to its parameters, got {_describe(node)}",
            )
            return ()
        names: list[str] = []
        for name, (key_line, parameters) in node.value.items():
            if not isinstance(parameters.value, dict):
                self.error(
                    parameters.line,
                    _join(path, name),
                    f"expected a mapping of parameters (write {{}} for none), "
                    f"got {_describe(parameters)}",
                )
                continue
            names.append(name)
            if name == "hpc":
                self.hpc(parameters.value, _join(path, name))
                continue
            self.warn(
                key_line,
                _join(path, name),
                f"add-ons are not supported by this platform; {name!r} is ignored",
            )
        return tuple(names)

    def hpc(self, parameters: dict[str, tuple[int, Node]], path: str) -> None:
        """The HPC add-on's sbatch parameters (the action's defaults on a Slurm site): each
        key and value checked as the worker will, a bad one named with its line."""
        found: dict[str, str] = {}
        for raw, (key_line, node) in parameters.items():
            where = _join(path, raw)
            try:
                key = hpc.canonical_key(raw)
            except InvalidInput as error:
                self.error(key_line, where, _reason(error))
                continue
            if key in found:
                self.error(key_line, where, f"{key!r} is given twice (as {found[key]!r} too)")
                continue
            found[key] = raw
            if node.value is None:
                continue  # no value: none set (the worker reads it so)
            try:
                hpc.check_value(key, node.value)
            except InvalidInput as error:
                self.error(node.line, where, _reason(error))

    # -- inputs and outputs ---------------------------------------------------------------

    def ios(self, node: Node, path: str, what: str, allowed: Sequence[str]) -> tuple[ActionIO, ...]:
        items = self.list_of(node, path, f"{what}s", MAX_IOS)
        if items is None:
            return ()
        result: list[ActionIO] = []
        seen: dict[str, int] = {}
        for index, item in enumerate(items):
            item_path = f"{path}[{index}]"
            io = self.io(item, item_path, what, allowed)
            name_node = item.value.get("name") if isinstance(item.value, dict) else None
            name = name_node[1].value if name_node is not None else None
            if isinstance(name, str) and _IO_NAME_RE.fullmatch(name):
                if name in seen:
                    assert name_node is not None
                    self.error(
                        name_node[1].line,
                        f"{item_path}.name",
                        f"duplicate {what} name {name!r} (already used by {path}[{seen[name]}])",
                    )
                    continue
                seen[name] = index
            if io is not None:
                result.append(io)
        return tuple(result)

    def io(self, node: Node, path: str, what: str, allowed: Sequence[str]) -> ActionIO | None:
        fields = self.mapping(
            node, path, allowed, _IO_REQUIRED, what=f"a mapping describing an {what}"
        )
        if fields is None:
            return None

        def get(key: str) -> Node | None:
            return fields[key][1] if key in fields else None

        name = human_name = help_text = None
        io_type: IOType | None = None
        optional = False
        if (child := get("name")) is not None:
            name = self.io_name(child, f"{path}.name")
        if (child := get("human_name")) is not None:
            human_name = self.string(child, f"{path}.human_name", maximum=IO_HUMAN_NAME_MAX)
        if (child := get("help")) is not None:
            help_text = self.string(child, f"{path}.help", maximum=IO_HELP_MAX)
        if (child := get("type")) is not None:
            io_type = self.io_type(child, f"{path}.type")
        if (child := get("optional")) is not None:
            optional = bool(self.boolean(child, f"{path}.optional"))

        enum_values: tuple[str, ...] = ()
        enum_ok = True
        enum_node = get("enum_values")
        if io_type is IOType.ENUM:
            if enum_node is None:
                self.error(
                    node.line,
                    f"{path}.enum_values",
                    "an enum needs enum_values: a list of strings",
                )
                enum_ok = False
            else:
                enum_values, enum_ok = self.enum_values(enum_node, f"{path}.enum_values")
        elif enum_node is not None and io_type is not None:
            self.error(
                fields["enum_values"][0],
                f"{path}.enum_values",
                f"enum_values is only allowed with type enum (this {what} is {io_type.value})",
            )

        default_value: DefaultValue | None = None
        if (child := get("default_value")) is not None and io_type is not None:
            default_value = self.default_value(
                child,
                f"{path}.default_value",
                io_type,
                enum_values if enum_ok else None,
            )

        if name is None or human_name is None or help_text is None or io_type is None:
            return None
        return ActionIO(
            name=name,
            human_name=human_name,
            help=help_text,
            type=io_type,
            optional=optional,
            enum_values=enum_values,
            default_value=default_value,
        )

    def io_name(self, node: Node, path: str) -> str | None:
        value = self.string(node, path, example="input_file")
        if value is None:
            return None
        if len(value) > IO_NAME_MAX or _IO_NAME_RE.fullmatch(value) is None:
            self.error(
                node.line,
                path,
                f"expected an identifier of at most {IO_NAME_MAX} characters: letters, digits "
                f"and '_', not starting with a digit (it is the key in the handler's dict); "
                f"got {value!r}",
            )
            return None
        return value

    def io_type(self, node: Node, path: str) -> IOType | None:
        value = node.value
        known = ", ".join(member.value for member in IOType)
        if isinstance(value, str) and value in _IO_TYPE_NAMES:
            return IOType(value)
        if isinstance(value, str) and value in _UNSUPPORTED_IO_TYPES:
            self.error(
                node.line,
                path,
                f"type {value!r} is not supported by this platform; expected one of {known}",
            )
        else:
            self.error(node.line, path, f"expected one of {known}, got {_describe(node)}")
        return None

    def enum_values(self, node: Node, path: str) -> tuple[tuple[str, ...], bool]:
        items = self.list_of(node, path, "strings", MAX_ENUM_VALUES)
        if items is None:
            return (), False
        if not items:
            self.error(node.line, path, "an enum needs at least one value")
            return (), False
        values: list[str] = []
        ok = True
        for index, item in enumerate(items):
            value = self.string(item, f"{path}[{index}]", minimum=1, maximum=ENUM_VALUE_MAX)
            if value is None:
                ok = False
            elif value in values:
                self.error(item.line, f"{path}[{index}]", f"duplicate enum value {value!r}")
                ok = False
            else:
                values.append(value)
        return tuple(values), ok

    def default_value(
        self,
        node: Node,
        path: str,
        io_type: IOType,
        enum_values: tuple[str, ...] | None,
    ) -> DefaultValue | None:
        value = node.value
        got = _describe(node)
        if io_type in (IOType.FILE, IOType.DIRECTORY):
            self.error(
                node.line,
                path,
                f"a {io_type.value} input cannot have a default value, got {got}",
            )
        elif io_type in (IOType.STRING, IOType.LONGSTRING, IOType.PASSWORD):
            if isinstance(value, str):
                return value
            self.error(
                node.line,
                path,
                f"expected a string for a {io_type.value} input, got {got}{_quote_hint(node)}",
            )
        elif io_type is IOType.INTEGER:
            if isinstance(value, int) and not isinstance(value, bool):
                if INT64_MIN <= value <= INT64_MAX:
                    return value
                self.error(node.line, path, f"expected a 64-bit integer, got {got}")
            else:
                self.error(node.line, path, f"expected an integer, got {got}")
        elif io_type is IOType.FLOAT:
            if isinstance(value, int | float) and not isinstance(value, bool):
                if math.isfinite(value):
                    return float(value)
                self.error(node.line, path, f"expected a finite number, got {got}")
            else:
                self.error(node.line, path, f"expected a number, got {got}")
        elif io_type is IOType.BOOLEAN:
            if isinstance(value, bool):
                return value
            self.error(node.line, path, f"expected true or false, got {got}")
        elif io_type is IOType.ENUM:
            if not isinstance(value, str):
                self.error(
                    node.line,
                    path,
                    f"expected one of the enum_values, got {got}{_quote_hint(node)}",
                )
            elif enum_values is not None and value not in enum_values:
                self.error(
                    node.line,
                    path,
                    f"expected one of the enum_values ({', '.join(enum_values)}), got {value!r}",
                )
            elif enum_values is not None:
                return value
        return None
