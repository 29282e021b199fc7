"""The one settings object of a cohortflow process.

It is the only reader of the environment: every ``COHORTFLOW_*`` variable is
declared here, validated once at start-up, and a bad value stops start-up with
a message naming the variable and what it expects.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import re
from functools import cached_property
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from cohortflow.contract.codec import DEFAULT_PILLARS
from cohortflow.errors import SettingsError

if TYPE_CHECKING:
    from cohortflow.contract import Contract

ENV_PREFIX = "COHORTFLOW_"

_HOSTPORT = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_TOPIC_CHARS = re.compile(r"^[A-Za-z0-9._\-]*$")
_PILLAR = re.compile(r"^[a-z0-9_]{1,32}$")


class Settings(BaseSettings):
    """Validated configuration; build it with :func:`load_settings`."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore", case_sensitive=False)

    kafka_bootstrap: str = Field(
        "127.0.0.1:9092",
        description="a comma-separated list of Kafka brokers as host:port",
    )
    postgres_dsn: SecretStr = Field(
        SecretStr("postgresql://cohortflow:cohortflow@127.0.0.1:5432/cohortflow"),
        description="a PostgreSQL URL, postgresql://user:password@host:port/database",
    )
    postgres_schema: str = Field(
        "cohortflow",
        description="a lower-case SQL identifier (letters, digits, _) naming the schema that holds the views",
    )
    redis_url: SecretStr = Field(
        SecretStr("redis://127.0.0.1:6379/0"),
        description="a Redis URL, redis://[:password@]host:port/db",
    )
    redis_prefix: str = Field(
        "cohortflow:",
        description="a prefix for every Redis key cohortflow writes (1-64 characters, no spaces)",
    )
    topic_prefix: str = Field(
        "cohort.",
        description="a Kafka topic-name prefix of at most 200 characters from [A-Za-z0-9._-]",
    )
    partitions: int = Field(12, ge=1, le=10_000, description="an integer between 1 and 10000 (partitions per topic)")
    pillars: Annotated[tuple[str, ...], NoDecode] = Field(
        DEFAULT_PILLARS,
        description="a comma-separated list of distinct pillar names made of [a-z0-9_], e.g. clt,sri,cfc",
    )
    workload_low_below: int = Field(
        5, ge=0, description="an integer >= 0: a mentor with fewer pending reviews has workload 'low'"
    )
    workload_overloaded_above: int = Field(
        20, ge=0, description="an integer >= 0: a mentor with more pending reviews is 'overloaded'"
    )
    consumer_group: str = Field(
        "cohortflow-views",
        description="a Kafka consumer group id (1-200 characters from [A-Za-z0-9._-])",
    )
    log_level: str = Field("info", description="one of debug, info, warning, error")
    # 20,000 (was 10,000): a commit's cost is mostly per batch (every mentor row, each touched entity), so on the
    # 1M-record bench one process went from 43.6k to 55.9k records/s; 40,000 gave 59.8k but p99 freshness 257 ms.
    batch_max_records: int = Field(
        20_000, ge=1, le=1_000_000, description="an integer 1-1000000: most records the worker folds per batch"
    )
    cache_max_entities: int = Field(
        250_000, ge=100, le=100_000_000,
        description="an integer 100-100000000: most entity states one worker process keeps in memory (least"
        " recently used ones beyond it are dropped and read back from PostgreSQL when needed); the default is"
        " about 256 MiB at the kernel's ~1 KiB an entity",
    )
    fold_engine: str = Field(
        "kernel",
        description="'kernel' (the compiled fold, built by `make venv` where a C++ compiler is found) or 'python'"
        " (the pure Python reference fold)",
    )
    session_timeout_seconds: float = Field(
        10.0, ge=6, le=300,
        description="seconds 6-300 before the group gives a silent (crashed) worker's partitions to the others",
    )
    dedup_horizon_days: int = Field(
        35, ge=30, le=3650,
        description="an integer 30-3650: days of event time within which a re-sent login or audit event is"
        " recognised (the contract asks for at least 30)",
    )
    api_host: str = Field("127.0.0.1", description="the address the read API listens on, e.g. 0.0.0.0")
    api_port: int = Field(8000, ge=1, le=65535, description="a TCP port (1-65535) for the read API")
    api_rate_limit: int = Field(
        1200, ge=1, le=1_000_000, description="an integer >= 1: requests one API token may make per rate window"
    )
    api_rate_window_seconds: float = Field(
        60.0, gt=0, le=86_400, description="seconds (> 0) of the API's sliding rate-limit window"
    )
    api_token_cache_seconds: float = Field(
        2.0, ge=0, le=300, description="seconds 0-300 an API process trusts a token check (revocation delay)"
    )
    api_lag_degraded: int = Field(
        10_000, ge=0, description="an integer >= 0: consumer lag (records) above which /health says degraded"
    )
    sse_heartbeat_seconds: float = Field(
        15.0, gt=0, le=300, description="seconds (> 0, <= 300) between heartbeats on the badge event streams"
    )
    publish_timeout_seconds: float = Field(
        10.0, gt=0, le=600,
        description="seconds (> 0, <= 600) a publisher waits for Kafka to acknowledge before raising an error",
    )
    outbox_dsn: SecretStr = Field(
        SecretStr(""),
        description="the app's PostgreSQL URL holding the outbox, postgresql://user:password@host:port/database"
        " (empty: COHORTFLOW_POSTGRES_DSN)",
    )
    outbox_schema: str = Field(
        "public", description="a lower-case SQL identifier naming the schema of the app's outbox table"
    )
    metrics_port: int = Field(
        9400, ge=0, le=65535, description="a TCP port for the worker's Prometheus /metrics (0 turns it off)"
    )

    # --- validators -------------------------------------------------------
    @field_validator("kafka_bootstrap")
    @classmethod
    def _brokers(cls, value: str) -> str:
        brokers = [b.strip() for b in value.split(",") if b.strip()]
        if not brokers or not all(_HOSTPORT.match(b) for b in brokers):
            raise ValueError("not a host:port list")
        return ",".join(brokers)

    @field_validator("postgres_dsn")
    @classmethod
    def _postgres(cls, value: SecretStr) -> SecretStr:
        parts = urlsplit(value.get_secret_value())
        if parts.scheme not in ("postgresql", "postgres") or not parts.hostname or not parts.path.strip("/"):
            raise ValueError("not a postgresql://user:password@host:port/database URL")
        _ = parts.port  # raises ValueError on a bad port
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, value: SecretStr) -> SecretStr:
        parts = urlsplit(value.get_secret_value())
        if parts.scheme not in ("redis", "rediss") or not parts.hostname:
            raise ValueError("not a redis://host:port/db URL")
        _ = parts.port  # raises ValueError on a bad port
        return value

    @field_validator("outbox_dsn")
    @classmethod
    def _outbox_dsn(cls, value: SecretStr) -> SecretStr:
        return cls._postgres(value) if value.get_secret_value() else value

    @field_validator("postgres_schema", "outbox_schema")
    @classmethod
    def _schema(cls, value: str) -> str:
        if not _IDENTIFIER.match(value) or value.startswith("pg_"):
            raise ValueError("not a lower-case SQL identifier")
        return value

    @field_validator("redis_prefix")
    @classmethod
    def _redis_prefix(cls, value: str) -> str:
        if not 1 <= len(value) <= 64 or any(c.isspace() for c in value):
            raise ValueError("bad prefix")
        return value

    @field_validator("topic_prefix")
    @classmethod
    def _topic_prefix(cls, value: str) -> str:
        if len(value) > 200 or not _TOPIC_CHARS.match(value):
            raise ValueError("bad topic prefix")
        return value

    @field_validator("consumer_group")
    @classmethod
    def _group(cls, value: str) -> str:
        if not value or len(value) > 200 or not _TOPIC_CHARS.match(value):
            raise ValueError("bad group id")
        return value

    @field_validator("pillars", mode="before")
    @classmethod
    def _pillars(cls, value: Any) -> tuple[str, ...]:
        items = [p.strip() for p in value.split(",")] if isinstance(value, str) else list(value)
        if not items or any(not isinstance(p, str) or not _PILLAR.match(p) for p in items):
            raise ValueError("bad pillar list")
        if len(set(items)) != len(items):
            raise ValueError("duplicate pillar")
        return tuple(items)

    @field_validator("fold_engine")
    @classmethod
    def _fold_engine(cls, value: str) -> str:
        value = value.lower()
        if value not in ("kernel", "python"):
            raise ValueError("bad fold engine")
        if value == "kernel" and importlib.util.find_spec("cohortflow.core._kernel") is None:
            raise ValueError("cohortflow.core._kernel is not built")
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        value = value.lower()
        if value not in ("debug", "info", "warning", "error"):
            raise ValueError("bad log level")
        return value

    @model_validator(mode="after")
    def _workload_bounds(self) -> Settings:
        if self.workload_low_below > self.workload_overloaded_above:
            raise ValueError("workload bounds")
        return self

    # --- derived values ---------------------------------------------------
    @cached_property
    def postgres_url(self) -> str:
        """The DSN in clear, for drivers only; never print it."""
        return self.postgres_dsn.get_secret_value()

    @cached_property
    def outbox_url(self) -> str:
        """The DSN of the app database holding the outbox (the views' database unless set); never print it."""
        return self.outbox_dsn.get_secret_value() or self.postgres_url

    @cached_property
    def redis_connection_url(self) -> str:
        """The Redis URL in clear, for drivers only; never print it."""
        return self.redis_url.get_secret_value()

    @cached_property
    def contract(self) -> Contract:
        """The event contract these settings configure (topic prefix, pillars)."""
        from cohortflow.contract import Contract

        return Contract(topic_prefix=self.topic_prefix, pillars=self.pillars)

    def redacted(self) -> dict[str, str]:
        """Every setting as ``COHORTFLOW_NAME -> value`` with passwords masked, for display."""
        shown: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = mask_password(value.get_secret_value())
            elif isinstance(value, tuple):
                value = ",".join(value)
            shown[env_name(name)] = str(value)
        return shown


def env_name(field: str) -> str:
    """The environment variable that sets ``field``."""
    return f"{ENV_PREFIX}{field.upper()}"


def mask_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


_EXPECTED_WORKLOAD = (
    "COHORTFLOW_WORKLOAD_LOW_BELOW must be <= COHORTFLOW_WORKLOAD_OVERLOADED_ABOVE"
)


def load_settings(**overrides: Any) -> Settings:
    """Read and validate the settings from the environment, or raise :class:`SettingsError`.

    The error names every bad ``COHORTFLOW_*`` variable and what it expects; an
    unknown ``COHORTFLOW_*`` variable (a typo) is an error too. ``overrides``
    (field names) win over the environment.
    """
    known = {env_name(f) for f in Settings.model_fields}
    problems = []
    for var in sorted(os.environ):
        if var.upper().startswith(ENV_PREFIX) and var.upper() not in known:
            hint = difflib.get_close_matches(var.upper(), known, n=1)
            problems.append(
                f"{var}: not a cohortflow setting"
                + (f"; did you mean {hint[0]}?" if hint else f"; known settings: {', '.join(sorted(known))}")
            )
    settings = None
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        for error in exc.errors():
            if not error["loc"]:
                problems.append(_EXPECTED_WORKLOAD)
                continue
            field = str(error["loc"][0])
            expected = Settings.model_fields[field].description
            got = "***" if field in ("postgres_dsn", "redis_url", "outbox_dsn") else error.get("input")
            problems.append(f"{env_name(field)}: expected {expected}; got {got!r}")
    if problems or settings is None:
        raise SettingsError("invalid settings:\n  " + "\n  ".join(problems))
    return settings
