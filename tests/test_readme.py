"""The README documents every setting with its real default, and the two commands."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import SecretStr

from cohortflow.settings import Settings, env_name

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def documented_settings() -> dict[str, str]:
    rows = re.findall(r"^\| `(COHORTFLOW_[A-Z_]+)` \| `([^`]*)` \|", README, flags=re.M)
    return dict(rows)


def test_every_setting_is_documented_with_its_default() -> None:
    documented = documented_settings()
    for name, field in Settings.model_fields.items():
        default = field.default
        if isinstance(default, SecretStr):
            default = default.get_secret_value()
        if isinstance(default, tuple):
            default = ",".join(default)
        assert env_name(name) in documented, f"{env_name(name)} missing from the README settings table"
        assert documented[env_name(name)] == str(default), env_name(name)
    assert set(documented) == {env_name(n) for n in Settings.model_fields}


def test_readme_shows_the_two_commands() -> None:
    assert "make demo" in README and "make test" in README
