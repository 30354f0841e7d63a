"""The filestore key rule, segment encoding and configuration: no I/O."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ryax_kit.filestore import (
    MAX_KEY_BYTES,
    MAX_SEGMENT_BYTES,
    Filestore,
    InvalidKey,
    LocalDirFilestore,
    PresignNotSupported,
    S3Filestore,
    check_key,
    encode_segment,
    filestore_from_settings,
    split_endpoint,
)

RUN = str(uuid.uuid4())
EXECUTION = str(uuid.uuid4())
SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
ROOT = Path("/nonexistent-ryax-filestore-root")

# What the services build today (runner endpoints, worker output_key/trigger_output_key,
# repository source_key, action-builder artefact_key/artefact_info_key).
KEYS_BUILT_TODAY = [
    f"runs/{RUN}/{EXECUTION}/report/report.txt",
    f"runs/{RUN}/{EXECUTION}/_private_output/data.csv",
    f"runs/{RUN}/{EXECUTION}/images/3/picture.png",
    f"runs/{RUN}/{EXECUTION}/folder/folder.tar",
    f"triggers/{uuid.uuid4()}/step-1/{uuid.uuid4()}/out/file.json",
    f"sources/{SHA}.tar.gz",
    f"artefacts/{SHA}.tar.gz",
    f"artefacts/{SHA}.json",
]


@pytest.mark.parametrize(
    "key",
    [
        *KEYS_BUILT_TODAY,
        "a",
        "_",
        "A/b_c/d-e/f.g/h=i",
        "x" * MAX_SEGMENT_BYTES,
        "/".join(["y" * 200] * 5) + "/" + "z" * (MAX_KEY_BYTES - 5 * 201),
    ],
)
def test_accepted_keys(key: str) -> None:
    assert check_key(key) == key


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("", "empty"),
        ("/runs/a", "absolute"),
        ("runs/", "'' segment"),
        ("runs//a", "'' segment"),
        ("./runs", "'.' segment"),
        ("runs/./a", "'.' segment"),
        ("..", "'..' segment"),
        ("runs/../../etc/passwd", "'..' segment"),
        ("runs\\a", "backslash"),
        ("runs/a\x00b", "NUL"),
        ("runs/.hidden", "is not"),
        ("runs/-rf", "is not"),
        ("runs/=2E", "is not"),
        ("runs/my file.txt", "is not"),
        ("runs/résumé.pdf", "is not"),
        ("runs/a\nb", "is not"),
        ("runs/a?b", "is not"),
        ("runs/a%2Fb", "is not"),
        ("runs/" + "x" * (MAX_SEGMENT_BYTES + 1), "longer than 255"),
        ("a/" * 512 + "b", "longer than 1024"),
    ],
)
def test_refused_keys_name_the_key_and_why(key: str, reason: str) -> None:
    with pytest.raises(InvalidKey) as caught:
        check_key(key)
    assert isinstance(caught.value, ValueError)
    assert reason in str(caught.value)
    assert repr(key)[:50] in str(caught.value)


def test_a_key_that_is_not_a_string_is_refused() -> None:
    with pytest.raises(InvalidKey):
        check_key(b"runs/a")  # type: ignore[arg-type]


def test_a_user_file_name_needs_encoding_and_then_passes() -> None:
    for name in ["my file.txt", "résumé.pdf", ".bashrc", "..", "-rf", "数据.csv"]:
        with pytest.raises(InvalidKey):
            check_key(f"runs/{RUN}/{EXECUTION}/out/{name}")
        assert check_key(f"runs/{RUN}/{EXECUTION}/out/{encode_segment(name)}")


@pytest.mark.parametrize(
    ("text", "segment"),
    [
        ("report.pdf", "report.pdf"),
        ("_out", "_out"),
        ("my file.txt", "u=my=20file.txt"),
        (".bashrc", "u=.bashrc"),
        ("..", "u=.."),
        ("a=b", "u=a=3Db"),
        ("é", "u==C3=A9"),
        ("a/b", "u=a=2Fb"),
    ],
)
def test_encode_segment(text: str, segment: str) -> None:
    assert encode_segment(text) == segment


def test_a_long_name_is_hashed_and_keeps_its_extension() -> None:
    segment = encode_segment("données " * 40 + ".csv")
    assert segment.startswith("h=") and segment.endswith(".csv")
    assert len(segment) <= MAX_SEGMENT_BYTES
    check_key(segment)


def test_an_empty_name_cannot_be_encoded() -> None:
    with pytest.raises(InvalidKey):
        encode_segment("")


@given(st.text(min_size=1))
def test_any_text_encodes_to_a_valid_segment(text: str) -> None:
    segment = encode_segment(text)
    assert check_key(segment) == segment
    assert "/" not in segment


@given(st.text(min_size=1), st.text(min_size=1))
def test_distinct_texts_give_distinct_segments(a: str, b: str) -> None:
    if a != b:
        assert encode_segment(a) != encode_segment(b)


def test_surrogate_escaped_names_do_not_meet_their_utf8_twin() -> None:
    proper = "é"
    escaped = b"\xc3\xa9".decode("utf-8", "surrogateescape").encode().decode()  # "é" again
    assert escaped == proper
    raw = b"\xe9".decode("utf-8", "surrogateescape")  # a latin-1 file name on disk
    assert encode_segment(raw) != encode_segment(proper)
    check_key(encode_segment(raw))


_TRICKY = st.lists(st.sampled_from([*"./\\\x00 a=_-~%:é", "..", "../", "/.."]), max_size=30).map(
    "".join
)


@given(st.one_of(st.text(max_size=300), _TRICKY))
def test_no_key_escapes_the_local_root(key: str) -> None:
    store = LocalDirFilestore(ROOT)
    try:
        path = store.path_of(key)
    except InvalidKey:
        return
    resolved = path.resolve()
    assert resolved.is_relative_to(ROOT.resolve())
    assert resolved != ROOT.resolve()


def test_local_store_refuses_a_bad_key_before_any_io() -> None:
    with pytest.raises(InvalidKey):
        LocalDirFilestore(ROOT).path_of("../outside")


# --------------------------------------------------------------------------- configuration


def _settings(**overrides: object) -> dict[str, object]:
    settings: dict[str, object] = {
        "s3_endpoint": None,
        "s3_access_key": "ryax",
        "s3_secret_key": "s3cr3t-value-never-shown",
        "s3_bucket": "ryax-files",
        "s3_secure": False,
        "s3_region": None,
        "filestore_dir": "/var/lib/ryax/files",
    }
    settings.update(overrides)
    return settings


@pytest.mark.parametrize("endpoint", [None, "", "  "])
def test_without_an_endpoint_the_filestore_is_the_directory(endpoint: str | None) -> None:
    store = filestore_from_settings(**_settings(s3_endpoint=endpoint))  # type: ignore[arg-type]
    assert isinstance(store, LocalDirFilestore)
    assert store.root == Path("/var/lib/ryax/files")


@pytest.mark.parametrize(
    ("endpoint", "secure", "address", "tls"),
    [
        ("http://seaweedfs:8333", True, "seaweedfs:8333", False),
        ("https://s3.example.org", False, "s3.example.org", True),
        ("https://s3.example.org:9443/", False, "s3.example.org:9443", True),
        ("minio:9000", False, "minio:9000", False),
        ("minio:9000", True, "minio:9000", True),
    ],
)
def test_an_endpoint_gives_s3(endpoint: str, secure: bool, address: str, tls: bool) -> None:
    store = filestore_from_settings(**_settings(s3_endpoint=endpoint, s3_secure=secure))  # type: ignore[arg-type]
    assert isinstance(store, S3Filestore)
    assert (store.endpoint, store.secure, store.bucket) == (address, tls, "ryax-files")


@pytest.mark.parametrize(
    "endpoint", ["ftp://host:21", "http://host:9000/bucket", "http://user:pw@host", "host/path"]
)
def test_a_malformed_endpoint_is_refused(endpoint: str) -> None:
    with pytest.raises(ValueError, match="invalid S3 endpoint"):
        split_endpoint(endpoint, False)


def test_both_adapters_are_filestores() -> None:
    # Checked by mypy: each adapter has every method of the port, with its signature.
    stores: list[Filestore] = [
        LocalDirFilestore(ROOT),
        S3Filestore(endpoint="127.0.0.1:9", access_key="a", secret_key="b", bucket="c"),
    ]
    assert len(stores) == 2


def test_repr_shows_no_credentials() -> None:
    store = filestore_from_settings(
        **_settings(s3_endpoint="http://seaweedfs:8333", s3_public_endpoint="https://files.example")  # type: ignore[arg-type]
    )
    text = repr(store)
    assert "seaweedfs:8333" in text and "files.example" in text
    assert "s3cr3t" not in text and "ryax'" not in text


async def test_a_public_endpoint_signs_urls_for_that_host_offline() -> None:
    # Nothing listens on either address: signing for another host needs no request.
    store = S3Filestore(
        endpoint="127.0.0.1:9",
        access_key="ryax",
        secret_key="s3cr3t-value-never-shown",
        bucket="files",
        public_endpoint="https://files.example.org:8443",
    )
    url = await store.presigned_get_url("runs/a/b", timedelta(minutes=5))
    assert url.startswith("https://files.example.org:8443/files/runs/a/b?")
    assert "us-east-1" in url
    assert "s3cr3t" not in url


@pytest.mark.parametrize(
    "expires", [timedelta(0), timedelta(milliseconds=500), timedelta(days=7, seconds=1)]
)
async def test_presign_expiry_is_between_one_second_and_seven_days(expires: timedelta) -> None:
    store = S3Filestore(
        endpoint="127.0.0.1:9",
        access_key="ryax",
        secret_key="s3cr3t-value-never-shown",
        bucket="files",
        region="us-east-1",
    )
    with pytest.raises(ValueError, match="between 1 second and 7 days"):
        await store.presigned_get_url("runs/a", expires)
    with pytest.raises(ValueError, match="between 1 second and 7 days"):
        await store.presigned_put_url("runs/a", expires)


async def test_the_local_directory_hands_out_no_urls() -> None:
    store = LocalDirFilestore(ROOT)
    for presign in (store.presigned_get_url, store.presigned_put_url):
        with pytest.raises(PresignNotSupported, match="RYAX_S3_ENDPOINT"):
            await presign("runs/a", timedelta(minutes=1))


def test_filestore_settings_from_the_environment(tmp_path: Path) -> None:
    from ryax_kit.filestore import FilestoreSettings, LocalDirFilestore, S3Filestore
    from ryax_kit.settings import Env

    local = FilestoreSettings.read(Env({}), default_dir=tmp_path)
    assert isinstance(local.filestore(), LocalDirFilestore)
    assert local.filestore_dir == tmp_path
    s3 = FilestoreSettings.read(
        Env(
            {
                "RYAX_S3_ENDPOINT": "http://127.0.0.1:9000",
                "RYAX_S3_ACCESS_KEY": "ak",
                "RYAX_S3_SECRET_KEY": "very-secret",
                "RYAX_S3_BUCKET": "b",
            }
        ),
        default_dir=tmp_path,
    )
    assert "very-secret" not in repr(s3)
    store = s3.filestore()
    assert isinstance(store, S3Filestore) and store.bucket == "b"


def test_a_malformed_endpoint_stops_the_start(tmp_path: Path) -> None:
    from ryax_kit.filestore import FilestoreSettings
    from ryax_kit.settings import ConfigurationError, Env

    with pytest.raises(ConfigurationError, match="RYAX_S3_ENDPOINT: invalid S3 endpoint"):
        FilestoreSettings.read(
            Env({"RYAX_S3_ENDPOINT": "ftp://host:21/bucket"}), default_dir=tmp_path
        )
