"""docker-compose.yml, the Procfile and the settings must agree."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml

from cohortflow.settings import Settings, env_name

ROOT = Path(__file__).resolve().parent.parent


def procfile() -> dict[str, str]:
    entries = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, command = line.partition(":")
            entries[name.strip()] = command.strip()
    return entries


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_procfile_has_worker_and_api() -> None:
    assert {"worker", "api"} <= set(procfile())


def test_the_worker_runs_one_process_per_cpu_under_one_parent() -> None:
    assert shlex.split(procfile()["worker"]) == ["cohortflow", "worker", "--processes", "auto"]


def test_compose_runs_the_procfile_commands() -> None:
    services = compose()["services"]
    for name, command in procfile().items():
        assert name in services, f"Procfile process {name} has no compose service"
        compose_cmd = services[name]["command"]
        compose_cmd = compose_cmd if isinstance(compose_cmd, str) else shlex.join(compose_cmd)
        assert shlex.split(compose_cmd) == shlex.split(command)


def test_compose_has_the_three_services() -> None:
    services = compose()["services"]
    assert services["kafka"]["image"].startswith("apache/kafka:4.1")
    assert services["postgres"]["image"].startswith("postgres:15")
    assert services["redis"]["image"].startswith("redis:7")
    env = services["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_compose_variables_are_settings_and_valid() -> None:
    known = {env_name(f) for f in Settings.model_fields}
    for name, service in compose()["services"].items():
        env = service.get("environment") or {}
        if any(k.startswith("COHORTFLOW_") for k in env):
            unknown = {k for k in env if k.startswith("COHORTFLOW_")} - known
            assert not unknown, f"{name} sets unknown settings {unknown}"
            values = {k.removeprefix("COHORTFLOW_").lower(): str(v) for k, v in env.items()}
            Settings(**values)  # every value passes the same validation as start-up


def test_compose_app_services_share_one_environment() -> None:
    services = compose()["services"]
    envs = [services[n]["environment"] for n in ("setup", "worker", "api")]
    assert envs[0] == envs[1] == envs[2]


def test_compose_points_at_its_own_services() -> None:
    env = compose()["services"]["worker"]["environment"]
    pg = compose()["services"]["postgres"]["environment"]
    assert env["COHORTFLOW_KAFKA_BOOTSTRAP"].startswith("kafka:")
    assert f"{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}@postgres:5432/{pg['POSTGRES_DB']}" in env[
        "COHORTFLOW_POSTGRES_DSN"
    ]
    assert env["COHORTFLOW_REDIS_URL"].startswith("redis://redis:6379")
