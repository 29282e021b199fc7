"""What every `cohortflow` command shares: the settings, loaded once on first use, and the consoles."""

from __future__ import annotations

import click
from rich.console import Console

from cohortflow.settings import Settings, load_settings

console = Console(stderr=True)
out = Console()


class Context:
    """Settings are loaded on first use, so a bad variable stops the command before any work."""

    def __init__(self) -> None:
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings()
        return self._settings


pass_context = click.make_pass_decorator(Context, ensure=True)
