"""Settings, read from the environment. Every variable is documented here with its default."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from ryax_kit.crypto import KeyRing
from ryax_kit.filestore import FilestoreSettings, split_endpoint
from ryax_kit.net import OutboundAllow, is_loopback_endpoint
from ryax_kit.settings import CommonSettings, ConfigurationError, Env

from .domain.errors import InvalidInput
from .domain.retention import DEFAULT_RETENTION_DAYS, MAX_RETENTION_DAYS
from .domain.run import MAX_FANOUT, MAX_RUN_EXECUTIONS
from .domain.site import check_site_kind, check_site_name

#: RYAX_RUNNER_COMMIT_MODE's values.
COMMIT_MODES = ("acknowledged", "every")

#: The heartbeat timeout's ceiling: a lost site must be noticed within seconds.
MAX_HEARTBEAT_TIMEOUT_SECONDS = 10.0
#: The shortest configured credential of the built-in site (an issued one has 53 characters).
MIN_BUILTIN_CREDENTIAL = 32


@dataclass(frozen=True, kw_only=True)
class Settings:
    #: RYAX_DATABASE_URL: the service's own database (created if missing). Required.
    database_url: str
    #: RYAX_AMQP_URL: RabbitMQ. Required.
    amqp_url: str
    #: RYAX_SECRET_KEY: encrypts the secrets of deployed workflows at rest (>= 32 chars).
    secret_key: str
    #: RYAX_SECRET_KEY_PREVIOUS: earlier secret keys, comma-separated (each >= 32 chars), still
    #: accepted to open what they sealed while keys are rotated (docs/operations.md).
    secret_key_previous: tuple[str, ...] = ()
    #: RYAX_HTTP_HOST / RYAX_HTTP_PORT: where the HTTP API listens.
    http_host: str = "127.0.0.1"
    http_port: int = 8104
    #: RYAX_RUNNER_GRPC_ADDRESS: where the WorkerService gRPC server listens (host:port).
    grpc_address: str = "127.0.0.1:8105"
    #: RYAX_RUNNER_GRPC_TLS_CERT_FILE / RYAX_RUNNER_GRPC_TLS_KEY_FILE: the gRPC port's
    #: certificate (PEM, chain included) and private key (PEM): given both, the port serves TLS
    #: only (workers check it against their RYAX_RUNNER_CA_FILE). Default: none (plaintext).
    grpc_tls_cert_file: Path | None = None
    grpc_tls_key_file: Path | None = None
    #: RYAX_RUNNER_GRPC_TLS_ADDRESS: a second gRPC port (host:port), TLS only, for remote
    #: sites, beside a plaintext RYAX_RUNNER_GRPC_ADDRESS on loopback for the worker installed
    #: with the platform (make demo). Needs the certificate and key above, which then serve this
    #: port only. Default: none (one port, TLS when given the certificate).
    grpc_tls_address: str = ""
    #: RYAX_RUNNER_GRPC_ALLOW_PLAINTEXT: "true" lets a plaintext gRPC port listen on a
    #: non-loopback address (workers' credentials and steps' inputs then cross the network in
    #: clear: only inside a trusted network). Without TLS and without it, only a loopback
    #: address is accepted (the local demo: 127.0.0.1).
    grpc_allow_plaintext: bool = False
    #: RYAX_RUNNER_WORKER_SOCKET: a Unix socket (path) where the worker on the runner's machine
    #: may connect instead of gRPC: the same stream, framed, without gRPC's threads (0.25 to 1
    #: ms of CPU less per execution; docs/runner-worker-protocol.md "The local socket"). The
    #: worker names the same path in its own RYAX_RUNNER_WORKER_SOCKET. Default: none (gRPC
    #: only). make demo sets it.
    worker_socket: Path | None = None
    #: RYAX_RUNNER_BUILTIN_SITE: "NAME[:TYPE]" (TYPE local by default), the site of the worker
    #: installed with the platform (make demo, the Helm chart): created at start if missing,
    #: with the credential of RYAX_RUNNER_BUILTIN_SITE_CREDENTIAL (or the content of
    #: RYAX_RUNNER_BUILTIN_SITE_CREDENTIAL_FILE), which is made the one that works at each start
    #: (docs/remote-sites.md). Default: none (every site is created by an admin).
    builtin_site_name: str = ""
    builtin_site_kind: str = "local"
    builtin_site_credential: str = field(default="", repr=False)
    #: RYAX_LOG_FORMAT: "json" or "text"; RYAX_LOG_LEVEL: debug, info, warning, error.
    log_format: str = "text"
    log_level: str = "info"
    #: RYAX_AUTHORIZATION_URL: the authorization service (the authz contract).
    authorization_url: str = "http://127.0.0.1:8101"
    #: RYAX_S3_ENDPOINT (host:port or http(s)://host:port), RYAX_S3_ACCESS_KEY,
    #: RYAX_S3_SECRET_KEY, RYAX_S3_BUCKET (default ryax), RYAX_S3_SECURE, RYAX_S3_REGION,
    #: RYAX_S3_PUBLIC_ENDPOINT: the S3 filestore; when RYAX_S3_ENDPOINT is unset the local
    #: directory RYAX_FILESTORE_DIR (default <tmp>/ryax-filestore, shared with the workers) is
    #: used. See ryax_kit.filestore.FilestoreSettings.
    #: RYAX_RUNNER_FILESTORE_PUBLIC_URL (`http(s)://host:port`): the filestore as the sites
    #: reach it, the host of the presigned URLs given to workers (overrides
    #: RYAX_S3_PUBLIC_ENDPOINT; default: that, else RYAX_S3_ENDPOINT itself).
    filestore: FilestoreSettings
    #: RYAX_RUNNER_HEARTBEAT_INTERVAL: seconds between the heartbeats a worker must send.
    heartbeat_interval_seconds: float = 2.0
    #: RYAX_RUNNER_HEARTBEAT_TIMEOUT: a site silent this long is offline (<= 10 s).
    heartbeat_timeout_seconds: float = 6.0
    #: RYAX_RUNNER_RETRY_BACKOFF: first retry delay of a failed execution (doubles each time).
    retry_backoff_seconds: float = 1.0
    #: RYAX_RUNNER_INFRA_RETRIES: how many times an execution lost with its worker (crash,
    #: restart, partition) is run again, per step and branch of a run; apart from the step's
    #: own retries, which count failures only.
    infra_retries: int = 3
    #: RYAX_RUNNER_COMMIT_MODE: "acknowledged" (default): a commit waits for the disk when it
    #: is acknowledged outside the runner (a run accepted or answered, a message consumed, an
    #: event or callback to send); a step's own transitions (result recorded, next step
    #: ordered) do not, so a crash of PostgreSQL itself (not of the runner) may re-run the steps
    #: of its last fraction of a second, never lose a run. "every": every commit waits for the
    #: disk (one fsync per step on the critical path). docs/run-path.md.
    commit_mode: str = "acknowledged"
    #: RYAX_RUNNER_COMMIT_LINGER_SECONDS: with two runs or more in progress, the recorder takes
    #: the next batch once its oldest change waited this long, so one commit carries the changes
    #: of more runs (group commit, as PostgreSQL's commit_delay). One run alone is never held.
    #: 0 = never.
    commit_linger_seconds: float = 0.002
    #: RYAX_RUNNER_LAZY_RECORD_SECONDS: how long a lazily marked run may wait for its next
    #: change before it is written (a run nobody outside the runner knows of yet: an HTTP call
    #: not answered; a step's progress; a step seen running): a call that ends sooner is
    #: written once, at its end, where it took two writes. Anything that must be durable (an
    #: answer naming the run, a message, an order, the end of a run) is never held. 0 = never.
    lazy_record_seconds: float = 0.2
    #: RYAX_RUNNER_DEFAULT_STEP_TIMEOUT: the timeout (seconds) of a step that sets none and
    #: whose action asks for no time (`resources.time`); every execution has one.
    default_step_timeout_seconds: float = 3600.0
    #: RYAX_RUNNER_TIMEOUT_GRACE: seconds the runner waits past a step's timeout for the
    #: worker's own "timed out" result before it gives up on the execution itself.
    timeout_grace_seconds: float = 30.0
    #: RYAX_RUNNER_SITE_WAIT_TIMEOUT: seconds an execution may wait for its step to be ready on
    #: a site (no site matches, the site is offline, the step is still deploying) before it
    #: fails.
    site_wait_timeout_seconds: float = 300.0
    #: RYAX_RUNNER_PUBLISH_WAIT_SECONDS: how long a download of a file a site holds (not in the
    #: filestore yet) waits for the site to publish it before answering 503.
    publish_wait_seconds: float = 60.0
    #: RYAX_RUNNER_MAX_INLINE_BYTES: largest inline (non-file) value in a message.
    max_inline_bytes: int = 64 * 1024
    #: RYAX_RUNNER_PRESIGN_TTL_SECONDS: how long a presigned URL handed to a worker works
    #: (WorkerService.PresignTransfers; 1 s to 7 days, default 15 min). A worker whose URL
    #: expired asks for a new one.
    presign_ttl_seconds: int = 900
    #: RYAX_RUNNER_SYNC_TIMEOUT: default and maximum wait of a synchronous endpoint call.
    sync_timeout_seconds: float = 60.0
    sync_timeout_max_seconds: float = 3600.0
    #: RYAX_RUNNER_MAX_UPLOAD_BYTES: largest file of an endpoint call (a multipart file part,
    #: streamed to disk then to the filestore); 413 past it.
    max_upload_bytes: int = 1024 * 1024 * 1024
    #: RYAX_RUNNER_MAX_UPLOAD_TOTAL_BYTES: largest multipart body of an endpoint call, every
    #: part together; 413 past it.
    max_upload_total_bytes: int = 2 * 1024 * 1024 * 1024
    #: RYAX_RUNNER_MAX_JSON_BYTES: largest JSON (or url-encoded form) body of an endpoint call;
    #: every other route of the runner takes no body (64 KiB at most). 413 past it.
    max_json_bytes: int = 1024 * 1024
    #: RYAX_RUNNER_MAX_FANOUT: the longest list a step may return (one branch per element);
    #: a longer one fails the step, saying so.
    max_fanout: int = MAX_FANOUT
    #: RYAX_RUNNER_MAX_RUN_EXECUTIONS: the most executions one run may create (nested fan-outs
    #: multiply); past it the run fails, saying so.
    max_run_executions: int = MAX_RUN_EXECUTIONS
    #: RYAX_OUTBOUND_ALLOW: internal destinations a `callback_url` may name all the same,
    #: comma-separated CIDRs, addresses and host names (`*.corp.example` for subdomains); see
    #: ryax_kit.net. Default: none (callbacks go to public addresses only).
    outbound_allow: OutboundAllow = field(default_factory=OutboundAllow)
    #: RYAX_STUDIO_URL: the studio, for its internal route (the values of a deployment's
    #: secrets and password-type inputs, fetched when the deployment is recorded).
    studio_url: str = "http://127.0.0.1:8103"
    #: RYAX_INTERNAL_TOKEN: the service credential shared with the studio only (>= 32
    #: characters). Default: none (a deployment using a secret waits until it is configured).
    internal_token: str = field(default="", repr=False)
    #: RYAX_RUNNER_SHUTDOWN_GRACE: seconds given to dispatched executions at SIGTERM.
    shutdown_grace_seconds: float = 10.0
    #: RYAX_RUNNER_PUBLIC_URL: base URL of the gateway used in links (file downloads, status);
    #: empty = links relative to the host of the request.
    public_url: str = ""
    #: RYAX_DATABASE_POOL_SIZE: connections of the engine's pool.
    database_pool_size: int = 10
    #: RYAX_RUNNER_CALLBACK_ATTEMPTS: how many times the callback of an endpoint call
    #: (`callback_url`) is POSTed at most before it is abandoned.
    callback_attempts: int = 8
    #: RYAX_RUNNER_CALLBACK_BACKOFF: seconds before the second attempt of a callback, doubling
    #: each time (at most 5 minutes): with the defaults, 8 attempts over about 4 minutes.
    callback_backoff_seconds: float = 2.0
    #: RYAX_RUNNER_TIMER_TICK: how often (seconds) the built-in timer triggers (emitgw,
    #: crongw, runonce) are looked at: their resolution.
    timer_tick_seconds: float = 0.5
    #: RYAX_RUNNER_MIN_TIMER_INTERVAL: the smallest emitgw interval (seconds) the runner
    #: schedules (the studio's RYAX_STUDIO_MIN_TIMER_INTERVAL should be the same or larger).
    min_timer_interval_seconds: int = 1
    #: RYAX_RUNNER_RUN_RETENTION_DAYS: how long (days) a run is kept once it ended, with its
    #: executions, log lines and files, for a project without its own retention (set with
    #: `PUT /runner/v1/projects/{project}/retention`); 0 keeps runs forever. docs/retention.md.
    run_retention_days: int = DEFAULT_RETENTION_DAYS
    #: RYAX_RUNNER_RETENTION_INTERVAL: seconds between two passes of the retention cleaner
    #: (a pass that had more to delete than RYAX_RUNNER_RETENTION_BATCH is followed sooner).
    retention_interval_seconds: float = 60.0
    #: RYAX_RUNNER_RETENTION_BATCH: the most runs one pass deletes.
    retention_runs_per_tick: int = 100

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        e = Env.from_os(env)
        common = CommonSettings.read(e, default_port=8104)
        timeout = e.number("RYAX_RUNNER_HEARTBEAT_TIMEOUT", 6.0, minimum=0.1)
        if timeout > MAX_HEARTBEAT_TIMEOUT_SECONDS:
            raise ConfigurationError(
                f"RYAX_RUNNER_HEARTBEAT_TIMEOUT={timeout:g} must be <= "
                f"{MAX_HEARTBEAT_TIMEOUT_SECONDS:g} (seconds)"
            )
        secret, *previous = KeyRing.read_secrets(e)
        grpc_address = e.text("RYAX_RUNNER_GRPC_ADDRESS", "127.0.0.1:8105")
        cert, key = (
            e.path("RYAX_RUNNER_GRPC_TLS_CERT_FILE"),
            e.path("RYAX_RUNNER_GRPC_TLS_KEY_FILE"),
        )
        allow_plaintext = e.flag("RYAX_RUNNER_GRPC_ALLOW_PLAINTEXT")
        tls_address = e.text("RYAX_RUNNER_GRPC_TLS_ADDRESS")
        check_grpc_security(grpc_address, cert, key, allow_plaintext, tls_address)
        builtin = read_builtin_site(e)
        return cls(
            database_url=e.required("RYAX_DATABASE_URL"),
            amqp_url=e.required("RYAX_AMQP_URL"),
            secret_key=secret,
            secret_key_previous=tuple(previous),
            http_host=common.http_host,
            http_port=common.http_port,
            grpc_address=grpc_address,
            grpc_tls_cert_file=cert,
            grpc_tls_key_file=key,
            grpc_allow_plaintext=allow_plaintext,
            grpc_tls_address=tls_address,
            worker_socket=e.socket_path("RYAX_RUNNER_WORKER_SOCKET"),
            builtin_site_name=builtin[0],
            builtin_site_kind=builtin[1],
            builtin_site_credential=builtin[2],
            log_format=common.log_format,
            log_level=common.log_level,
            authorization_url=e.text("RYAX_AUTHORIZATION_URL", "http://127.0.0.1:8101"),
            filestore=read_filestore(e),
            presign_ttl_seconds=e.integer(
                "RYAX_RUNNER_PRESIGN_TTL_SECONDS", 900, minimum=1, maximum=7 * 24 * 3600
            ),
            heartbeat_interval_seconds=e.number(
                "RYAX_RUNNER_HEARTBEAT_INTERVAL", 2.0, minimum=0.01
            ),
            heartbeat_timeout_seconds=timeout,
            retry_backoff_seconds=e.number("RYAX_RUNNER_RETRY_BACKOFF", 1.0, minimum=0),
            infra_retries=e.integer("RYAX_RUNNER_INFRA_RETRIES", 3, minimum=0),
            commit_mode=e.text(
                "RYAX_RUNNER_COMMIT_MODE", "acknowledged", choices=COMMIT_MODES, lower=True
            ),
            commit_linger_seconds=e.number(
                "RYAX_RUNNER_COMMIT_LINGER_SECONDS", 0.002, minimum=0, maximum=0.1
            ),
            lazy_record_seconds=e.number(
                "RYAX_RUNNER_LAZY_RECORD_SECONDS", 0.2, minimum=0, maximum=10
            ),
            default_step_timeout_seconds=e.number(
                "RYAX_RUNNER_DEFAULT_STEP_TIMEOUT", 3600.0, minimum=1
            ),
            timeout_grace_seconds=e.number("RYAX_RUNNER_TIMEOUT_GRACE", 30.0, minimum=0),
            site_wait_timeout_seconds=e.number("RYAX_RUNNER_SITE_WAIT_TIMEOUT", 300.0, minimum=1),
            publish_wait_seconds=e.number("RYAX_RUNNER_PUBLISH_WAIT_SECONDS", 60.0, minimum=1),
            max_inline_bytes=e.integer("RYAX_RUNNER_MAX_INLINE_BYTES", 64 * 1024, minimum=1),
            sync_timeout_seconds=e.number("RYAX_RUNNER_SYNC_TIMEOUT", 60.0, minimum=0),
            max_upload_bytes=e.integer("RYAX_RUNNER_MAX_UPLOAD_BYTES", 1024**3, minimum=1),
            max_upload_total_bytes=e.integer(
                "RYAX_RUNNER_MAX_UPLOAD_TOTAL_BYTES", 2 * 1024**3, minimum=1
            ),
            max_json_bytes=e.integer("RYAX_RUNNER_MAX_JSON_BYTES", 1024**2, minimum=1024),
            max_fanout=e.integer("RYAX_RUNNER_MAX_FANOUT", MAX_FANOUT, minimum=1),
            max_run_executions=e.integer(
                "RYAX_RUNNER_MAX_RUN_EXECUTIONS", MAX_RUN_EXECUTIONS, minimum=1
            ),
            outbound_allow=OutboundAllow.read(e),
            studio_url=e.text("RYAX_STUDIO_URL", "http://127.0.0.1:8103").rstrip("/"),
            internal_token=_internal_token(e),
            shutdown_grace_seconds=e.number("RYAX_RUNNER_SHUTDOWN_GRACE", 10.0, minimum=0),
            public_url=e.text("RYAX_RUNNER_PUBLIC_URL").rstrip("/"),
            database_pool_size=e.integer("RYAX_DATABASE_POOL_SIZE", 10, minimum=1),
            callback_attempts=e.integer("RYAX_RUNNER_CALLBACK_ATTEMPTS", 8, minimum=1),
            callback_backoff_seconds=e.number("RYAX_RUNNER_CALLBACK_BACKOFF", 2.0, minimum=0),
            timer_tick_seconds=e.number("RYAX_RUNNER_TIMER_TICK", 0.5, minimum=0.01),
            min_timer_interval_seconds=e.integer("RYAX_RUNNER_MIN_TIMER_INTERVAL", 1, minimum=1),
            run_retention_days=e.integer(
                "RYAX_RUNNER_RUN_RETENTION_DAYS",
                DEFAULT_RETENTION_DAYS,
                minimum=0,
                maximum=MAX_RETENTION_DAYS,
            ),
            retention_interval_seconds=e.number(
                "RYAX_RUNNER_RETENTION_INTERVAL", 60.0, minimum=0.1
            ),
            retention_runs_per_tick=e.integer("RYAX_RUNNER_RETENTION_BATCH", 100, minimum=1),
        )


def read_filestore(e: Env) -> FilestoreSettings:
    """The kit's filestore settings, RYAX_RUNNER_FILESTORE_PUBLIC_URL (checked) as the public
    endpoint the presigned URLs are signed for."""
    files = FilestoreSettings.read(e, default_dir=Path(tempfile.gettempdir()) / "ryax-filestore")
    public = e.text("RYAX_RUNNER_FILESTORE_PUBLIC_URL").strip()
    if not public:
        return files
    try:
        split_endpoint(public, files.s3_secure)
    except ValueError as error:
        raise ConfigurationError(f"RYAX_RUNNER_FILESTORE_PUBLIC_URL: {error}") from None
    return replace(files, s3_public_endpoint=public)


def read_builtin_site(e: Env) -> tuple[str, str, str]:
    """RYAX_RUNNER_BUILTIN_SITE and its credential (both or neither), checked: the name, the
    type and the credential; ("", "local", "") when not configured."""
    spec = e.text("RYAX_RUNNER_BUILTIN_SITE").strip()
    credential = e.text("RYAX_RUNNER_BUILTIN_SITE_CREDENTIAL").strip()
    path = e.path("RYAX_RUNNER_BUILTIN_SITE_CREDENTIAL_FILE")
    if credential and path is not None:
        raise ConfigurationError(
            "RYAX_RUNNER_BUILTIN_SITE_CREDENTIAL and RYAX_RUNNER_BUILTIN_SITE_CREDENTIAL_FILE: "
            "give one of them"
        )
    if path is not None:
        try:
            credential = path.read_text().strip()
        except OSError as error:
            raise ConfigurationError(
                f"RYAX_RUNNER_BUILTIN_SITE_CREDENTIAL_FILE={path}: cannot be read "
                f"({error.strerror})"
            ) from error
    if not spec:
        if credential:
            raise ConfigurationError(
                "RYAX_RUNNER_BUILTIN_SITE_CREDENTIAL: no RYAX_RUNNER_BUILTIN_SITE to give it to"
            )
        return "", "local", ""
    name, _, kind = spec.partition(":")
    kind = kind or "local"
    try:
        check_site_name(name)
        check_site_kind(kind)
    except InvalidInput as error:
        raise ConfigurationError(f"RYAX_RUNNER_BUILTIN_SITE={spec}: {error.detail}") from error
    if len(credential) < MIN_BUILTIN_CREDENTIAL:
        raise ConfigurationError(
            "RYAX_RUNNER_BUILTIN_SITE needs RYAX_RUNNER_BUILTIN_SITE_CREDENTIAL (or _FILE) of "
            f"at least {MIN_BUILTIN_CREDENTIAL} characters (random: it is the site's password)"
        )
    if any(c.isspace() or not c.isprintable() for c in credential):
        raise ConfigurationError("RYAX_RUNNER_BUILTIN_SITE_CREDENTIAL: a credential is one word")
    return name, kind, credential


def check_grpc_security(
    address: str,
    cert: Path | None,
    key: Path | None,
    allow_plaintext: bool,
    tls_address: str = "",
) -> None:
    """TLS needs both files, readable; plaintext is for loopback unless explicitly allowed.
    With a second, TLS, port the first one is plaintext."""
    if (cert is None) != (key is None):
        raise ConfigurationError(
            "RYAX_RUNNER_GRPC_TLS_CERT_FILE and RYAX_RUNNER_GRPC_TLS_KEY_FILE go together"
        )
    if tls_address:
        if cert is None:
            raise ConfigurationError(
                f"RYAX_RUNNER_GRPC_TLS_ADDRESS={tls_address}: give its certificate and key "
                "(RYAX_RUNNER_GRPC_TLS_CERT_FILE and RYAX_RUNNER_GRPC_TLS_KEY_FILE)"
            )
        if tls_address == address:
            raise ConfigurationError(
                f"RYAX_RUNNER_GRPC_TLS_ADDRESS={tls_address} is RYAX_RUNNER_GRPC_ADDRESS too: "
                "give the TLS port its own address"
            )
    for name, path in (
        ("RYAX_RUNNER_GRPC_TLS_CERT_FILE", cert),
        ("RYAX_RUNNER_GRPC_TLS_KEY_FILE", key),
    ):
        if path is not None and not path.is_file():
            raise ConfigurationError(f"{name}={path}: no such file")
    plaintext = cert is None or bool(tls_address)
    if plaintext and not allow_plaintext and not is_loopback_endpoint(address):
        raise ConfigurationError(
            f"RYAX_RUNNER_GRPC_ADDRESS={address}: a plaintext gRPC port may only listen on a "
            "loopback address; give RYAX_RUNNER_GRPC_TLS_CERT_FILE and "
            "RYAX_RUNNER_GRPC_TLS_KEY_FILE, or set RYAX_RUNNER_GRPC_ALLOW_PLAINTEXT=true inside "
            "a trusted network"
        )


def _internal_token(e: Env) -> str:
    token = e.text("RYAX_INTERNAL_TOKEN")
    if token and len(token) < 32:
        raise ConfigurationError("RYAX_INTERNAL_TOKEN must be at least 32 characters")
    return token
