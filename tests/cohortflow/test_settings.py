"""The one settings object: defaults, and a clear message naming each bad variable."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cohortflow.errors import SettingsError
from cohortflow.settings import Settings, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for var in list(os.environ):
        if var.upper().startswith("COHORTFLOW_"):
            monkeypatch.delenv(var)


def test_defaults_follow_the_contract() -> None:
    s = load_settings()
    assert s.topic_prefix == "cohort."
    assert s.partitions == 12
    assert s.pillars == ("clt", "sri", "cfc", "iipc", "scd")
    assert (s.workload_low_below, s.workload_overloaded_above) == (5, 20)
    assert s.kafka_bootstrap == "127.0.0.1:9092"


def test_environment_is_read_with_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COHORTFLOW_PARTITIONS", "3")
    monkeypatch.setenv("COHORTFLOW_PILLARS", " clt , sri ")
    monkeypatch.setenv("COHORTFLOW_TOPIC_PREFIX", "prod.cohort.")
    s = load_settings()
    assert (s.partitions, s.pillars, s.topic_prefix) == (3, ("clt", "sri"), "prod.cohort.")


@pytest.mark.parametrize(
    ("var", "value", "expected"),
    [
        ("COHORTFLOW_PARTITIONS", "abc", "an integer between 1 and 10000"),
        ("COHORTFLOW_PARTITIONS", "0", "an integer between 1 and 10000"),
        ("COHORTFLOW_KAFKA_BOOTSTRAP", "localhost", "host:port"),
        ("COHORTFLOW_POSTGRES_DSN", "mysql://x@y/z", "postgresql://user:password@host:port/database"),
        ("COHORTFLOW_REDIS_URL", "http://x", "redis://"),
        ("COHORTFLOW_PILLARS", "clt,,sri", "distinct pillar names"),
        ("COHORTFLOW_PILLARS", "clt,clt", "distinct pillar names"),
        ("COHORTFLOW_POSTGRES_SCHEMA", "Drop Table", "SQL identifier"),
        ("COHORTFLOW_TOPIC_PREFIX", "a b", "topic-name prefix"),
        ("COHORTFLOW_WORKLOAD_LOW_BELOW", "-1", "an integer >= 0"),
        ("COHORTFLOW_LOG_LEVEL", "loud", "one of debug, info, warning, error"),
    ],
)
def test_bad_value_names_the_variable_and_what_is_expected(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    line = next(line for line in str(err.value).splitlines() if var in line)
    assert expected in line


def test_secrets_are_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COHORTFLOW_POSTGRES_DSN", "mysql://u:hunter2@h/d")
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert "hunter2" not in str(err.value)
    shown = load_settings(postgres_dsn="postgresql://u:hunter2@h:5432/d").redacted()
    assert shown["COHORTFLOW_POSTGRES_DSN"] == "postgresql://u:***@h:5432/d"


def test_a_misspelt_variable_is_an_error_with_a_suggestion(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COHORTFLOW_PARTITONS", "3")
    with pytest.raises(SettingsError, match="did you mean COHORTFLOW_PARTITIONS"):
        load_settings()


def test_workload_bounds_must_be_ordered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COHORTFLOW_WORKLOAD_LOW_BELOW", "30")
    with pytest.raises(SettingsError, match="WORKLOAD_LOW_BELOW must be <= COHORTFLOW_WORKLOAD_OVERLOADED_ABOVE"):
        load_settings()


def test_every_problem_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COHORTFLOW_PARTITIONS", "x")
    monkeypatch.setenv("COHORTFLOW_LOG_LEVEL", "y")
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert "COHORTFLOW_PARTITIONS" in str(err.value) and "COHORTFLOW_LOG_LEVEL" in str(err.value)


def test_settings_are_frozen() -> None:
    s = load_settings()
    with pytest.raises(ValidationError, match="frozen"):
        s.partitions = 1  # type: ignore[misc]
    assert isinstance(s, Settings)
