"""Pure adapters: protobuf mappers, credential encryption, git output scrubbing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import cast

import pytest

from ryax_kit.crypto import KeyRing
from ryax_kit.messaging import PoisonMessage
from ryax_repository.application.use_cases import RepositoryUseCases
from ryax_repository.domain.action_metadata import (
    ActionIO,
    ActionKind,
    ActionMetadata,
    IOType,
    Resources,
)
from ryax_repository.domain.errors import CredentialsUnreadable
from ryax_repository.domain.events import ActionBuildRequested, ActionReady
from ryax_repository.domain.model import Credentials, RepositoryId
from ryax_repository.domain.nix_packages import PythonPackage, classify_dependency
from ryax_repository.infrastructure.git import scrub
from ryax_repository.infrastructure.messaging.handlers import make_handler
from ryax_repository.infrastructure.messaging.mappers import (
    EXCHANGE,
    action_build_failed_from_proto,
    action_built_from_proto,
    event_to_message,
)
from ryax_repository.infrastructure.proto import builder_events_pb2 as builder_pb
from ryax_repository.infrastructure.proto import repository_events_pb2 as pb
from ryax_repository.infrastructure.security import SealedCredentialCipher

NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
SECRET = "a-platform-secret-key-of-32-chars-or-more"


def test_build_requested_goes_to_the_repository_exchange() -> None:
    event = ActionBuildRequested(
        event_id="e1",
        build_id="b1",
        project_id="p1",
        action_id="demo",
        action_version="1.0",
        action_kind="processor",
        source_key="sources/x.tar.gz",
        source_sha256="x" * 64,
        metadata_yaml="apiVersion: x",
        requested_at=NOW,
        repository_id="r1",
        source_commit="c" * 40,
        python_packages=(
            cast(PythonPackage, classify_dependency("pythonPackages.scikitlearn")),
            cast(PythonPackage, classify_dependency("python311Packages.numpy_1")),
        ),
    )
    message = event_to_message(event)
    assert (message.exchange, message.routing_key, message.type, message.event_id) == (
        EXCHANGE,
        "ActionBuildRequested",
        "ActionBuildRequested",
        "e1",
    )
    decoded = pb.ActionBuildRequested.FromString(message.body)
    assert decoded.source_sha256 == "x" * 64 and decoded.action_kind == "processor"
    assert decoded.requested_at.ToDatetime(tzinfo=UTC) == NOW
    assert decoded.metadata_yaml == "apiVersion: x" and decoded.source_commit == "c" * 40
    assert [(p.dependency, p.requirement) for p in decoded.python_packages] == [
        ("pythonPackages.scikitlearn", "scikit-learn"),
        ("python311Packages.numpy_1", "numpy<2"),
    ]


def test_action_ready_carries_the_full_definition() -> None:
    metadata = ActionMetadata(
        kind=ActionKind.TRIGGER,
        id="timer",
        version="2.0",
        human_name="Timer",
        type="python3",
        description="ticks",
        categories=("time",),
        inputs=(
            ActionIO(
                name="n", human_name="N", help="how many", type=IOType.INTEGER, default_value=3
            ),
            ActionIO(
                name="mode",
                human_name="Mode",
                help="m",
                type=IOType.ENUM,
                enum_values=("a", "b"),
                optional=True,
            ),
        ),
        outputs=(ActionIO(name="f", human_name="F", help="file", type=IOType.FILE),),
        resources=Resources(cpu=0.5, memory=512 * 1024**2, time=60.0, gpu=1),
    )
    event = ActionReady(
        event_id="e2",
        project_id="p1",
        metadata=metadata,
        artefact_key="artefacts/a.tar.gz",
        artefact_sha256="a" * 64,
        logo=b"\x89PNG",
        logo_media_type="image/png",
        repository_id="r1",
        source_commit="c1",
        build_id="b1",
        ready_at=NOW,
    )
    message = event_to_message(event)
    assert message.routing_key == "ActionReady"
    ready = pb.ActionReady.FromString(message.body)
    assert (ready.kind, ready.action_id, ready.action_version) == ("trigger", "timer", "2.0")
    assert [i.name for i in ready.inputs] == ["n", "mode"]
    assert json.loads(ready.inputs[0].default_value) == 3
    assert not ready.inputs[1].HasField("default_value")
    assert list(ready.inputs[1].enum_values) == ["a", "b"] and ready.inputs[1].optional
    assert ready.outputs[0].type == "file"
    assert (ready.resources.cpu, ready.resources.memory_bytes, ready.resources.gpu) == (
        0.5,
        512 * 1024**2,
        1,
    )
    assert ready.logo == b"\x89PNG" and ready.logo_media_type == "image/png"
    assert ready.build_id == "b1" and ready.artefact_sha256 == "a" * 64


def test_action_ready_without_logo_has_no_logo_field() -> None:
    metadata = ActionMetadata(
        kind=ActionKind.PROCESSOR, id="x", version="1.0", human_name="Xxx", type="python3"
    )
    event = ActionReady(
        event_id="e",
        project_id="p",
        metadata=metadata,
        artefact_key="k",
        artefact_sha256="s",
        logo=None,
        logo_media_type="",
        repository_id="",
        source_commit="",
        build_id="b",
        ready_at=NOW,
    )
    ready = pb.ActionReady.FromString(event_to_message(event).body)
    assert not ready.HasField("logo") and ready.logo_media_type == ""


def test_builder_answers_become_commands() -> None:
    built = action_built_from_proto(
        builder_pb.ActionBuilt(
            event_id="e",
            build_id="b",
            project_id="p",
            artefact_key="k",
            artefact_sha256="s",
            build_log="log",
            cached=True,
            duration_seconds=1.5,
        )
    )
    assert (built.build_id, built.log, built.cached, built.duration_seconds) == (
        "b",
        "log",
        True,
        1.5,
    )
    failed = action_build_failed_from_proto(
        builder_pb.ActionBuildFailed(build_id="b", project_id="p", reason="why", build_log="log")
    )
    assert (failed.reason, failed.log) == ("why", "log")


R1, R2 = RepositoryId("repository-1"), RepositoryId("repository-2")


async def test_an_unknown_message_type_is_poison() -> None:
    handle = make_handler(cast(RepositoryUseCases, object()))
    with pytest.raises(PoisonMessage, match="unexpected message type 'ActionDeleted'"):
        await handle("m1", "ActionDeleted", b"")


def test_credentials_round_trip_and_are_unreadable_with_another_key() -> None:
    cipher = SealedCredentialCipher(KeyRing([SECRET]))
    token = cipher.encrypt(Credentials(username="bot", password="p@ss-word"), R1)
    assert "p@ss-word" not in token and "bot" not in token
    assert cipher.decrypt(token, R1) == Credentials(username="bot", password="p@ss-word")
    with pytest.raises(CredentialsUnreadable, match="RYAX_SECRET_KEY"):
        SealedCredentialCipher(KeyRing([SECRET + "-changed"])).decrypt(token, R1)
    with pytest.raises(CredentialsUnreadable, match="RYAX_SECRET_KEY"):
        cipher.decrypt("not a sealed value", R1)
    with pytest.raises(ValueError, match="at least 32 characters"):
        SealedCredentialCipher(KeyRing(["short"]))
    assert "***" in repr(cipher)


def test_credentials_are_bound_to_their_repository() -> None:
    cipher = SealedCredentialCipher(KeyRing([SECRET]))
    token = cipher.encrypt(Credentials(username="bot", ssh_key="KEY"), R1)
    with pytest.raises(CredentialsUnreadable):
        cipher.decrypt(token, R2)


def test_credentials_stay_readable_after_a_key_rotation() -> None:
    token = SealedCredentialCipher(KeyRing([SECRET])).encrypt(Credentials(password="tok"), R1)
    rotated = SealedCredentialCipher(KeyRing([SECRET + "-new", SECRET]))
    assert rotated.decrypt(token, R1) == Credentials(password="tok")


def test_git_messages_are_scrubbed() -> None:
    text = "fatal: unable to access 'https://bot:tok3n@host/x.git/': tok3n rejected"
    cleaned = scrub(text, ("tok3n",))
    assert "tok3n" not in cleaned and "https://***@host" in cleaned
