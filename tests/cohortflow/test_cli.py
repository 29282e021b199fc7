"""Every command has --help, and a bad setting stops a command with the variable named."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from cohortflow.cli import cli, main


def walk(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += walk(command, (*path, name))
        else:
            found.append((*path, name))
    return found


@pytest.mark.parametrize("path", walk(cli), ids=lambda p: " ".join(p) or "cohortflow")
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    assert len(result.output.split("Usage:")[1].strip()) > 20


def test_bad_setting_stops_the_command_naming_the_variable(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("COHORTFLOW_PARTITIONS", "many")
    monkeypatch.setattr("sys.argv", ["cohortflow", "settings"])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "COHORTFLOW_PARTITIONS" in err and "an integer between 1 and 10000" in err


def test_schemas_export_writes_one_schema_per_type(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from cohortflow.contract import EVENT_TYPES

    monkeypatch.setenv("COHORTFLOW_PILLARS", "clt,sri")
    result = CliRunner().invoke(cli, ["schemas", "export", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    files = {p.name for p in (tmp_path / "out").iterdir()}
    assert files == {f"{t}.schema.json" for t in EVENT_TYPES} | {"index.json"}
    submitted = json.loads((tmp_path / "out" / "submission.submitted.schema.json").read_text())
    assert "clt" in json.dumps(submitted) and "iipc" not in json.dumps(submitted)
