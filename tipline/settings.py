"""Process settings (environment variables) and per-org settings (a TOML file).

Credentials live only here and in the files they are read from: models that leave the process
(API responses, Temporal payloads, logs) never carry them.
"""

from __future__ import annotations

import base64
import binascii
import re
import tomllib
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

NCMEC_TEST_URL = "https://exttest.cybertip.org/ispws"
NCMEC_PRODUCTION_URL = "https://report.cybertip.org/ispws"
ORG_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
_CALLBACK_URL = r"^https?://[^\s/?#]+(/\S*)?$"
SECRET_PREFIX = "whsec_"


def signing_key(secret: str) -> bytes:
    """The HMAC key in a Standard Webhooks secret (``whsec_`` + base64), decoded as their libraries do."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error:
        raise ValueError("callback_secret must be whsec_ followed by base64") from None
    if not 24 <= len(key) <= 64:
        raise ValueError("callback_secret must encode 24 to 64 random bytes")
    return key


def parse_address(address: str) -> tuple[str, int]:
    """``host:port`` (an IPv6 host in brackets) as a host and a port; port 0 lets the system pick one."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"must be host:port, e.g. 127.0.0.1:9464 (got {address!r})")
    return host.strip("[]"), int(port)


class NcmecEnvironment(StrEnum):
    SANDBOX = "sandbox"
    TEST = "test"
    PRODUCTION = "production"


class InternetDetailKind(StrEnum):
    """Which ``internetDetails`` block the org's reports carry by default."""

    WEB_PAGE = "web_page"  # webPageIncident with the reported files' URLs
    CHAT_IM = "chat_im"  # chatImIncident naming the platform as the chat client
    NONE = "none"


class NcmecCredentials(BaseModel):
    model_config = ConfigDict(frozen=True)

    environment: NcmecEnvironment = NcmecEnvironment.SANDBOX
    username: str
    password: SecretStr


class ReporterSettings(BaseModel):
    """The person NCMEC contacts about the org's reports (``reporter/reportingPerson``)."""

    model_config = ConfigDict(frozen=True)

    first_name: str | None = None
    last_name: str | None = None
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    phone: str | None = None


class ClassifierSettings(BaseModel):
    """The org's image classifier: Google's Content Safety API, or the local sandbox when no endpoint is set."""

    model_config = ConfigDict(frozen=True)

    endpoint: str | None = None
    api_key: SecretStr | None = None
    high_precision: str = "VERY_HIGH"
    high_recall: str = "HIGH"


# The REPORT Act (18 U.S.C. §2258A(h)) has a provider preserve what it reported for one year.
MIN_FILED_CASE_YEARS = 1


class RetentionSettings(BaseModel):
    """How long a closed case's evidence and personal data are kept before the daily purge removes them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Whole years from the report (the case's latest report to NCMEC); the law's year is the floor.
    filed_case_years: int = MIN_FILED_CASE_YEARS
    # Days from the dismissal: the org's own policy, no legal floor.
    dismissed_case_days: int = Field(default=90, ge=1, le=36500)

    @field_validator("filed_case_years")
    @classmethod
    def _at_least_the_law(cls, value: int) -> int:
        if value < MIN_FILED_CASE_YEARS:
            raise ValueError(f"retention.filed_case_years is {value}: a filed case is kept at least "
                             f"{MIN_FILED_CASE_YEARS} year from the report (REPORT Act); it may be longer, "
                             f"never shorter")
        if value > 100:
            raise ValueError("retention.filed_case_years must be at most 100")
        return value


class OrgSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    ncmec: NcmecCredentials
    reporter: ReporterSettings
    platform_name: str | None = None
    company_template: str | None = None
    legal_url: str | None = None
    terms_of_service: str | None = None
    internet_detail: InternetDetailKind = InternetDetailKind.WEB_PAGE
    classifier: ClassifierSettings = ClassifierSettings()
    # Where Tipline asks the platform for everything it knows about a user before filing (signed POST).
    enrichment_url: str | None = Field(default=None, pattern=_CALLBACK_URL)
    # Where Tipline asks, when a case opens, for every media item the platform has for the user (signed, paginated).
    media_list_url: str | None = Field(default=None, pattern=_CALLBACK_URL)
    # Where Tipline tells the org's Moderator Managers that a case waited past its review deadline.
    escalation_webhook_url: str | None = Field(default=None, pattern=_CALLBACK_URL)
    # Shared secret that signs Tipline's calls to the platform and the platform's answers (Standard Webhooks
    # format: "whsec_" and base64 of 24-64 random bytes). Required as soon as any callback URL is set.
    callback_secret: SecretStr | None = None
    # When set, media is fetched only from these hosts (exact names, or "*.cdn.example.com"); every address they
    # resolve to must still be public.
    media_allowed_hosts: tuple[str, ...] | None = None
    # Items matching a known-CSAM bank may be filed without a person viewing them (fileViewedByEsp false);
    # otherwise the review page asks for every reported item to be revealed first.
    file_unviewed_hash_matches: bool = False
    retention: RetentionSettings = RetentionSettings()

    @field_validator("id")
    @classmethod
    def _org_id_is_a_slug(cls, value: str) -> str:
        # The org id appears in workflow ids and search attributes, so it must be a plain slug.
        if not ORG_ID_PATTERN.match(value):
            raise ValueError("org id must be 1-40 lowercase letters, digits or dashes")
        return value

    @field_validator("callback_secret")
    @classmethod
    def _secret_is_a_signing_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            signing_key(value.get_secret_value())  # raises ValueError with the reason
        return value

    @model_validator(mode="after")
    def _callbacks_are_signed(self) -> OrgSettings:
        # An unsigned webhook cannot be told from a forged one, so no callback goes out without a secret.
        if self.callback_secret is None:
            for name in ("escalation_webhook_url", "enrichment_url", "media_list_url"):
                if getattr(self, name) is not None:
                    raise ValueError(f"{name} is set but callback_secret is not: every call to the platform is "
                                     f"signed, so set callback_secret (whsec_ + base64 of 24-64 random bytes)")
        return self

    def signing_key(self) -> bytes:
        assert self.callback_secret is not None
        return signing_key(self.callback_secret.get_secret_value())


class Settings(BaseSettings):
    """Everything a Tipline process needs to find its parts. Defaults are the embedded local stack."""

    model_config = SettingsConfigDict(env_prefix="TIPLINE_", env_file=None)

    data_dir: Path = Path("data")
    database_url: str | None = None
    orgs_file: Path | None = None
    evidence_dir: Path | None = None
    # Where sealed evidence objects live (README, "Evidence storage"). "local": files under evidence_dir.
    # "s3": an S3-compatible bucket; credentials come from the environment (AWS_ACCESS_KEY_ID, ... or a role),
    # never from these settings. Scratch files of uploads in progress stay under evidence_dir either way.
    evidence_backend: Literal["local", "s3"] = "local"
    evidence_s3_bucket: str | None = None
    evidence_s3_prefix: str = "evidence/"
    evidence_s3_endpoint_url: str | None = None
    evidence_s3_region: str | None = None
    # Multipart part size: memory held per upload in progress (S3's minimum part is 5 MiB).
    evidence_s3_part_bytes: int = Field(default=8 << 20, ge=5 << 20, le=5 << 30)

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_ui_url: str = "http://127.0.0.1:8233"
    task_queue: str = "tipline-cases"
    # A real cluster (README, "Running on a real Temporal cluster"). TLS is on when any TLS file or the API key is
    # set; without a CA file the system's trust store verifies the server. Cert and key together give mTLS.
    temporal_tls: bool = False
    temporal_tls_ca_file: Path | None = None
    temporal_tls_cert_file: Path | None = None
    temporal_tls_key_file: Path | None = None
    # The name the server's certificate carries, when it differs from the host in temporal_address.
    temporal_tls_server_name: str | None = None
    # Temporal Cloud's API key (sent as "Authorization: Bearer ...").
    temporal_api_key: SecretStr | None = None

    # Which task queues this process's worker serves (README, "Task queues"): all of them by default, so one
    # process is a whole deployment; separate machines each take a subset.
    # TIPLINE_WORKER_QUEUES=cases,platform (comma-separated).
    worker_queues: Annotated[list[Literal["cases", "detection", "ncmec", "platform"]], NoDecode] = Field(
        default_factory=lambda: ["cases", "detection", "ncmec", "platform"], min_length=1)

    @field_validator("worker_queues", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    # Each queue's worker settings. Activity slots: how many of the queue's activities run at once per process.
    cases_max_concurrent_activities: int = Field(default=16, ge=1)
    cases_max_concurrent_workflow_tasks: int = Field(default=50, ge=2)
    # Case workflows a case worker keeps in memory between their workflow tasks (Temporal's sticky cache). A
    # workflow not in it is replayed from its whole history on its next signal; README "Sizing for 100,000
    # active users" says how to size it. Temporal's own default is 1,000.
    cases_max_cached_workflows: int = Field(default=10_000, ge=0)
    # How long a case's next workflow task waits for the worker that holds the case in its cache before any case
    # worker takes it and replays the history. Temporal's default is 10 s: after a worker crash, every case it held
    # stood still that long (a chaos run lost most of its time to it).
    cases_sticky_schedule_to_start_seconds: float = Field(default=3.0, gt=0)
    detection_max_concurrent_activities: int = Field(default=4, ge=1)
    # Processes that hash media, off the worker's own interpreter (0: hash on the activity's thread instead).
    detection_processes: int = Field(default=2, ge=0)
    # Per org: every org files through a queue of its own, so one org's backlog never uses another's rate.
    ncmec_max_concurrent_activities: int = Field(default=4, ge=1)
    # How many NCMEC calls per second Temporal hands out for one org, across every worker (server-side limit).
    ncmec_activities_per_second: float | None = Field(default=5.0, gt=0)
    platform_max_concurrent_activities: int = Field(default=8, ge=1)
    # How long a stopping worker lets running activities finish before cancelling them (retried elsewhere).
    # An NCMEC upload may take long: give it the longest, and the container the same stop grace period.
    worker_shutdown_grace_seconds: float = Field(default=15, ge=0)
    ncmec_shutdown_grace_seconds: float = Field(default=120, ge=0)

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    sandbox_host: str = "127.0.0.1"
    sandbox_port: int = 8765
    sandbox_url: str | None = None
    # How strict `tipline sandbox` (and the sandbox of `tipline up`) is; each is printed at start.
    # auto: validate against NCMEC's XSD whenever one is found (ncmec_xsd_path, else <data>/cyber_tipline.xsd).
    sandbox_schema_validation: Literal["auto", "on", "off"] = "auto"
    sandbox_reporter_email_required: bool = True
    # NCMEC answers application errors with HTTP 200 and the code in the body; a 4xx/5xx is for clients that
    # need to see a status.
    sandbox_error_http_status: int = 200
    # Validates reports in the sandbox and before submission; NCMEC serves it at /ispws/xsd.
    ncmec_xsd_path: Path | None = None

    # How patient filing is (see models.case.FilingPolicy); tests shorten these.
    ncmec_call_timeout_seconds: float = 120
    upload_heartbeat_timeout_seconds: float = 60
    upload_concurrency: int = 4
    enrichment_retry_seconds: float = 60
    # How long a case may wait for a reviewer before Moderator Managers are alerted, by urgency.
    urgent_review_minutes: float = 60
    elevated_review_minutes: float = 8 * 60
    normal_review_minutes: float = 48 * 60

    # Prometheus listeners, each on its own address (host:port), off when unset: kept off the API's public port
    # because the case gauges count every org's cases, which no single org's key should see.
    api_metrics_address: str | None = None
    worker_metrics_address: str | None = None
    # The Temporal SDK's own metrics (pollers, slots, task latencies) from the worker's runtime.
    temporal_sdk_metrics_address: str | None = None
    # How long /readyz waits for each of Temporal, the database and the evidence store.
    readiness_timeout_seconds: float = Field(default=2.0, gt=0, le=30)

    @field_validator("api_metrics_address", "worker_metrics_address", "temporal_sdk_metrics_address")
    @classmethod
    def _host_and_port(cls, value: str | None) -> str | None:
        if value is not None:
            parse_address(value)  # raises ValueError with the reason
        return value

    # Production filing needs a deliberate second switch besides an org configured for production.
    allow_production: bool = False
    # The secret case and screening ids are keyed with (tipline.ids); the local stack generates one in data_dir.
    id_key: SecretStr | None = None

    # The keys that encrypt Temporal payloads (tipline.payload_keys): "id:base64key,..." with the current key
    # first (or named by payload_current_key), else a key file; the local stack generates one in data_dir.
    payload_keys: SecretStr | None = None
    payload_current_key: str | None = None
    payload_key_file: Path | None = None
    # The Ed25519 key audit bundles are signed with (tipline.audit_signing); default: audit-signing.key in data_dir.
    audit_signing_key_file: Path | None = None
    # The codec server (POST /codec/decode) answers browsers from this origin only; default: temporal_ui_url's.
    codec_cors_origin: str | None = None
    # When set, only Admin keys of these orgs decode payloads: the Temporal UI shows every org's cases.
    codec_operator_orgs: list[str] = Field(default_factory=list)

    # Outbound requests on a platform's behalf (tipline.egress). Exact "address:port" pairs that may be reached
    # although not public: only for a test or local platform on loopback; empty in any real deployment.
    egress_private_exemptions: list[str] = Field(default_factory=list)
    egress_connect_timeout_seconds: float = 10
    egress_read_timeout_seconds: float = 30
    # A whole media download, redirects included; preserve_media itself may run 10 minutes.
    media_fetch_timeout_seconds: float = 540
    media_max_bytes: int = 2 * 1024**3

    @field_validator("egress_private_exemptions")
    @classmethod
    def _exemptions_are_exact_pairs(cls, value: list[str]) -> list[str]:
        # Imported here: the egress module brings the HTTP stack, which a worker's start does not need.
        from tipline.egress import parse_exemption

        for entry in value:
            parse_exemption(entry)  # raises ValueError naming the entry
        return value

    @field_validator("evidence_s3_prefix")
    @classmethod
    def _a_key_prefix(cls, prefix: str) -> str:
        prefix = prefix.strip("/")
        if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
            raise ValueError("must be a key prefix such as tipline/evidence (no empty, . or .. segments)")
        return f"{prefix}/" if prefix else ""

    @field_validator("evidence_s3_endpoint_url")
    @classmethod
    def _an_endpoint(cls, url: str | None) -> str | None:
        if url is not None and not re.fullmatch(r"https?://[^\s/?#@]+/?", url):
            # No user:password@ form either: credentials belong in the environment, not in a URL that is logged.
            raise ValueError("must be an http(s) URL of the S3 server, such as http://minio:9000")
        return url

    @model_validator(mode="after")
    def _s3_has_a_bucket(self) -> Settings:
        if self.evidence_backend == "s3" and not self.evidence_s3_bucket:
            raise ValueError("evidence_s3_bucket (TIPLINE_EVIDENCE_S3_BUCKET) must be set when "
                             "evidence_backend is s3")
        return self

    @field_validator("sandbox_error_http_status")
    @classmethod
    def _an_error_status(cls, status: int) -> int:
        if not (status == 200 or 400 <= status <= 599):
            raise ValueError("must be 200 (NCMEC's own behaviour) or an error status, 400-599")
        return status

    # Request size limits (bytes), checked before a body is read whole; larger requests get 413 naming the limit.
    # One item's JSON, or an upload's form fields together: a case signal must stay well inside Temporal's 2 MB.
    max_json_body_bytes: int = Field(default=1 << 20, ge=1024)
    max_batch_body_bytes: int = Field(default=8 << 20, ge=1024)
    max_conversation_body_bytes: int = Field(default=2 << 20, ge=1024)
    # The media bytes of one upload.
    max_upload_bytes: int = Field(default=32 << 20, ge=1024)

    # Uploads are hashed and matched by the API, which holds their bytes (api/upload_analysis.py), at most this
    # many at a time per API process; the rest, and every upload while the banks load, go to the detection
    # workers. Off: every upload is hashed on the detection queue. The API then holds the banks in memory too.
    api_analyzes_uploads: bool = True
    api_analysis_slots: int = Field(default=2, ge=1, le=64)

    # Reviewer sign-in (tipline.accounts). A session ends after this long unused, and after the absolute limit
    # however busy it is.
    session_idle_minutes: float = Field(default=30, gt=0)
    session_absolute_hours: float = Field(default=12, gt=0)
    # Browsers send a Secure cookie over https only; turn off just for a stack served over plain http.
    session_cookie_secure: bool = True
    # The API process remembers valid API keys this long (api/key_cache.py): a revoked key is refused at most
    # this many seconds after ``tipline apikey revoke``. 0 reads the database on every request.
    api_key_cache_seconds: float = Field(default=5.0, ge=0, le=60)
    # Refused password logins within the window: past either limit, logins are refused with 429 until the
    # oldest failure leaves the window. Counted in the database, so every API process sees the same count.
    login_failure_window_seconds: float = Field(default=15 * 60, gt=0)
    login_max_failures_per_account: int = Field(default=5, ge=1)
    login_max_failures_per_address: int = Field(default=20, ge=1)
    # Single sign-on by OpenID Connect (authorization code with PKCE); off while oidc_issuer is unset.
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    # This deployment's public URL of /v1/session/oidc/callback, as registered with the provider.
    oidc_redirect_url: str | None = None
    oidc_groups_claim: str = "groups"
    # Group name -> "org:role"; a person's org and role come from their groups at every login.
    oidc_group_roles: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _tls_files_pair(self) -> Settings:
        if (self.temporal_tls_cert_file is None) != (self.temporal_tls_key_file is None):
            raise ValueError("temporal_tls_cert_file and temporal_tls_key_file go together (mTLS): set both or neither")
        for name in ("temporal_tls_ca_file", "temporal_tls_cert_file", "temporal_tls_key_file"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"{name}: no such file {str(path)!r}")
        return self

    @property
    def temporal_uses_tls(self) -> bool:
        return self.temporal_tls or self.temporal_api_key is not None or any(
            getattr(self, name) is not None
            for name in ("temporal_tls_ca_file", "temporal_tls_cert_file", "temporal_tls_key_file"))

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'tipline.db').resolve()}"

    @property
    def resolved_orgs_file(self) -> Path:
        return self.orgs_file or self.data_dir / "orgs.toml"

    @property
    def resolved_evidence_dir(self) -> Path:
        return self.evidence_dir or self.data_dir / "evidence"

    @property
    def resolved_codec_cors_origin(self) -> str:
        if self.codec_cors_origin:
            return self.codec_cors_origin.rstrip("/")
        scheme, _, rest = self.temporal_ui_url.partition("://")
        return f"{scheme}://{rest.split('/', 1)[0]}"

    @property
    def resolved_sandbox_url(self) -> str:
        return self.sandbox_url or f"http://{self.sandbox_host}:{self.sandbox_port}/ispws"

    def ncmec_base_url(self, environment: NcmecEnvironment) -> str:
        if environment is NcmecEnvironment.SANDBOX:
            return self.resolved_sandbox_url
        if environment is NcmecEnvironment.TEST:
            return NCMEC_TEST_URL
        if not self.allow_production:
            raise ProductionNotAllowed(
                "an org is configured for NCMEC production but TIPLINE_ALLOW_PRODUCTION is not set"
            )
        return NCMEC_PRODUCTION_URL

    @cached_property
    def orgs(self) -> OrgDirectory:
        return OrgDirectory.from_file(self.resolved_orgs_file)


class ProductionNotAllowed(RuntimeError):
    pass


class OrgDirectory(BaseModel):
    """All orgs this deployment serves, keyed by org id."""

    orgs: dict[str, OrgSettings] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _keys_match_ids(self) -> OrgDirectory:
        for key, org in self.orgs.items():
            if key != org.id:
                raise ValueError(f"orgs.{key}: id {org.id!r} does not match its key")
        return self

    @classmethod
    def from_file(cls, path: Path) -> OrgDirectory:
        with path.open("rb") as handle:
            raw = tomllib.load(handle)
        orgs = {key: {"id": key, **value} for key, value in raw.get("orgs", {}).items()}
        return cls(orgs=orgs)

    def get(self, org_id: str) -> OrgSettings:
        try:
            return self.orgs[org_id]
        except KeyError:
            raise UnknownOrg(org_id) from None


class UnknownOrg(LookupError):
    pass


def orgs_toml(orgs: list[OrgSettings]) -> str:
    """The orgs file for ``orgs``, secrets included: for the first start of a local stack and for tests."""
    lines: list[str] = []
    for org in orgs:
        values = org.model_dump(mode="json", exclude_none=True,
                                exclude={"id", "ncmec", "reporter", "callback_secret", "classifier",
                                         "media_allowed_hosts", "retention"})
        if org.media_allowed_hosts is not None:
            values["media_allowed_hosts"] = list(org.media_allowed_hosts)
        if org.callback_secret is not None:
            values["callback_secret"] = org.callback_secret.get_secret_value()
        lines.append(f"[orgs.{org.id}]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in values.items()]
        lines.append(f"\n[orgs.{org.id}.ncmec]")
        lines.append(f"environment = {_toml_string(org.ncmec.environment.value)}")
        lines.append(f"username = {_toml_string(org.ncmec.username)}")
        lines.append(f"password = {_toml_string(org.ncmec.password.get_secret_value())}")
        classifier = org.classifier.model_dump(mode="json", exclude_none=True, exclude={"api_key"})
        if org.classifier.api_key is not None:
            classifier["api_key"] = org.classifier.api_key.get_secret_value()
        lines.append(f"\n[orgs.{org.id}.classifier]")
        lines += [f"{key} = {_toml_string(value)}" for key, value in classifier.items()]
        lines.append(f"\n[orgs.{org.id}.retention]")
        lines += [f"{key} = {value}" for key, value in org.retention.model_dump().items()]
        lines.append(f"\n[orgs.{org.id}.reporter]")
        reporter = org.reporter.model_dump(mode="json", exclude_none=True)
        lines += [f"{key} = {_toml_string(value)}" for key, value in reporter.items()]
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: object) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_toml_string(item) for item in value) + "]"
    return _toml_string(value)


def _toml_string(value: object) -> str:
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'
