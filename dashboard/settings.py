"""Load and validate the TOML configuration: unknown keys and bad values stop start-up."""
from __future__ import annotations

import json
import os
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dashboard.analysis.health import Thresholds, Timing
from dashboard.times import US

DEFAULT_CONFIG_PATH = "instance/config.toml"


class ConfigError(ValueError):
    """A configuration problem; the message names the key."""


@dataclass(frozen=True)
class AppSettings:
    secret_key: str = ""  # env DASHBOARD_SECRET_KEY; empty: generated once into instance/secret_key
    base_url: str = "http://127.0.0.1:5000"
    log_level: str = "INFO"
    demo_data: bool = True  # `make run` loads the simulator's demo into an empty database


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = "sqlite:///instance/dashboard.db"  # env DATABASE_URL overrides


@dataclass(frozen=True)
class IngestSettings:
    default_job: str = ""
    batch_size: int = 2000
    push_max_bytes: int = 10_485_760
    redact_attributes: tuple[str, ...] = ("password", "pin", "cardRegistrationCode")
    mask_attributes: tuple[str, ...] = ("cardNumber",)
    mask_keep: int = 4
    redact_headers: tuple[str, ...] = (
        "authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key",
    )
    guid_lookups_are_connection_tests: bool = True
    workers: int = 2  # processes preparing the lines of a large input (`flask ingest`); 0: none
    future_tolerance_minutes: int = 60  # lines dated later than ingest time + this are rejected


@dataclass(frozen=True)
class CycleSettings:
    gap_minutes: int = 15  # quiet time that ends an inferred cycle (docs/analysis.md)
    interval_minutes: int = 40  # Entra's time between cycles
    stall_grace_minutes: int = 20  # silence beyond interval + grace: the job is stalled


@dataclass(frozen=True)
class QuarantineSettings:
    min_failures: int = 5000
    failure_proportion: float = 0.40
    total_failures: int = 40_000
    absolute_failures: int = 60_000
    deletion_threshold: int = 500
    credential_share: float = 0.5
    disable_after_days: int = 28


@dataclass(frozen=True)
class SchedulerSettings:
    enabled: bool = True  # a scheduler inside `flask run` (the dev server); never in gunicorn's workers
    lease_seconds: int = 30  # the active scheduler's lease; a standby takes over this long after it stops renewing
    renew_seconds: int = 10  # the active scheduler renews its lease (and a standby polls) this often
    tick_seconds: int = 60  # email delivery and health evaluation run this often

    def __post_init__(self) -> None:
        for name in ("lease_seconds", "renew_seconds", "tick_seconds"):
            if getattr(self, name) < 1:
                raise ConfigError(f"scheduler.{name} must be a positive integer")
        if self.renew_seconds * 2 > self.lease_seconds:
            raise ConfigError("scheduler.renew_seconds must be at most half of scheduler.lease_seconds "
                              "(a late renewal must not lose the lease)")


@dataclass(frozen=True)
class ReportSettings:
    interval_minutes: int = 40  # a cycle report per job this often (Entra's interval)
    recipients: tuple[str, ...] = ()  # get every job's report (admin version), besides subscriptions


SMTP_SECURITY = ("starttls", "tls", "none")


@dataclass(frozen=True)
class SmtpSettings:
    host: str = ""  # empty: no delivery; messages wait in the outbox
    port: int = 587
    security: str = "starttls"  # starttls, tls (implicit, usually port 465) or none
    username: str = ""
    password: str = field(default="", repr=False)  # env DASHBOARD_SMTP_PASSWORD; never logged
    from_address: str = "provisioning-monitor@localhost"
    timeout_seconds: int = 30

    def __post_init__(self) -> None:
        if self.security not in SMTP_SECURITY:
            raise ConfigError("smtp.security must be one of starttls, tls, none")
        if not 0 < self.port < 65536:
            raise ConfigError("smtp.port must be between 1 and 65535")
        if self.timeout_seconds < 1:
            raise ConfigError("smtp.timeout_seconds must be a positive integer")
        if "@" not in self.from_address:
            raise ConfigError("smtp.from_address must be an email address")


@dataclass(frozen=True)
class NotificationSettings:
    reminder_hours: int = 24  # a still-open problem is mailed again after this long
    digest_hour: int = 7  # UTC hour after which the daily digest goes out
    top_signatures: int = 5  # error signatures shown in an email
    transient_cycles: int = 2  # 429, 5xx and time-outs are mailed once they fail this many cycles in a row
    retry_base_seconds: int = 60  # first retry of a failed delivery; doubles each attempt
    retry_max_minutes: int = 60  # ... up to this; a message is never dropped

    def __post_init__(self) -> None:
        for name in ("reminder_hours", "top_signatures", "transient_cycles", "retry_base_seconds", "retry_max_minutes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"notifications.{name} must be a positive integer")
        if not 0 <= self.digest_hour <= 23:
            raise ConfigError("notifications.digest_hour must be an hour between 0 and 23 (UTC)")


@dataclass(frozen=True)
class RetentionSettings:
    days: int = 30  # whole cycles that ended longer ago are pruned daily, with their exchanges (Entra keeps 30)
    batch_rows: int = 1000  # rows deleted per transaction: each lock is short, pages and ingest go on

    def __post_init__(self) -> None:
        if self.days < 1:
            raise ConfigError("retention.days must be a positive integer")
        if self.batch_rows < 1:
            raise ConfigError("retention.batch_rows must be a positive integer")


@dataclass(frozen=True)
class OpsSettings:
    """/metrics and /healthz: answered only to the scraper presenting the token whose hash is here."""

    scraper_token_hash: str = field(default="", repr=False)  # SHA-256 (hex) of the token; `flask ops token` makes one
    outbox_max_age_minutes: int = 60  # /healthz fails while an unsent email is older than this

    def __post_init__(self) -> None:
        if self.outbox_max_age_minutes < 1:
            raise ConfigError("ops.outbox_max_age_minutes must be a positive integer")
        value = self.scraper_token_hash
        if value and (len(value) != 64 or any(c not in "0123456789abcdef" for c in value)):
            raise ConfigError("ops.scraper_token_hash must be the SHA-256 of the token in lower-case hex "
                              "(64 characters; `flask --app app ops token` prints one)")


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


@dataclass(frozen=True)
class EntraSettings:
    """Pulling Microsoft Graph's provisioning logs and job status (dashboard/entra_pull.py)."""

    enabled: bool = False  # the scheduler pulls every job that names its Entra ids
    tenant: str = ""  # directory (tenant) id or a verified domain
    client_id: str = ""  # the app registration's application (client) id
    client_secret: str = field(default="", repr=False)  # env DASHBOARD_ENTRA_CLIENT_SECRET; never logged
    login_base: str = "https://login.microsoftonline.com"
    graph_base: str = "https://graph.microsoft.com/v1.0"
    interval_minutes: int = 10  # a pull per job this often (see config.example.toml for why)
    page_size: int = 0  # $top; 0: Graph's default page size
    timeout_seconds: int = 30
    max_attempts: int = 5  # per request; throttling (429/503/504) and unreachable count
    max_wait_seconds: int = 60  # a longer Retry-After is cut to this (the next pull resumes)
    overlap_minutes: int = 30  # each pull re-reads this much before its watermark (late records)
    initial_lookback_days: int = 30  # a job's first pull reaches back this far (premium retention)

    def __post_init__(self) -> None:
        for name in ("interval_minutes", "timeout_seconds", "max_attempts", "initial_lookback_days"):
            if getattr(self, name) < 1:
                raise ConfigError(f"entra.{name} must be a positive integer")
        for name in ("page_size", "max_wait_seconds", "overlap_minutes"):
            if getattr(self, name) < 0:
                raise ConfigError(f"entra.{name} must be zero or a positive integer")
        for name in ("login_base", "graph_base"):
            if not _safe_base_url(getattr(self, name)):
                raise ConfigError(f"entra.{name} must be an https:// URL (http:// only for 127.0.0.1 or localhost)")

    @property
    def missing(self) -> list[str]:
        """The credentials still to be set for a pull, as keys."""
        return [f"entra.{name}" for name in ("tenant", "client_id", "client_secret") if not getattr(self, name)]


def _safe_base_url(url: str) -> bool:
    """The client secret and the bearer token go there: TLS, except to this machine (tests)."""
    parts = urlsplit(url)
    if not parts.netloc or parts.query or parts.fragment:
        return False
    host = parts.netloc.rsplit("@", 1)[-1].lower()
    host = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return parts.scheme == "https" or (parts.scheme == "http" and host in LOOPBACK_HOSTS)


@dataclass(frozen=True)
class JobSettings:
    name: str
    display_name: str = ""
    source_system: str = "Microsoft Entra ID"
    target_system: str = "uniFLOW Online"
    notification_recipients: tuple[str, ...] = ()
    scope_size: int | None = None
    quarantine: dict[str, Any] | None = None  # keys of [quarantine] overridden for this job
    entra_service_principal_id: str = ""  # object id of the app's service principal (job status)
    entra_job_id: str = ""  # the synchronization job id; the pull keeps this job's events only


@dataclass(frozen=True)
class Settings:
    app: AppSettings = field(default_factory=AppSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    ingest: IngestSettings = field(default_factory=IngestSettings)
    cycles: CycleSettings = field(default_factory=CycleSettings)
    quarantine: QuarantineSettings = field(default_factory=QuarantineSettings)
    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings)
    reports: ReportSettings = field(default_factory=ReportSettings)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    notifications: NotificationSettings = field(default_factory=NotificationSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    entra: EntraSettings = field(default_factory=EntraSettings)
    ops: OpsSettings = field(default_factory=OpsSettings)
    jobs: tuple[JobSettings, ...] = ()
    testing: bool = False


_TABLES = {
    "app": AppSettings,
    "database": DatabaseSettings,
    "ingest": IngestSettings,
    "cycles": CycleSettings,
    "quarantine": QuarantineSettings,
    "scheduler": SchedulerSettings,
    "reports": ReportSettings,
    "smtp": SmtpSettings,
    "notifications": NotificationSettings,
    "retention": RetentionSettings,
    "entra": EntraSettings,
    "ops": OpsSettings,
}
_POSITIVE = {
    "ingest.batch_size", "ingest.push_max_bytes", "ingest.future_tolerance_minutes", "jobs.scope_size", "cycles.gap_minutes",
    "cycles.interval_minutes", "quarantine.min_failures", "quarantine.total_failures",
    "quarantine.absolute_failures", "quarantine.deletion_threshold", "quarantine.disable_after_days",
    "reports.interval_minutes",
}
_SHARES = {"quarantine.failure_proportion", "quarantine.credential_share"}


def load_settings(path: str | os.PathLike[str] | None = None, *, env: dict[str, str] | None = None) -> Settings:
    """Read the TOML file (optional when the default path is missing) and the environment."""
    env = dict(os.environ) if env is None else env
    explicit = path is not None or "DASHBOARD_CONFIG" in env
    config_path = Path(path or env.get("DASHBOARD_CONFIG") or DEFAULT_CONFIG_PATH)
    data: dict[str, Any] = {}
    if config_path.exists():
        try:
            data = tomllib.loads(config_path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{config_path}: not valid TOML: {exc}") from None
    elif explicit:
        raise ConfigError(f"configuration file {config_path} does not exist")
    settings = apply_environment(settings_from_dict(data), env)
    if settings.entra.enabled and settings.entra.missing:
        raise ConfigError(f"entra.enabled is true but {', '.join(settings.entra.missing)} is not set"
                          + (" (or DASHBOARD_ENTRA_CLIENT_SECRET)" if not settings.entra.client_secret else ""))
    return settings


def settings_from_dict(data: dict[str, Any]) -> Settings:
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key == "jobs":
            if not isinstance(value, list):
                raise ConfigError("jobs must be an array of tables ([[jobs]])")
            kwargs["jobs"] = tuple(
                _build(JobSettings, item, f"jobs[{i}]") for i, item in enumerate(value)
            )
        elif key in _TABLES:
            if not isinstance(value, dict):
                raise ConfigError(f"{key} must be a table ([{key}])")
            kwargs[key] = _build(_TABLES[key], value, key)
        else:
            raise ConfigError(f"unknown configuration key '{key}'")
    names = [job.name for job in kwargs.get("jobs", ())]
    if len(names) != len(set(names)):
        raise ConfigError("jobs: two jobs have the same name")
    return Settings(**kwargs)


def apply_environment(settings: Settings, env: dict[str, str]) -> Settings:
    if env.get("DATABASE_URL"):
        settings = replace(settings, database=DatabaseSettings(url=env["DATABASE_URL"]))
    if env.get("DASHBOARD_SECRET_KEY"):
        settings = replace(settings, app=replace(settings.app, secret_key=env["DASHBOARD_SECRET_KEY"]))
    if env.get("DASHBOARD_LOG_LEVEL"):
        level = env["DASHBOARD_LOG_LEVEL"].upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError("DASHBOARD_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR")
        settings = replace(settings, app=replace(settings.app, log_level=level))
    if env.get("DASHBOARD_SMTP_PASSWORD"):
        settings = replace(settings, smtp=replace(settings.smtp, password=env["DASHBOARD_SMTP_PASSWORD"]))
    if env.get("DASHBOARD_SCRAPER_TOKEN_HASH"):
        settings = replace(settings, ops=replace(settings.ops, scraper_token_hash=env["DASHBOARD_SCRAPER_TOKEN_HASH"]))
    if env.get("DASHBOARD_ENTRA_CLIENT_SECRET"):
        settings = replace(settings, entra=replace(settings.entra, client_secret=env["DASHBOARD_ENTRA_CLIENT_SECRET"]))
    return settings


def _build(cls: type, table: dict[str, Any], prefix: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            raise ConfigError(f"unknown configuration key '{prefix}.{key}'")
        values[key] = _check(f"{prefix}.{key}", known[key].type, value)
    if cls is JobSettings:
        if "name" not in values:
            raise ConfigError(f"{prefix}.name is required")
        if not values["name"] or not all(c.isalnum() or c in "-_." for c in values["name"]):
            raise ConfigError(f"{prefix}.name must be letters, digits, '-', '_' or '.'")
    return cls(**values)


def _check(key: str, annotation: Any, value: Any) -> Any:
    kind = str(annotation)
    generic_key = key.split("[")[0] + ("." + key.rsplit(".", 1)[-1] if "[" in key else "")
    if kind.startswith("dict"):
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a table")
        _build(QuarantineSettings, value, key)  # validates each key and value
        return dict(value)
    if "quarantine." in key:
        generic_key = "quarantine." + key.rsplit(".", 1)[-1]
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key} must be a number")
        if generic_key in _SHARES and not 0 < value <= 1:
            raise ConfigError(f"{key} must be a share between 0 and 1, e.g. 0.4")
        return float(value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false")
        return value
    if kind.startswith("int"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer")
        if (generic_key in _POSITIVE or key.endswith("mask_keep") or key.endswith("stall_grace_minutes")) and value < (
            0 if key.endswith(("mask_keep", "stall_grace_minutes")) else 1
        ):
            raise ConfigError(f"{key} must be a positive integer")
        return value
    if kind.startswith("tuple"):
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"{key} must be a list of non-empty strings")
        return tuple(value)
    if kind == "str":
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string")
        if key == "app.log_level" and value.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError(f"{key} must be one of DEBUG, INFO, WARNING, ERROR")
        if key == "database.url" and "://" not in value:
            raise ConfigError(f"{key} must be a SQLAlchemy URL such as sqlite:///instance/dashboard.db")
        return value
    raise ConfigError(f"{key}: unsupported type {kind}")  # pragma: no cover - a programming error


# -- per job: the [quarantine] and [cycles] settings with a job's overrides ---------------------------


def thresholds_for(job: Any, settings: Settings) -> Thresholds:
    """The quarantine thresholds of `job` (a Job row: its `quarantine_overrides` JSON over `[quarantine]`)."""
    q = asdict(settings.quarantine)
    q.update(json.loads(job.quarantine_overrides or "{}"))
    return Thresholds(
        min_failures=q["min_failures"], proportion=q["failure_proportion"], total_failures=q["total_failures"],
        absolute_failures=q["absolute_failures"], deletion_threshold=q["deletion_threshold"],
        credential_share=q["credential_share"],
    )


def timing_for(job: Any, settings: Settings) -> Timing:
    q = asdict(settings.quarantine)
    q.update(json.loads(job.quarantine_overrides or "{}"))
    return Timing(
        interval_us=settings.cycles.interval_minutes * 60 * US,
        stall_grace_us=settings.cycles.stall_grace_minutes * 60 * US,
        disable_after_us=q["disable_after_days"] * 86400 * US,
    )


def gap_us(settings: Settings) -> int:
    return settings.cycles.gap_minutes * 60 * US
