from __future__ import annotations

from pathlib import Path

import pytest

from ryax_kit.settings import CommonSettings, ConfigurationError, Env


def test_typed_reads_with_defaults() -> None:
    e = Env({"A": "12", "B": "0.5", "C": "yes", "D": "a, b,,c", "E": "", "P": "~/x"})
    assert e.integer("A", 1) == 12
    assert e.number("B", 1.0) == 0.5
    assert e.flag("C") is True
    assert e.items("D") == ("a", "b", "c")
    assert e.text("E", "default") == "default"  # empty counts as unset
    assert e.integer("MISSING", 7) == 7
    path = e.path("P")
    assert path is not None and path == Path("~/x").expanduser()
    assert Env({"S": "/run/ryax/w.sock"}).socket_path("S") == Path("/run/ryax/w.sock")
    assert e.socket_path("MISSING") is None


@pytest.mark.parametrize(
    ("env", "read", "message"),
    [
        ({"PORT": "eighty"}, lambda e: e.integer("PORT", 1), "PORT='eighty' is not a whole number"),
        ({"T": "soon"}, lambda e: e.number("T", 1.0), "T='soon' is not a number"),
        ({"T": "nan"}, lambda e: e.number("T", 1.0), "T='nan' is not a finite number"),
        ({"F": "maybe"}, lambda e: e.flag("F"), "F='maybe': expected true or false"),
        ({}, lambda e: e.required("KEY"), "KEY is required"),
        ({"KEY": "short"}, lambda e: e.required("KEY", min_length=32), "at least 32"),
        ({"S": "run/x.sock"}, lambda e: e.socket_path("S"), "S=run/x.sock: give an absolute path"),
        (
            {"S": "/" + "d" * 120 + "/x.sock"},
            lambda e: e.socket_path("S"),
            "a Unix socket's path is at most 107 bytes, this one has 128",
        ),
        ({"N": "-1"}, lambda e: e.integer("N", 1, minimum=0), "N=-1 is below the minimum 0"),
        ({"N": "9"}, lambda e: e.integer("N", 1, maximum=5), "N=9 is above the maximum 5"),
        ({"L": "xml"}, lambda e: e.text("L", choices=("json", "text")), "expected one of json"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], read: object, message: str) -> None:
    with pytest.raises(ConfigurationError) as error:
        read(Env(env))  # type: ignore[operator]
    assert message in str(error.value)
    assert str(error.value.code).startswith("configuration error: ")


def test_common_settings() -> None:
    s = CommonSettings.read(
        Env({"RYAX_HTTP_PORT": "9000", "RYAX_LOG_FORMAT": "json", "RYAX_LOG_LEVEL": "WARNING"}),
        default_port=8000,
    )
    assert (s.http_host, s.http_port, s.log_format, s.log_level) == (
        "127.0.0.1",
        9000,
        "json",
        "warning",
    )
    assert CommonSettings.read(Env({}), default_port=8000).http_port == 8000
    with pytest.raises(ConfigurationError):
        CommonSettings.read(Env({"RYAX_LOG_FORMAT": "yaml"}), default_port=1)
