"""Every service's OpenAPI document fuzzed with schemathesis: zero server errors, every answer
documented (status, content type, body schema), no secret in any answer; and every project
operation refused on another user's project (docs/fuzzing.md).

The services run in this process on a platform of their own (conftest.py: fresh databases, a
vhost, real data made first). Each test loads the document the service serves, and for each
operation schemathesis generates requests that fit the document (positive) and that do not
(negative), from its coverage phase and from Hypothesis; each carries `Authorization: Bearer`
with a real user's token, and its path parameters get real ids (most of the time: one time in
five the generated value is kept, so that unknown and odd ids are tried too).

Bounded: MAX_EXAMPLES per operation (RYAX_FUZZ_MAX_EXAMPLES), deterministic (Hypothesis'
derandomize, its example database off); RYAX_FUZZ_RANDOM=1 explores with a random seed instead.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import zlib
from collections import Counter
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import pytest
import requests
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

MAX_EXAMPLES = int(os.environ.get("RYAX_FUZZ_MAX_EXAMPLES", "25"))
# Per operation (the platform's set-up, about 30 s, counts for the first).
pytestmark = [pytest.mark.fuzz, pytest.mark.timeout(max(300, 3 * MAX_EXAMPLES))]
RANDOM = os.environ.get("RYAX_FUZZ_RANDOM", "") == "1"
#: What the platform fixture says no answer may contain (set by `fuzz`), by what it is.
SECRETS: dict[str, list[str]] = {}
#: A field of a request body whose value is a secret (never to be echoed back), by name; and
#: `value` on a /secrets path. (An input value's `secret` is a secret's name, echoed.)
SECRET_FIELD = re.compile(r"password|credential|token|api_key|ssh_key|private_key", re.I)


def _sent(value: Any, path: str, secret: bool, inside_secret: bool = False) -> Iterator[str]:
    """The strings sent in fields that hold secrets (a password, a secret's value...), or with
    `secret=False` in the other fields."""
    if isinstance(value, dict):
        for key, item in value.items():
            holds = bool(SECRET_FIELD.search(str(key))) or (key == "value" and "/secrets" in path)
            yield from _sent(item, path, secret, inside_secret or holds)
    elif isinstance(value, list):
        for item in value:
            yield from _sent(item, path, secret, inside_secret)
    elif isinstance(value, str) and inside_secret == secret:
        yield value


def _sent_secrets(case: Any) -> Iterator[str]:
    path = case.operation.path
    public = [
        *_sent(case.body, path, secret=False),
        *(str(v) for v in (getattr(case, "path_parameters", None) or {}).values()),
        *(str(v) for v in (getattr(case, "query", None) or {}).values()),
    ]
    for value in _sent(case.body, path, secret=True):
        # Degenerate strings ("00000000") could be part of an answer by chance, and a value
        # also sent in a field that is no secret (a username equal to the password) is shown
        # for that field: those are skipped.
        if len(value) >= 8 and len(set(value)) > 3 and not any(value in p for p in public):
            yield value


@schemathesis.check
def no_secret_in_answer(ctx: Any, response: Any, case: Any) -> bool | None:
    """No answer (body or headers) shows a password, a key, a credential, a secret's value,
    a password hash, or a secret the request itself sent."""
    answer = response.content.decode("utf-8", "replace") + "\n" + json.dumps(dict(response.headers))
    found = [what for what, values in SECRETS.items() if any(v and v in answer for v in values)]
    if any(v in answer for v in _sent_secrets(case)):
        found.append("a secret the request sent")
    if found:
        raise AssertionError(f"the answer shows {', '.join(found)}")
    return None


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    no_secret_in_answer,
]
SESSION = requests.Session()
SERVED: dict[str, Any] = {}
#: The statuses answered, by operation (RYAX_FUZZ_STATS=file writes them at the end).
STATUSES: dict[str, Counter[int]] = {}
#: The first answer's body (its start), by operation and status: why calls were refused.
SAMPLES: dict[str, dict[int, str]] = {}


def load_schema(service: str) -> Any:
    """The service's OpenAPI document (what it serves at /<service>/openapi.json: the test
    checks they are the same), with the fuzzing settings. Read at collection: one test per
    operation; the base URL is the platform's, given with each call."""
    importlib.import_module(f"ryax_{service}.app")  # every route module registered
    api = importlib.import_module(f"ryax_{service}.infrastructure.api.routes").api
    config = schemathesis.Config.from_dict(
        {
            "request-timeout": 30,
            "generation": {
                "max-examples": MAX_EXAMPLES,
                "deterministic": not RANDOM,
                "database": "none",
                # The token is ours (below): no generated Authorization header.
                "with-security-parameters": False,
            },
            "phases": {"stateful": {"enabled": False}},
            "operations": [
                {
                    # A sync endpoint call answers 504 (documented) when the run does not end
                    # within ?timeout= (0 is allowed): not a server error.
                    "include-path-regex": "/endpoints/\\{endpoint\\}$",
                    "checks": {
                        "not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "504"]}
                    },
                }
            ],
        }
    )
    return schemathesis.openapi.from_dict(api.openapi(), config=config)


@pytest.fixture(scope="module", autouse=True)
def statuses() -> Any:
    yield STATUSES
    target = os.environ.get("RYAX_FUZZ_STATS")
    if target:
        with open(target, "w") as out:
            stats = {
                op: {"statuses": dict(sorted(c.items())), "samples": SAMPLES.get(op, {})}
                for op, c in sorted(STATUSES.items())
            }
            json.dump(stats, out, indent=1)


def real_value(ids: dict[str, str], method: str, path: str, name: str) -> str | None:
    """The real id for path parameter `name` of an operation: a specific one first (the object
    a DELETE may destroy, the workflow a write may change, the run a cancel may stop...)."""
    keys = []
    if method == "delete" and path.endswith("{" + name + "}"):
        keys.append(f"{name}:delete")
    for suffix in ("cancel", "outputs", "logo"):
        if path.endswith("/" + suffix):
            keys.append(f"{name}:{suffix}")
    if method != "get":
        keys.append(f"{name}:write")
    keys.append(name)
    return next((ids[k] for k in keys if k in ids), None)


def _often(generated: Any) -> bool:
    """True four times in five, decided by the generated value (so, deterministic)."""
    return zlib.crc32(repr(generated).encode()) % 5 != 0


def fuzz(case: Any, platform: Any, service: str, token: str) -> None:
    method, path = case.operation.method.lower(), case.operation.path
    for params in (case.path_parameters, case.query):  # ?project=, ?workflow_id= ... too
        for name, generated in list((params or {}).items()):
            real = real_value(platform.ids[service], method, path, name)
            if real is not None and _often(generated):
                params[name] = real
    if path.endswith("/endpoints/{endpoint}") and isinstance(case.body, dict) and _often(case.body):
        # The endpoint's fields are its own (the document says "an object"): mostly its one
        # required field, with a generated text, so that runs start.
        texts = [v for v in case.body.values() if isinstance(v, str)]
        case.body = {"text": texts[0] if texts else json.dumps(case.body)}
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
    SECRETS.update(platform.secrets)
    base_url = platform.urls[service]
    served = SERVED.get(service)
    if served is None:
        served = SERVED[service] = requests.get(f"{base_url}/{service}/openapi.json", timeout=30)
        assert served.json() == case.operation.schema.raw_schema, "not the served document"
    response = case.call_and_validate(base_url=base_url, session=SESSION, checks=CHECKS)
    label = f"{case.operation.method.upper()} {path}"
    STATUSES.setdefault(label, Counter())[response.status_code] += 1
    SAMPLES.setdefault(label, {}).setdefault(
        response.status_code, response.content[:300].decode("utf-8", "replace")
    )


authorization_schema = load_schema("authorization")
repository_schema = load_schema("repository")
studio_schema = load_schema("studio")
runner_schema = load_schema("runner")


SCHEMAS = {
    "authorization": authorization_schema,
    "repository": repository_schema,
    "studio": studio_schema,
    "runner": runner_schema,
}
#: The path parameters that name an object of a project by a platform-wide id, by service (a
#: secret's name is the project's own: PUT /secrets/{name} creates one of that name).
OBJECTS = {
    "authorization": set[str](),
    "repository": {"repository_id", "scan_id", "build_id"},
    "studio": {"workflow", "snapshot"},
    "runner": {"deployment_id", "run_id", "key", "endpoint"},
}
WITH_BODY = {"post", "put", "patch"}
PARAM = re.compile(r"\{([^}]+)\}")


def _project_operations(service: str) -> list[tuple[str, str]]:
    paths = SCHEMAS[service].raw_schema["paths"]
    return [
        (method, path)
        for path, item in paths.items()
        if "{project}" in path
        for method in item
        if method in {"get", "delete", *WITH_BODY}
    ]


def _url(base: str, method: str, path: str, ids: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        found = real_value(ids, method, path, match.group(1))
        return quote(found if found is not None else "x", safe="")

    return base + PARAM.sub(value, path)


def _minimal(schema: dict[str, Any], document: dict[str, Any]) -> Any:
    """The smallest value that fits a JSON schema of the document (required fields only), so
    that a write is refused for its access, not its body."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return _minimal(document["components"]["schemas"][name], document)
    for key in ("anyOf", "oneOf", "allOf"):
        choices = [c for c in schema.get(key, ()) if c.get("type") != "null"]
        if choices:
            return _minimal(choices[0], document)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type", "object")
    kind = next((k for k in kind if k != "null"), "string") if isinstance(kind, list) else kind
    properties = schema.get("properties", {})
    minimal = {
        "object": lambda: {
            k: _minimal(properties.get(k, {}), document) for k in schema.get("required", ())
        },
        "array": lambda: [_minimal(schema.get("items", {}), document)] * schema.get("minItems", 0),
        "string": lambda: "x" * max(1, schema.get("minLength", 1)),
        "integer": lambda: max(1, schema.get("minimum", 1)),
        "number": lambda: max(1, schema.get("minimum", 1)),
        "boolean": lambda: False,
    }
    return minimal.get(kind, lambda: None)()


def _send(service: str, method: str, path: str, url: str, token: str) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"}
    body: dict[str, Any] = {}
    if method in WITH_BODY:
        document = SCHEMAS[service].raw_schema
        content = document["paths"][path][method].get("requestBody", {}).get("content", {})
        if "application/json" in content:
            body["json"] = _minimal(content["application/json"].get("schema", {}), document)
        elif content:
            headers["Content-Type"] = next(iter(content))
            body["data"] = b""
    return SESSION.request(method, url, headers=headers, timeout=60, **body)


def test_the_secret_check_finds_a_secret_in_an_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(SECRETS, "a data key", ["the data key, 0123456789"])

    def answer(text: str, headers: dict[str, list[str]] | None = None) -> Any:
        return SimpleNamespace(content=text.encode(), headers=headers or {})

    def sent(path: str, body: Any) -> Any:
        return SimpleNamespace(body=body, operation=SimpleNamespace(path=path))

    login = sent("/v1/login", {"username": "bob", "password": "bob's password 42"})
    secret = sent("/v1/projects/p/secrets", {"name": "api-key", "value": "sk-live-9876"})
    with_input = sent("/v1/projects/p/workflows/w/steps/s/inputs/i", {"secret": "api-key-name"})
    for text, case in (
        ('{"detail": "the data key, 0123456789"}', login),
        ('{"detail": "wrong password: bob\'s password 42"}', login),
        ('{"name": "api-key", "value": "sk-live-9876"}', secret),
    ):
        with pytest.raises(AssertionError, match="the answer shows"):
            no_secret_in_answer(None, answer(text), case)
    with pytest.raises(AssertionError, match="a data key"):
        no_secret_in_answer(None, answer("", {"X-Debug": ["the data key, 0123456789"]}), login)
    assert no_secret_in_answer(None, answer('{"error": "unauthenticated"}'), login) is None
    same = sent("/v1/users", {"username": "waiting_for_site", "password": "waiting_for_site"})
    assert no_secret_in_answer(None, answer('{"username": "waiting_for_site"}'), same) is None
    # An input value's `secret` is a secret's name: echoed, not a secret.
    assert no_secret_in_answer(None, answer('{"secret": "api-key-name"}'), with_input) is None


# First (before the fuzzing changes the data): every operation of a project, called by the fuzz
# user (1) on the stranger's project, with the stranger's ids: refused (403, or 404 not to tell
# what exists); (2) on its own project with the ids of the stranger's objects: not found, never
# served nor changed (a write may also be refused for its body first: any 4xx); (3) on its own
# project with its own ids, a GET: served (so that (1) and (2) could fail).
@pytest.mark.parametrize("service", list(SCHEMAS))
def test_security_cross_project_access_is_refused(service: str, fuzz_platform: Any) -> None:
    platform = fuzz_platform
    base, token = platform.urls[service], platform.user_token
    own, foreign = platform.ids[service], platform.foreign_ids[service]
    operations = _project_operations(service)
    assert operations, f"no project operation in the {service} document"
    wrong = []
    for method, path in operations:
        label = f"{method.upper()} {path}"
        status = _send(service, method, path, _url(base, method, path, foreign), token).status_code
        if status not in (403, 404):
            wrong.append(f"{label} on the stranger's project: {status}, not 403/404")
        names = set(PARAM.findall(path)) & OBJECTS[service]
        if names:
            mixed = {**own, **{k: v for k, v in foreign.items() if k.split(":")[0] in names}}
            status = _send(
                service, method, path, _url(base, method, path, mixed), token
            ).status_code
            expected = (404,) if method not in WITH_BODY else tuple(range(400, 500))
            if status not in expected:
                wrong.append(f"{label} with the stranger's {', '.join(sorted(names))}: {status}")
        if method == "get":
            status = _send(service, method, path, _url(base, method, path, own), token).status_code
            if not 200 <= status < 300:
                wrong.append(f"{label} on its own project: {status}, not served")
    assert not wrong, "\n".join(wrong)


# The order matters: the runner's runs come from the deployment the studio's fuzzing may undeploy,
# and the authorization's fuzzing (an admin) may change members: each goes after those it could
# disturb.


@repository_schema.parametrize()
def test_security_fuzz_repository_openapi(case: Any, fuzz_platform: Any) -> None:
    fuzz(case, fuzz_platform, "repository", fuzz_platform.user_token)


@runner_schema.parametrize()
def test_security_fuzz_runner_openapi(case: Any, fuzz_platform: Any) -> None:
    fuzz(case, fuzz_platform, "runner", fuzz_platform.user_token)


@runner_schema.include(path_regex="^/runner/v1/sites").parametrize()
def test_security_fuzz_runner_sites_as_an_admin_openapi(case: Any, fuzz_platform: Any) -> None:
    # The sites' administration (the user is refused all of it): its {site} is a spare site, so
    # that the worker's keeps its credential.
    fuzz(case, fuzz_platform, "runner", fuzz_platform.admin_token)


@studio_schema.parametrize()
def test_security_fuzz_studio_openapi(case: Any, fuzz_platform: Any) -> None:
    fuzz(case, fuzz_platform, "studio", fuzz_platform.user_token)


@authorization_schema.parametrize()
def test_security_fuzz_authorization_openapi(case: Any, fuzz_platform: Any) -> None:
    logout = case.operation.path.endswith("/logout")
    # Logging out revokes the token it carries: a fresh one of a user of its own each time.
    token = fuzz_platform.fresh_token() if logout else fuzz_platform.admin_token
    fuzz(case, fuzz_platform, "authorization", token)
