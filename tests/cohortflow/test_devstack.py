"""dev/services: idempotent, and status names every service with its version."""

from __future__ import annotations

import subprocess
from pathlib import Path

from cohortflow.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def services(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ROOT / "dev" / "services"), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_up_twice_starts_nothing_the_second_time(base_settings: Settings) -> None:
    services("up")
    second = services("up")
    assert second.returncode == 0, second.stderr
    assert "started nothing" in second.stderr
    for name in ("kafka", "postgresql", "redis"):
        assert f"{name} already answers" in second.stderr


def test_status_shows_each_service_with_its_version(base_settings: Settings) -> None:
    result = subprocess.run([str(ROOT / "dev" / "services"), "status"], cwd=ROOT, capture_output=True,
                            text=True, timeout=60, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Apache Kafka 4.1" in result.stdout
    assert "PostgreSQL 15" in result.stdout
    assert "Redis 7" in result.stdout


def test_every_services_command_has_help() -> None:
    for command in ("", "up", "down", "status", "logs", "reset"):
        result = services(*([command] if command else []), "--help")
        assert result.returncode == 0 and "Usage:" in result.stdout, (command, result.stderr)
